"""Payloads without their defaults: what goes into a journey's history is stored and replayed, byte for byte."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer


class Compact(BaseModel):
    """Serialized without the fields that hold their default (``"reason": null``...).

    Every send and profile load writes its input and result into the journey's history, where each byte is
    stored, and read again by every replay; a field left out reads back as its default, so nothing is lost and
    histories recorded before still deserialize.

    A field's default is read once per model (:func:`_defaults`): a ``default_factory`` must give equal values
    every call (``list``, ``dict``), as a field whose default changed between calls could not be left out anyway.
    """

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        defaults = _defaults(type(self))
        return {
            name: value for name, value in data.items() if name not in defaults or getattr(self, name) != defaults[name]
        }


@cache
def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The default of each of ``model``'s optional fields. Asking pydantic per payload cost more than the rest of
    the serialization: for a ``default_factory`` it inspects the factory's signature on every call."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required()
    }
