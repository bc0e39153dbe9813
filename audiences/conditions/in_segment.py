"""``in_segment``: the customer is a current member of another segment (``{in_segment: lapsed}``).

Reads the other segment's membership as last computed, so that segment refreshes first (the catalog orders
them), and a cycle (a segment reaching itself) is refused when segments are loaded.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import exists, select
from sqlalchemy.sql.elements import ColumnElement

from audiences.conditions.base import ConditionKind, ConditionModel, Query, Scope, register
from journeymap.fields import IDENTIFIER
from journeymap.suggest import did_you_mean
from storage.tables import SegmentMembership


class InSegmentCondition(ConditionModel):
    in_segment: str = Field(pattern=IDENTIFIER, max_length=64)


class InSegment(ConditionKind[InSegmentCondition]):
    name = "in_segment"
    model = InSegmentCondition
    summary = "a current member of another segment"

    def segments(self, condition: InSegmentCondition) -> set[str]:
        return {condition.in_segment}

    def check(self, condition: InSegmentCondition, scope: Scope, path: str) -> list[tuple[str, str]]:
        name = condition.in_segment
        if name in scope.segments:
            return []
        return [(f"{path}.in_segment", f"unknown segment {name!r}{did_you_mean(name, scope.segments)}")]

    def describe(self, condition: InSegmentCondition) -> str:
        return f"in segment {condition.in_segment}"

    def sql(self, condition: InSegmentCondition, query: Query) -> ColumnElement[bool]:
        member = SegmentMembership.__table__.alias("other")  # type: ignore[attr-defined]
        return exists(
            select(1)
            .select_from(member)
            .where(
                member.c.segment == condition.in_segment,
                member.c.customer_id == query.customer.c.id,
                member.c.exited_at.is_(None),
            )
        )


register(InSegment())
