"""``end``: end the journey here, with a reason (``end: {reason: refills_exhausted}``, or bare ``end:``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from journeymap.fields import END, FrozenModel
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class EndSpec(FrozenModel):
    reason: str = "completed"


class EndStep(StepModel):
    end: EndSpec = Field(default_factory=EndSpec)

    @field_validator("end", mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return {} if value is None or value is True else value


class End(StepKind[EndStep]):
    name = "end"
    model = EndStep
    shape = ("(", ")")

    def label(self, step: EndStep) -> list[str]:
        return [f"end: {step.end.reason}"]

    def edges(self, step: EndStep, following: str) -> list[tuple[str, str | None]]:
        return [(END, None)]

    async def run(self, step: EndStep, ctx: StepContext) -> str:
        ctx.end("completed", step.end.reason)
        return END


register(End())
