"""Payloads without their defaults: what goes into a journey's history is stored and replayed, byte for byte."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer


class Compact(BaseModel):
    """Serialized without the fields that hold their default (``"reason": null``...).

    Every send and profile load writes its input and result into the journey's history, where each byte is
    stored, and read again by every replay; a field left out reads back as its default, so nothing is lost and
    histories recorded before still deserialize.
    """

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        return {
            name: value
            for name, value in data.items()
            if name not in fields
            or fields[name].is_required()
            or getattr(self, name) != fields[name].get_default(call_default_factory=True)
        }
