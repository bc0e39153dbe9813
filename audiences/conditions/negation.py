"""``not``: the condition does not hold (``{not: {performed: order_placed, within: 60d}}``).

SQL's NULL would make "not unknown" unknown: the inner predicate counts as false when it is NULL, so a customer
without the trait is in ``not: {trait: plan, equals: gold}``.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import false, func, not_
from sqlalchemy.sql.elements import ColumnElement

from audiences.conditions.base import Condition, ConditionKind, ConditionModel, Query, register


class NotCondition(ConditionModel):
    not_: Condition = Field(alias="not")


class Not(ConditionKind[NotCondition]):
    name = "not"
    model = NotCondition
    summary = "the condition does not hold"

    def children(self, condition: NotCondition) -> list[tuple[str, ConditionModel]]:
        return [("not", condition.not_)]

    def sql(self, condition: NotCondition, query: Query) -> ColumnElement[bool]:
        return not_(func.coalesce(query.where(condition.not_), false()))


register(Not())
