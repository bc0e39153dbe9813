"""``score``: a computed trait (``audiences.scores``) compared: a lead score with a number, a customer value by
its RFM group::

    {score: lead_score, at_least: 50}                 hot leads
    {score: customer_value, group: champions}         RFM champions
    {score: customer_value, group: [at_risk, cannot_lose]}

The definition is found by name among the scores beside the segments when the segments are checked, and kept
with the condition: its SQL (:mod:`audiences.scoring`) and what it depends on come from it. Re-checked for a
customer when an event a score counts arrives, or a trait it reads changes; and on the schedule, since points
decay and a last purchase recedes with the clock alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, model_validator
from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from audiences.conditions.base import ConditionKind, ConditionModel, Query, Scope, register
from audiences.scores import GROUP_NAMES, CustomerValue, LeadScore, ScoreDefinition
from audiences.scoring import lead_score_sql, rfm_group_in
from journeymap.fields import IDENTIFIER
from journeymap.suggest import did_you_mean

BOUNDS = ("greater_than", "less_than", "at_least", "at_most")


class ScoreCondition(ConditionModel):
    score: str = Field(pattern=IDENTIFIER, max_length=64)
    greater_than: float | None = None
    less_than: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    group: str | list[str] | None = None
    """A customer value's RFM group, or a list of them (any one)."""
    _definition: ScoreDefinition | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_test(self) -> ScoreCondition:
        bounds = [name for name in BOUNDS if getattr(self, name) is not None]
        if self.group is None and not bounds:
            raise ValueError(f"compare the score: give {', '.join(BOUNDS)} (a lead score) or group (a customer value)")
        if self.group is not None and bounds:
            raise ValueError("give a group (a customer value) or bounds (a lead score), not both")
        if self.group == []:
            raise ValueError("group lists no RFM group: nobody would match")
        return self

    @property
    def groups(self) -> list[str]:
        return [self.group] if isinstance(self.group, str) else list(self.group or [])

    @property
    def definition(self) -> ScoreDefinition:
        if self._definition is None:
            raise LookupError(f"score {self.score!r} was not resolved: load segments with their scores")
        return self._definition


class Score(ConditionKind[ScoreCondition]):
    name = "score"
    model = ScoreCondition
    summary = "a computed trait: a lead score compared with a number, or a customer value's RFM group"

    def check(self, condition: ScoreCondition, scope: Scope, path: str) -> list[tuple[str, str]]:
        """Resolves the score by name (and keeps its definition with the condition), and checks the comparison
        fits its kind: bounds for a lead score, known groups for a customer value."""
        found: Any = scope.scores.get(condition.score)
        if found is None:
            known = did_you_mean(condition.score, scope.scores)
            return [(f"{path}.score", f"unknown score {condition.score!r}{known}")]
        condition._definition = found
        if isinstance(found, LeadScore) and condition.group is not None:
            return [(f"{path}.group", f"{condition.score!r} is a lead score: compare it with at_least, at_most ...")]
        if isinstance(found, CustomerValue):
            if condition.group is None:
                return [(path, f"{condition.score!r} is a customer value: compare its group (group: champions)")]
            return [
                (f"{path}.group", f"unknown RFM group {name!r}{did_you_mean(name, GROUP_NAMES)}")
                for name in condition.groups
                if name not in GROUP_NAMES
            ]
        return []

    def events(self, condition: ScoreCondition) -> set[str]:
        return condition.definition.event_types() if condition._definition is not None else set()

    def traits(self, condition: ScoreCondition) -> set[str]:
        return condition.definition.trait_names() if condition._definition is not None else set()

    def changes_with_time(self, condition: ScoreCondition) -> bool:
        """Decaying points and receding purchases change with the clock (a score with neither is kept current by
        its events and traits alone)."""
        found = condition._definition
        return not (isinstance(found, LeadScore) and found.half_life is None)

    def describe(self, condition: ScoreCondition) -> str:
        if condition.group is not None:
            return f"score {condition.score} in group {' or '.join(condition.groups)}"
        given = [(n, getattr(condition, n)) for n in BOUNDS if getattr(condition, n) is not None]
        bounds = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in given)
        return f"score {condition.score} {bounds}"

    def sql(self, condition: ScoreCondition, query: Query) -> ColumnElement[bool]:
        found = condition.definition
        if isinstance(found, CustomerValue):
            return rfm_group_in(found, condition.groups, query.customer, query.now)
        value = lead_score_sql(found, query.customer, query.now)
        tests = []
        if condition.greater_than is not None:
            tests.append(value > condition.greater_than)
        if condition.less_than is not None:
            tests.append(value < condition.less_than)
        if condition.at_least is not None:
            tests.append(value >= condition.at_least)
        if condition.at_most is not None:
            tests.append(value <= condition.at_most)
        return and_(*tests)


register(Score())
