"""``all``: every condition in the list holds."""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import and_

from audiences.conditions.base import Condition, ConditionModel, ListKind, register


class AllCondition(ConditionModel):
    all: list[Condition] = Field(min_length=1)


class All(ListKind[AllCondition]):
    name = "all"
    model = AllCondition
    summary = "every condition in the list holds"
    join = staticmethod(and_)


register(All())
