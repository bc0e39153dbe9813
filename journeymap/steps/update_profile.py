"""``update_profile``: set customer traits from expressions, once per visit (an idempotent activity)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field
from temporalio import workflow

from contracts import activities as activity_contracts
from contracts.activities import UpdateProfileInput
from journeymap.fields import Expression, FrozenModel
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class UpdateProfileSpec(FrozenModel):
    set: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Expression] = Field(min_length=1)


class UpdateProfileStep(StepModel):
    update_profile: UpdateProfileSpec


class UpdateProfile(StepKind[UpdateProfileStep]):
    name = "update_profile"
    model = UpdateProfileStep
    shape = ("[(", ")]")

    def expressions(self, step: UpdateProfileStep) -> list[tuple[str, str]]:
        return [(f"update_profile.set.{name}", expression) for name, expression in step.update_profile.set.items()]

    def label(self, step: UpdateProfileStep) -> list[str]:
        return ["update profile"] + [
            f"profile.{name} = {expression}" for name, expression in step.update_profile.set.items()
        ]

    async def run(self, step: UpdateProfileStep, ctx: StepContext) -> str:
        values = {k: ctx.value(v, f"{step.id}.update_profile") for k, v in step.update_profile.set.items()}
        result = await workflow.execute_activity(
            activity_contracts.update_profile,
            UpdateProfileInput(customer_id=ctx.customer_id, idempotency_key=ctx.idempotency_key(step), set=values),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"{step.id}: update profile",
        )
        ctx.state.profile = result.profile
        return ctx.following(step)


register(UpdateProfile())
