"""``branch``: the first case whose condition holds names the next step; ``otherwise`` (last) when none does.

Pure: evaluating conditions costs no Temporal action. Without ``otherwise`` the step goes on to the next one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator

from journeymap.fields import Expression, FrozenModel, StepTarget
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class BranchCase(FrozenModel):
    when: Expression
    goto: StepTarget


class Otherwise(FrozenModel):
    otherwise: StepTarget


def _case_kind(value: Any) -> str:
    return "otherwise" if isinstance(value, Otherwise) or (isinstance(value, dict) and "otherwise" in value) else "when"


class BranchStep(StepModel):
    branch: list[
        Annotated[
            Annotated[BranchCase, Tag("when")] | Annotated[Otherwise, Tag("otherwise")],
            Discriminator(_case_kind),
        ]
    ] = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _otherwise_last(cls, value: list[BranchCase | Otherwise]) -> list[BranchCase | Otherwise]:
        for case in value[:-1]:
            if isinstance(case, Otherwise):
                raise ValueError("`otherwise` must be the last case")
        return value


class Branch(StepKind[BranchStep]):
    name = "branch"
    model = BranchStep
    shape = ("{", "}")

    def targets(self, step: BranchStep) -> list[tuple[str, str]]:
        return [
            (f"branch[{index}].goto", case.goto)
            if isinstance(case, BranchCase)
            else (f"branch[{index}].otherwise", case.otherwise)
            for index, case in enumerate(step.branch)
        ]

    def expressions(self, step: BranchStep) -> list[tuple[str, str]]:
        return [
            (f"branch[{index}].when", case.when)
            for index, case in enumerate(step.branch)
            if isinstance(case, BranchCase)
        ]

    def always_jumps(self, step: BranchStep) -> bool:
        return isinstance(step.branch[-1], Otherwise)

    def edges(self, step: BranchStep, following: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = [
            (case.goto, case.when) if isinstance(case, BranchCase) else (case.otherwise, "otherwise")
            for case in step.branch
        ]
        if not self.always_jumps(step):
            out.append((following, "otherwise"))  # no case holds: on to the next step
        return out

    async def run(self, step: BranchStep, ctx: StepContext) -> str:
        for case in step.branch:
            if not isinstance(case, BranchCase):
                return case.otherwise
            if ctx.condition(case.when, f"{step.id}.branch"):
                return case.goto
        return ctx.following(step)


register(Branch())
