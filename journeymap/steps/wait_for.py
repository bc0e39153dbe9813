"""``wait_for``: until one of some events (optionally matching a condition), or a timeout.

Events are handled in arrival order at the wait: one that matches ends it and becomes ``event`` for the steps
after; one that does not is dropped.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from temporalio import workflow

from contracts.events import JourneyEvent
from journeymap.durations import format_duration
from journeymap.fields import EventType, Expression, FrozenModel, PositiveDuration, StepTarget
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class WaitForSpec(FrozenModel):
    events: list[EventType] = Field(min_length=1)
    match: Expression | None = None
    """A condition on the event (``event.store_id == vars.store_id``); events that fail it are ignored."""
    timeout: PositiveDuration | None = None
    on_event: StepTarget | None = None
    on_timeout: StepTarget | None = None

    @model_validator(mode="after")
    def _timeout(self) -> WaitForSpec:
        if self.on_timeout is not None and self.timeout is None:
            raise ValueError("`on_timeout` needs a `timeout`")
        return self


class WaitForStep(StepModel):
    wait_for: WaitForSpec


class WaitFor(StepKind[WaitForStep]):
    name = "wait_for"
    model = WaitForStep
    shape = (">", "]")
    waits = True

    def targets(self, step: WaitForStep) -> list[tuple[str, str]]:
        spec = step.wait_for
        return [
            (f"wait_for.{field}", target)
            for field, target in (("on_event", spec.on_event), ("on_timeout", spec.on_timeout))
            if target is not None
        ]

    def expressions(self, step: WaitForStep) -> list[tuple[str, str]]:
        return [("wait_for.match", step.wait_for.match)] if step.wait_for.match else []

    def events(self, step: WaitForStep) -> list[str]:
        return list(step.wait_for.events)

    def takes_events(self, step: WaitForStep) -> list[str]:
        return list(step.wait_for.events)

    def event_flow(self, step: WaitForStep, following: str) -> list[tuple[str, list[str] | None]]:
        spec = step.wait_for
        flow: list[tuple[str, list[str] | None]] = [(spec.on_event or following, list(spec.events))]
        if spec.timeout is not None:
            flow.append((spec.on_timeout or following, None))  # timed out: ``event`` is still the one before
        return flow

    def label(self, step: WaitForStep) -> list[str]:
        spec = step.wait_for
        return [
            "wait for " + " or ".join(spec.events),
            f"match {spec.match}" if spec.match else "",
            f"timeout {format_duration(spec.timeout)}" if spec.timeout is not None else "no timeout",
        ]

    def edges(self, step: WaitForStep, following: str) -> list[tuple[str, str | None]]:
        spec = step.wait_for
        out: list[tuple[str, str | None]] = [(spec.on_event or following, "on " + " or ".join(spec.events))]
        if spec.timeout is not None:
            out.append((spec.on_timeout or following, f"no event within {format_duration(spec.timeout)}"))
        return out

    async def run(self, step: WaitForStep, ctx: StepContext) -> str:
        state = ctx.state
        spec = step.wait_for
        if state.status != "waiting":  # a fresh visit, not a wait resumed after continue-as-new
            ctx.begin_wait(workflow.now() + spec.timeout if spec.timeout else None, list(spec.events))

        def matches(event: JourneyEvent) -> bool:
            if event.type not in spec.events:
                return False
            return spec.match is None or ctx.condition(spec.match, f"{step.id}.wait_for.match", event)

        event = await ctx.wait(state.wait_until, match=matches, summary=f"{step.id}: timeout")
        ctx.end_wait()
        if event is None:
            return spec.on_timeout or ctx.following(step)
        state.event = dict(event.properties)
        state.last_event_type = event.type
        return spec.on_event or ctx.following(step)


register(WaitFor())
