"""``send``: one message over one or more channels, effectively once per visit of the step.

The delivery layer decides (consent, quiet hours, caps, fallback) and reports per channel; the step records the
outcome and goes to ``on_failure`` when nothing was delivered. Quiet hours come back as a retry time: the step
waits durably (and may continue-as-new meanwhile, like every wait) and asks again with the same idempotency key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from contracts.activities import TEMPLATE_ERROR, SendMessageInput, is_template_failure
from journeymap.errors import MapError
from journeymap.fields import END, Category, Channel, FrozenModel, StepTarget
from journeymap.steps.base import StepContext, StepKind, StepModel, register
from journeymap.template_reads import only_read, reads
from journeymap.templates import check_template

if TYPE_CHECKING:
    from journeymap.models import JourneyMap


class SendSpec(FrozenModel):
    channels: list[Channel] = Field(min_length=1)
    """Channels in order of preference."""
    mode: Literal["all", "first"] = "all"
    """``all``: every channel; ``first``: the first that works (fallback in the customer's order)."""
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    category: Category
    on_failure: StepTarget | None = None
    """Where to go when nothing was delivered (all suppressed or failed); the next step when unset."""

    @model_validator(mode="before")
    @classmethod
    def _single_channel(cls, data: Any) -> Any:
        if isinstance(data, dict) and "channel" in data:
            data = dict(data)
            if "channels" in data:
                raise ValueError("give either `channel` or `channels`, not both")
            data["channels"] = [data.pop("channel")]
        return data

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


class SendStep(StepModel):
    send: SendSpec


class Send(StepKind[SendStep]):
    name = "send"
    model = SendStep
    shape = ("[/", "/]")

    def targets(self, step: SendStep) -> list[tuple[str, str]]:
        return [("send.on_failure", step.send.on_failure)] if step.send.on_failure else []

    def templates(self, step: SendStep) -> list[tuple[str, str, list[str]]]:
        return [("send.template", step.send.template, list(step.send.channels))]

    def check(
        self, step: SendStep, *, journey: JourneyMap, source: str, path: str, templates_dir: Path | None
    ) -> list[MapError]:
        if templates_dir is None:
            return []
        spec = step.send
        return check_template(
            templates_dir,
            spec.template,
            list(spec.channels),
            set(journey.variables),
            source=source,
            path=f"{path}.send.template",
            category=spec.category,
        )

    def label(self, step: SendStep) -> list[str]:
        spec = step.send
        joiner = ", then " if spec.mode == "first" else " + "
        return [
            "send by " + joiner.join(spec.channels) + (" (first that works)" if spec.mode == "first" else ""),
            f"template {spec.template}",
            spec.category,
        ]

    def edges(self, step: SendStep, following: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = [(following, None)]
        if step.send.on_failure:
            out.append((step.send.on_failure, "nothing delivered"))
        return out

    async def run(self, step: SendStep, ctx: StepContext) -> str:
        state = ctx.state
        following = ctx.following(step)
        key = ctx.idempotency_key(step)
        spec = step.send
        request = SendMessageInput(
            idempotency_key=key,
            journey=ctx.journey.name,
            step=step.id,
            customer_id=ctx.customer_id,
            channels=list(spec.channels),
            mode=spec.mode,
            template=spec.template,
            category=spec.category,
            # Only what the template reads (analysed once, when the worker started): each send is in the history.
            variables=only_read(
                {"trigger": state.trigger, "event": state.event, "vars": state.vars, "journey": ctx.journey_facts()},
                reads(workflow.info().task_queue, spec.template, list(spec.channels)),
            ),
        )
        while True:
            if state.status == "waiting" and state.wait_until is not None:
                # A run continued-as-new inside the quiet-hours wait: wait out the rest, then ask again (same key).
                await ctx.sleep_until(state.wait_until, f"{step.id}: quiet hours", absorb=False)
                state.status, state.wait_until = "active", None
                if state.exit_event is not None:
                    return END
            try:
                result = await ctx.deliver(request, f"{step.id}: {spec.template}")
            except ActivityError as error:
                if isinstance(error.cause, ApplicationError) and error.cause.type == TEMPLATE_ERROR:
                    # The message cannot be made from this journey's data: nothing went out, and nothing should
                    # until someone looks (a wrong message is worse than none).
                    ctx.fault(f"{step.id}.send.template", error.cause.message)
                workflow.logger.warning("step %s: send failed after retries", step.id)
                ctx.record_send(step, key, [], "failed")
                return spec.on_failure or following
            retry_at = result.retry_at
            if retry_at is None:
                break
            # Quiet hours: the delivery layer defers; wait durably, then ask again with the same key.
            state.status, state.wait_until = "waiting", retry_at
            ctx.upsert(wait_until=retry_at, why="quiet hours")
            await ctx.sleep_until(retry_at, f"{step.id}: quiet hours", absorb=False)
            state.status, state.wait_until = "active", None
            if state.exit_event is not None:
                return END
        delivered = result.delivered
        outcome = "sent" if delivered else ",".join(sorted({o.status for o in result.outcomes})) or "none"
        ctx.record_send(step, key, delivered, outcome)
        unrendered = [o.reason for o in result.outcomes if is_template_failure(o, spec.template)]
        if unrendered:
            # The message could not be made from this journey's data (the ledger holds the channel as failed):
            # stop rather than go on as if it were merely undelivered.
            ctx.fault(f"{step.id}.send.template", unrendered[0] or "")
        if not delivered and spec.on_failure:
            return spec.on_failure
        return following


register(Send())
