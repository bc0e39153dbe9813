"""``goto``: jump to another step (loops go through a wait). Drawn as an arrow, not a node."""

from __future__ import annotations

from journeymap.fields import StepTarget
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class GotoStep(StepModel):
    goto: StepTarget


class Goto(StepKind[GotoStep]):
    name = "goto"
    model = GotoStep
    shape = ("((", "))")
    """Only for a goto in a cycle of gotos (a map that failed validation), which cannot be drawn as an arrow."""

    def targets(self, step: GotoStep) -> list[tuple[str, str]]:
        return [("goto", step.goto)]

    def always_jumps(self, step: GotoStep) -> bool:
        return True

    def jump(self, step: GotoStep) -> str:
        return step.goto

    def label(self, step: GotoStep) -> list[str]:
        return ["goto"]

    async def run(self, step: GotoStep, ctx: StepContext) -> str:
        return step.goto


register(Goto())
