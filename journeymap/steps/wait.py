"""``wait``: a duration, or until a date from the profile or event, optionally to a local time of day.

The deadline is fixed when the step begins and kept in the state, so a wait survives continue-as-new and ends
at the same moment however often the run restarts. When it ends is :func:`journeymap.timing.wait_deadline`.
"""

from __future__ import annotations

from pydantic import model_validator
from temporalio import workflow

from journeymap.durations import format_duration
from journeymap.fields import Duration, Expression, FrozenModel, PositiveDuration, TimeOfDay
from journeymap.steps.base import StepContext, StepKind, StepModel, register
from journeymap.timing import wait_deadline


class WaitSpec(FrozenModel):
    """Wait a duration, or until a date from the profile or event, optionally to a local time of day."""

    duration: PositiveDuration | None = None
    until: Expression | None = None
    """An expression giving a date or datetime (e.g. ``profile.birthday``, ``vars.refill_due``)."""
    offset: Duration | None = None
    """Added to ``until`` (negative for before: ``-3d``)."""
    yearly: bool = False
    """With ``until``: the next anniversary of that date (birthdays)."""
    at: TimeOfDay | None = None
    """Then on to the next occurrence of this time of day in the customer's time zone."""

    @model_validator(mode="after")
    def _one_kind(self) -> WaitSpec:
        if self.duration is not None and self.until is not None:
            raise ValueError("give either `duration` or `until`, not both")
        if self.duration is None and self.until is None and self.at is None:
            raise ValueError("give `duration`, `until` or `at`")
        if self.until is None and (self.offset is not None or self.yearly):
            raise ValueError("`offset` and `yearly` go with `until`")
        return self


class WaitStep(StepModel):
    wait: WaitSpec


class Wait(StepKind[WaitStep]):
    name = "wait"
    model = WaitStep
    shape = ("{{", "}}")
    waits = True

    def expressions(self, step: WaitStep) -> list[tuple[str, str]]:
        return [("wait.until", step.wait.until)] if step.wait.until else []

    def reads_profile(self, step: WaitStep) -> bool:
        # A local time of day is in the profile's time zone.
        return super().reads_profile(step) or step.wait.at is not None

    def reads_only_time_zone(self, step: WaitStep) -> bool:
        return step.wait.at is not None and not super().reads_profile(step)

    def label(self, step: WaitStep) -> list[str]:
        spec = step.wait
        if spec.duration is not None:
            first = f"wait {format_duration(spec.duration)}"
        elif spec.until is not None:
            first = f"wait until {'the next anniversary of ' if spec.yearly else ''}{spec.until}"
            if spec.offset is not None:
                sign = "+" if spec.offset.total_seconds() >= 0 else "-"
                first += f" {sign} {format_duration(abs(spec.offset))}"
        else:
            first = "wait"
        return [first, f"then at {spec.at.strftime('%H:%M')} local time" if spec.at is not None else ""]

    async def run(self, step: WaitStep, ctx: StepContext) -> str:
        state = ctx.state
        if state.status != "waiting":  # a fresh visit, not a wait resumed after continue-as-new
            until_value = ctx.value(step.wait.until, f"{step.id}.wait.until") if step.wait.until else None
            try:
                deadline = wait_deadline(step.wait, now=workflow.now(), zone=ctx.zone(), until_value=until_value)
            except (ValueError, TypeError):
                ctx.fault(f"{step.id}.wait.until", f"{step.wait.until!r} is not a date")
                workflow.logger.warning("step %s: wait.until is not a date; not waiting", step.id)
                deadline = workflow.now()
            ctx.begin_wait(deadline, [])
        assert state.wait_until is not None
        await ctx.wait(state.wait_until, match=None, summary=f"{step.id}: wait")
        ctx.end_wait()
        return ctx.following(step)


register(Wait())
