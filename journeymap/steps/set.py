"""``set``: set journey variables from expressions. Pure: no side effect, no Temporal action."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from journeymap.errors import MapError
from journeymap.fields import Expression, StepId
from journeymap.steps.base import StepContext, StepKind, StepModel, register
from journeymap.suggest import did_you_mean

if TYPE_CHECKING:
    from journeymap.models import JourneyMap


class SetStep(StepModel):
    """Set journey variables (pure: no side effect, no Temporal action)."""

    set: dict[StepId, Expression] = Field(min_length=1)


class Set(StepKind[SetStep]):
    name = "set"
    model = SetStep
    shape = ("[", "]")

    def expressions(self, step: SetStep) -> list[tuple[str, str]]:
        return [(f"set.{name}", expression) for name, expression in step.set.items()]

    def check(
        self, step: SetStep, *, journey: JourneyMap, source: str, path: str, templates_dir: Path | None
    ) -> list[MapError]:
        return [
            MapError(
                source,
                f"{path}.set.{name}",
                f"unknown variable {name!r}{did_you_mean(name, journey.variables)}; declare it under `variables:`",
            )
            for name in step.set
            if name not in journey.variables
        ]

    def label(self, step: SetStep) -> list[str]:
        return [f"vars.{name} = {expression}" for name, expression in step.set.items()]

    async def run(self, step: SetStep, ctx: StepContext) -> str:
        # Every value first, then the variables: a step stopped by a fault changed nothing, so trying it again
        # (an operator's resume, a corrected event) does not count down twice.
        values = {name: ctx.value(expression, f"{step.id}.set.{name}") for name, expression in step.set.items()}
        ctx.state.vars.update(values)
        return ctx.following(step)


register(Set())
