"""Computed traits (issue 15, item 5): lead scores and customer value (RFM), declared as YAML beside the segments
(``journeys/scores/*.yaml``) and validated before anything runs.

A **lead score** adds points for events (optionally only those whose properties match) and for traits; the
points of an event halve every ``half_life`` (an old visit to the pricing page counts less than today's)::

    name: lead_score
    half_life: 14d
    events:
      - {event: pricing_viewed, points: 10}
      - {event: demo_requested, points: 40}
      - {event: order_placed, points: 15, where: [{property: amount, at_least: 100}]}
    traits:
      - {trait: company_size, at_least: 50, points: 20}

**Customer value** scores recency, frequency and monetary value of purchase events (1 to 5 each, by thresholds)
and names the customer's RFM group (champions, loyal, at risk, lost ...; :data:`GROUPS`)::

    name: customer_value
    rfm:
      purchase: order_placed        # which event is a purchase
      value: amount                 # which of its properties is the money
      recency: [14d, 30d, 90d, 180d]
      frequency: [2, 4, 8, 15]
      monetary: [50, 200, 500, 1000]

Both are computed by the database when asked (:mod:`audiences.scoring`), never stored: a score read now has
decayed to now. Every problem is reported as ``file: path: message``, with the nearest known field when one is
misspelt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from audiences.comparison import KEY, Comparison
from audiences.conditions.performed import PropertyCondition
from journeymap.durations import format_duration
from journeymap.errors import MapError, MapValidationError
from journeymap.fields import IDENTIFIER, EventType, FrozenModel, PositiveDuration
from journeymap.loader import parse_yaml, read_text
from journeymap.suggest import did_you_mean

Points = float


class EventPoints(FrozenModel):
    """Points for each event of a type (whose properties match ``where``), decayed by the score's half-life."""

    event: EventType
    points: Points
    where: list[PropertyCondition] = Field(default_factory=list)


class TraitPoints(Comparison):
    """Points while a trait compares so (``{trait: company_size, at_least: 50, points: 20}``); they never decay."""

    trait: str = Field(pattern=KEY, max_length=128)
    points: Points


class LeadScore(FrozenModel):
    name: str = Field(pattern=IDENTIFIER, max_length=64)
    description: str = ""
    half_life: PositiveDuration | None = None
    """The points of an event halve every ``half_life``; without one they never decay."""
    events: list[EventPoints] = Field(default_factory=list)
    traits: list[TraitPoints] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_points(self) -> LeadScore:
        if not self.events and not self.traits:
            raise ValueError("a lead score gives points for `events`, `traits` or both; this one gives none")
        return self

    @property
    def kind(self) -> str:
        return "lead score"

    def event_types(self) -> set[str]:
        return {rule.event for rule in self.events}

    def trait_names(self) -> set[str]:
        return {rule.trait for rule in self.traits}

    def describe(self) -> str:
        decay = f"halving every {format_duration(self.half_life)}" if self.half_life else "no decay"
        return f"lead score: {len(self.events)} event rules, {len(self.traits)} trait rules, {decay}"


def _ascending(values: list[Any], what: str) -> None:
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"{what} thresholds must grow from the best score's to the worst's bound, each once")


class RfmSpec(FrozenModel):
    """Which events are purchases and which property is their money, and the thresholds of the scores 5..2.

    ``recency``: the last purchase within the first duration scores 5, within the second 4, ... else 1.
    ``frequency``/``monetary``: at least the last threshold scores 5, the one before 4, ... below the first 1.
    """

    purchase: EventType
    value: str = Field(pattern=KEY, max_length=128)
    within: PositiveDuration | None = None
    """Only purchases in this last stretch of time count (default: every purchase ever)."""
    recency: list[PositiveDuration] = Field(
        default_factory=lambda: [timedelta(days=14), timedelta(days=30), timedelta(days=90), timedelta(days=180)],
        min_length=4,
        max_length=4,
    )
    frequency: list[int] = Field(default_factory=lambda: [2, 4, 8, 15], min_length=4, max_length=4)
    monetary: list[float] = Field(default_factory=lambda: [50.0, 200.0, 500.0, 1000.0], min_length=4, max_length=4)

    @model_validator(mode="after")
    def _thresholds(self) -> RfmSpec:
        _ascending(self.recency, "recency")
        _ascending(self.frequency, "frequency")
        _ascending(self.monetary, "monetary")
        return self


class CustomerValue(FrozenModel):
    name: str = Field(pattern=IDENTIFIER, max_length=64)
    description: str = ""
    rfm: RfmSpec

    @property
    def kind(self) -> str:
        return "customer value"

    def event_types(self) -> set[str]:
        return {self.rfm.purchase}

    def trait_names(self) -> set[str]:
        return set()

    def describe(self) -> str:
        return f"customer value (RFM) of {self.rfm.purchase}.{self.rfm.value}"


ScoreDefinition = LeadScore | CustomerValue


@dataclass(frozen=True)
class Group:
    """One RFM group: the recency scores and the frequency-monetary scores (``fm``) it covers."""

    name: str
    recency: tuple[int, int]
    fm: tuple[int, int]
    meaning: str


GROUPS: tuple[Group, ...] = (
    Group("champions", (5, 5), (4, 5), "bought recently, buy often and spend the most"),
    Group("loyal", (3, 4), (4, 5), "buy often and spend well; not the very latest"),
    Group("potential_loyalist", (4, 5), (2, 3), "recent customers with more than one purchase or a good basket"),
    Group("new", (5, 5), (1, 1), "bought recently, for the first time or for little"),
    Group("promising", (4, 4), (1, 1), "fairly recent, bought little so far"),
    Group("need_attention", (3, 3), (3, 3), "middling on everything: a nudge now keeps them"),
    Group("about_to_sleep", (3, 3), (1, 2), "middling recency, bought little"),
    Group("cannot_lose", (1, 2), (5, 5), "used to buy the most, nothing for a long time"),
    Group("at_risk", (1, 2), (3, 4), "bought often and well, but long ago"),
    Group("hibernating", (2, 2), (1, 2), "long ago, little and seldom"),
    Group("lost", (1, 1), (1, 2), "the longest ago, little and seldom"),
)
"""The standard RFM grid on recency (1-5) and ``fm`` = the mean of frequency and monetary, rounded half up: every
one of the 25 cells belongs to exactly one group. A customer with no purchase has no group."""

GROUP_NAMES = tuple(group.name for group in GROUPS)


def fm_score(frequency: int, monetary: int) -> int:
    """The frequency-monetary score: their mean, rounded half up (4 and 5 -> 5)."""
    return (frequency + monetary + 1) // 2


def group_of(recency: int, frequency: int, monetary: int) -> str:
    """The RFM group of three scores."""
    return group_of_cell(recency, fm_score(frequency, monetary))


def group_of_cell(recency: int, fm: int) -> str:
    """The RFM group of a recency and a frequency-monetary score (the table the SQL is built from)."""
    for group in GROUPS:
        if group.recency[0] <= recency <= group.recency[1] and group.fm[0] <= fm <= group.fm[1]:
            return group.name
    raise ValueError(f"no RFM group covers recency {recency}, fm {fm}")  # the grid covers every cell


def parse_score(data: Any, *, source: str) -> ScoreDefinition:
    """One score file's YAML: a customer value when it has ``rfm``, else a lead score."""
    if not isinstance(data, dict):
        raise MapValidationError([MapError(source, "", "a score is a YAML mapping (name, and events/traits or rfm)")])
    model: type[ScoreDefinition] = CustomerValue if "rfm" in data else LeadScore
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MapValidationError(
            [MapError(source, _location(error["loc"]), _message(error, model)) for error in exc.errors()]
        ) from None


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _known_keys(model: type[ScoreDefinition]) -> set[str]:
    keys = set(model.model_fields)
    for part in (EventPoints, TraitPoints, PropertyCondition, RfmSpec):
        keys |= set(part.model_fields)
    return keys


def _message(error: Any, model: type[ScoreDefinition]) -> str:
    if error["type"] == "extra_forbidden" and isinstance(error["loc"][-1], str):
        name = str(error["loc"][-1])
        return f"unknown field {name!r}{did_you_mean(name, _known_keys(model))}"
    return str(error["msg"]).removeprefix("Value error, ")


def load_score(path: Path) -> ScoreDefinition:
    return parse_score(parse_yaml(read_text(path), source=path.name), source=path.name)


def load_score_files(paths: Iterable[Path]) -> dict[str, ScoreDefinition]:
    """The scores of ``paths`` by name; raises :class:`MapValidationError` listing every problem of every file."""
    found, errors = read_scores(paths)
    if errors:
        raise MapValidationError(errors)
    return found


def read_scores(paths: Iterable[Path]) -> tuple[dict[str, ScoreDefinition], list[MapError]]:
    """The valid scores of ``paths`` by name, and every problem of the others (``journeys validate`` checks the
    segments against the scores that are valid, and reports the rest once)."""
    found: dict[str, tuple[str, ScoreDefinition]] = {}
    errors: list[MapError] = []
    for path in paths:
        try:
            score = load_score(path)
        except MapValidationError as exc:
            errors += exc.errors
            continue
        if score.name in found:
            errors.append(MapError(path.name, "name", f"score name {score.name!r} is used by {found[score.name][0]}"))
            continue
        found[score.name] = (path.name, score)
    return {name: score for name, (_, score) in found.items()}, errors


def load_scores(folder: Path) -> dict[str, ScoreDefinition]:
    """Every ``*.yaml`` in ``folder`` by name (none when the folder does not exist)."""
    return load_score_files(sorted(folder.glob("*.yaml")) if folder.is_dir() else [])


def scores_beside(segments_folder: Path) -> Path:
    """Where the scores live: ``scores/`` beside ``segments/`` (both in the journeys folder)."""
    return segments_folder.parent / "scores"


__all__ = [
    "GROUPS",
    "GROUP_NAMES",
    "CustomerValue",
    "LeadScore",
    "ScoreDefinition",
    "group_of",
    "load_scores",
    "parse_score",
]
