"""The tracking plan, enforced on each ``track`` message before it reaches a journey.

Built once per app from the plan (``events.yaml`` and the maps' ``events:`` sections): a validator per declared
event type, so checking a valid event costs a dictionary look-up and one test per declared property. An event
that breaks its declaration is refused (:class:`EventRefused`, answered 422 naming the event, the property and
what was expected) or, under ``on_invalid: quarantine``, accepted and stored apart; either way no journey hears
of it. An event type nobody declared is accepted: backends send many events no journey uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.errors import InputError
from journeymap.events import TrackingPlan, Violation, properties_schema, validators
from starter.api.models import FieldError


class EventRefused(InputError):
    """A ``track`` message broke its event's declaration; the API answers 422 with one error per property."""

    def __init__(self, violations: list[Violation], *, path: str = "") -> None:
        self.violations = violations
        self.path = path
        super().__init__("; ".join(str(v) for v in violations))

    def field_errors(self) -> list[FieldError]:
        """One error per property, located in the body (``properties.picked_up_at``, ``batch[2].properties...``)."""
        prefix = f"{self.path}." if self.path else ""
        return [FieldError(path=f"{prefix}properties.{v.property}", message=str(v)) for v in self.violations]


@dataclass(frozen=True)
class Verdict:
    """What the contract says of one event that broke it."""

    violations: list[Violation]
    quarantine: bool
    """True: accept and store apart (``on_invalid: quarantine``); False: refuse."""

    def problems(self) -> list[str]:
        """The reasons without the values (stored and counted: a wrong value may be personal data)."""
        return [f"{v.property}: {v.expected}" for v in self.violations]


class EventContract:
    """The plan's validators, by event type."""

    def __init__(self, plan: TrackingPlan | None) -> None:
        self.plan = plan
        self._validators = validators(plan) if plan is not None else {}

    def declared(self, event: str) -> bool:
        return event in self._validators

    def judge(self, event: str, properties: Mapping[str, Any]) -> Verdict | None:
        """None when the event keeps its declaration, or has none; else what broke it and what to do."""
        validator = self._validators.get(event)
        if validator is None:
            return None
        violations = validator.violations(properties)
        if not violations:
            return None
        return Verdict(violations, quarantine=validator.on_invalid == "quarantine")


def document_events(openapi: dict[str, Any], plan: TrackingPlan | None) -> None:
    """Put the declared events in the OpenAPI document: a schema of each event's ``properties`` (components
    ``Event_<type>``), listed in ``/v1/track``'s and ``/v1/batch``'s descriptions. The request bodies stay as
    they are: any event type is accepted (unknown ones are counted), so the plan documents, it does not narrow."""
    if plan is None or not plan.events:
        return
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    listed = []
    for name, spec in sorted(plan.events.items()):
        schema = properties_schema(spec)
        schema["title"] = f"{name} properties"
        if spec.description:
            schema["description"] = spec.description
        schemas[f"Event_{name}"] = schema
        listed.append(f"- `{name}`: {spec.description or ''} (schema `Event_{name}`)")
    note = (
        "\n\nDeclared events (the tracking plan; `journeys events`): a declared event whose `properties` break "
        "their schema is refused with 422 naming the property, or quarantined where its declaration says so.\n"
        + "\n".join(listed)
    )
    for path in ("/v1/track", "/v1/batch"):
        operation = openapi.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["description"] = operation.get("description", "") + note
