"""``in_list``: the customer is on a static list imported from CSV (``journeys segments import NAME FILE.csv``).

A list is whatever the last import of that name held; importing it again re-checks the segments that read it.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import exists, select
from sqlalchemy.sql.elements import ColumnElement

from audiences.conditions.base import ConditionKind, ConditionModel, Query, Scope, register
from journeymap.fields import IDENTIFIER
from journeymap.suggest import did_you_mean
from storage.tables import SegmentListMember


class InListCondition(ConditionModel):
    in_list: str = Field(pattern=IDENTIFIER, max_length=64)


class InList(ConditionKind[InListCondition]):
    name = "in_list"
    model = InListCondition
    summary = "on a static list imported from CSV"

    def lists(self, condition: InListCondition) -> set[str]:
        return {condition.in_list}

    def check(self, condition: InListCondition, scope: Scope, path: str) -> list[tuple[str, str]]:
        name = condition.in_list
        if scope.lists is None or name in scope.lists:
            return []
        return [(f"{path}.in_list", f"no list {name!r} was imported{did_you_mean(name, scope.lists)}")]

    def describe(self, condition: InListCondition) -> str:
        return f"on list {condition.in_list}"

    def sql(self, condition: InListCondition, query: Query) -> ColumnElement[bool]:
        row = SegmentListMember.__table__.alias("listed")  # type: ignore[attr-defined]
        return exists(
            select(1).select_from(row).where(row.c.list == condition.in_list, row.c.customer_id == query.customer.c.id)
        )


register(InList())
