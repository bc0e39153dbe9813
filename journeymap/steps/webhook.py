"""``webhook``: call a brand's HTTP endpoint with a JSON body of expressions; a failure does not stop the journey."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field
from temporalio import workflow
from temporalio.exceptions import ActivityError

from contracts import activities as activity_contracts
from contracts.activities import SEND_GIVE_UP, SEND_RETRY, CallWebhookInput
from journeymap.fields import Expression, FrozenModel
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class WebhookSpec(FrozenModel):
    url: Annotated[str, Field(pattern=r"^https?://")]
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, Expression] = Field(default_factory=dict)
    """Each value is an expression; the request body is the JSON object of their values."""


class WebhookStep(StepModel):
    webhook: WebhookSpec


class Webhook(StepKind[WebhookStep]):
    name = "webhook"
    model = WebhookStep
    shape = ("[[", "]]")

    def expressions(self, step: WebhookStep) -> list[tuple[str, str]]:
        return [(f"webhook.body.{name}", expression) for name, expression in step.webhook.body.items()]

    def label(self, step: WebhookStep) -> list[str]:
        spec = step.webhook
        return [f"webhook {spec.method} {spec.url}"] + [
            f"{name}: {expression}" for name, expression in spec.body.items()
        ]

    async def run(self, step: WebhookStep, ctx: StepContext) -> str:
        body = {k: ctx.value(v, f"{step.id}.webhook.body") for k, v in step.webhook.body.items()}
        try:
            await workflow.execute_activity(
                activity_contracts.call_webhook,
                CallWebhookInput(
                    idempotency_key=ctx.idempotency_key(step),
                    url=step.webhook.url,
                    method=step.webhook.method,
                    body=body,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=SEND_GIVE_UP,
                retry_policy=SEND_RETRY,
                summary=f"{step.id}: webhook",
            )
        except ActivityError:
            workflow.logger.warning("step %s: webhook failed; going on", step.id)
        return ctx.following(step)


register(Webhook())
