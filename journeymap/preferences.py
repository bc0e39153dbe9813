"""What a brand lets its customers choose: ``journeys/brand/preferences.yaml`` (optional), data like the maps.

    brand: Corner Pharmacy
    channels: [email, sms, push, voice]       # the channels the preference center offers
    pause_days: [7, 30, 90]                   # "pause promotions for..." choices
    topics:
      refill_reminders:
        label: Refill reminders
        description: A note before your medicine runs out.
        category: transactional
        templates: [refill_reminder]          # the messages that belong to this topic
      offers: {label: Offers, category: promotional, templates: [lifecycle_winback]}

A topic narrows a category: a customer may keep promotional email but drop "offers". A message belongs to the
topic that lists its template (at most one), and a send checks the customer's word on the topic as well as on
its category and channel (``activities.consent``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, model_validator

from journeymap.errors import MapError, MapValidationError
from journeymap.fields import Category, Channel, FrozenModel

PAGE_CHANNELS: tuple[Channel, ...] = ("email", "sms", "push", "voice")
TOPIC_NAME = r"^[a-z][a-z0-9_]{0,47}$"


class Topic(FrozenModel):
    label: str = Field(min_length=1, max_length=80)
    description: str = ""
    category: Category
    templates: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(default_factory=list)


class PreferenceCatalog(FrozenModel):
    brand: str = "Journeys"
    channels: list[Channel] = Field(default_factory=lambda: list(PAGE_CHANNELS))
    pause_days: list[Annotated[int, Field(ge=1, le=366)]] = Field(default_factory=lambda: [7, 30, 90])
    topics: dict[Annotated[str, Field(pattern=TOPIC_NAME)], Topic] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_topic_per_template(self) -> PreferenceCatalog:
        seen: dict[str, str] = {}
        for name, topic in self.topics.items():
            for template in topic.templates:
                if template in seen:
                    raise ValueError(f"template {template!r} is in topics {seen[template]!r} and {name!r}")
                seen[template] = name
        return self

    def topic_of(self, template: str) -> str | None:
        """The topic whose ``templates`` list ``template``, or None."""
        return next((name for name, topic in self.topics.items() if template in topic.templates), None)


def load_preferences(path: Path) -> PreferenceCatalog:
    """The catalog in ``path``, or the defaults (no topics) when there is no such file.

    Raises :class:`~journeymap.errors.MapValidationError` naming the file and the field."""
    if not path.is_file():
        return PreferenceCatalog()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return PreferenceCatalog.model_validate(data if data is not None else {})
    except yaml.YAMLError as exc:
        raise MapValidationError([MapError(str(path), "", f"not valid YAML: {exc}")]) from exc
    except ValidationError as exc:
        raise MapValidationError(
            [MapError(str(path), ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from exc


def check_preferences(path: Path, templates_dir: Path) -> list[MapError]:
    """``journeys validate``'s look at the catalog: it loads, and each topic's templates exist."""
    if not path.is_file():
        return []
    try:
        catalog = load_preferences(path)
    except MapValidationError as exc:
        return list(exc.errors)
    return [
        MapError(str(path), f"topics.{name}.templates", f"template {template!r} not found in {templates_dir}")
        for name, topic in catalog.topics.items()
        for template in topic.templates
        if not (templates_dir / f"{template}.yaml").is_file()
    ]
