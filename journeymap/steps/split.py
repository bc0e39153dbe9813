"""``split``: an A/B test. Each customer lands in one variant (or the holdout) by weight, the same on every replay.

The bucket is a hash of the journey, the step, the customer and the instance (``contracts.ids.split_bucket``):
deterministic, and independent between splits. The variant is kept in the state for reports.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from contracts.ids import split_bucket
from journeymap.fields import END, FrozenModel, StepId, StepTarget
from journeymap.steps.base import StepContext, StepKind, StepModel, register


class Variant(FrozenModel):
    name: StepId
    weight: int = Field(gt=0, le=10_000)
    goto: StepTarget


class Holdout(FrozenModel):
    """Customers who get nothing from here: the baseline a variant's lift is measured against."""

    weight: int = Field(gt=0, le=10_000)
    goto: StepTarget = END


class SplitSpec(FrozenModel):
    variants: list[Variant] = Field(min_length=1)
    holdout: Holdout | None = None

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        if "holdout" in names:
            raise ValueError("'holdout' is reserved for the holdout group")
        return value


class SplitStep(StepModel):
    split: SplitSpec


class Split(StepKind[SplitStep]):
    name = "split"
    model = SplitStep
    shape = ("[\\", "/]")

    def targets(self, step: SplitStep) -> list[tuple[str, str]]:
        found = [(f"split.variants[{index}].goto", v.goto) for index, v in enumerate(step.split.variants)]
        if step.split.holdout is not None:
            found.append(("split.holdout.goto", step.split.holdout.goto))
        return found

    def always_jumps(self, step: SplitStep) -> bool:
        return True

    def label(self, step: SplitStep) -> list[str]:
        spec = step.split
        total = sum(v.weight for v in spec.variants) + (spec.holdout.weight if spec.holdout else 0)
        lines = ["split"] + [f"{v.name}: {_share(v.weight, total)}" for v in spec.variants]
        if spec.holdout is not None:
            lines.append(f"holdout: {_share(spec.holdout.weight, total)}")
        return lines

    def edges(self, step: SplitStep, following: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = [(v.goto, v.name) for v in step.split.variants]
        if step.split.holdout is not None:
            out.append((step.split.holdout.goto, "holdout"))
        return out

    async def run(self, step: SplitStep, ctx: StepContext) -> str:
        spec = step.split
        groups: list[tuple[str, int, str]] = [(v.name, v.weight, v.goto) for v in spec.variants]
        if spec.holdout is not None:
            groups.append(("holdout", spec.holdout.weight, spec.holdout.goto))
        bucket = split_bucket(
            ctx.journey.name,
            step.id,
            ctx.customer_id,
            ctx.instance_key,
            sum(g[1] for g in groups),
        )
        for name, weight, goto in groups:
            if bucket < weight:
                ctx.state.split_variants[step.id] = name
                return goto
            bucket -= weight
        raise AssertionError("bucket beyond the total weight")


def _share(weight: int, total: int) -> str:
    return f"weight {weight} ({100 * weight / total:.4g}%)"


register(Split())
