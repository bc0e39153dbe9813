"""``any``: at least one condition in the list holds."""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import or_

from audiences.conditions.base import Condition, ConditionModel, ListKind, register


class AnyCondition(ConditionModel):
    any: list[Condition] = Field(min_length=1)


class Any_(ListKind[AnyCondition]):
    name = "any"
    model = AnyCondition
    summary = "at least one condition in the list holds"
    join = staticmethod(or_)


register(Any_())
