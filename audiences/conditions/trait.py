"""``trait``: a profile trait compared with a value (``{trait: plan, equals: gold}``, ``{trait: birthday,
within: 30d}``); see :mod:`audiences.comparison` for the operators.

Re-checked for a customer when an identify changes that trait; relative dates also on the schedule.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy.sql.elements import ColumnElement

from audiences.comparison import KEY, Comparison
from audiences.conditions.base import ConditionKind, ConditionModel, Query, register


class TraitCondition(ConditionModel, Comparison):
    trait: str = Field(pattern=KEY, max_length=128)


class Trait(ConditionKind[TraitCondition]):
    name = "trait"
    model = TraitCondition
    summary = "a profile trait compared with a value"

    def traits(self, condition: TraitCondition) -> set[str]:
        return {condition.trait}

    def changes_with_time(self, condition: TraitCondition) -> bool:
        return condition.changes_with_time()

    def describe(self, condition: TraitCondition) -> str:
        return f"trait {condition.trait} {condition.describe()}"

    def sql(self, condition: TraitCondition, query: Query) -> ColumnElement[bool]:
        return condition.sql(query.customer.c.traits, condition.trait, query.now)


register(Trait())
