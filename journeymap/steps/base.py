"""What a step kind is, what its handler may ask of the interpreter, and the registry that finds it.

A step kind is one module of :mod:`journeymap.steps`: its pydantic models, and one :class:`StepKind` registered
at import. Everything that differs between kinds lives there; the map's model, its checks, its picture and the
interpreter ask the registry (``kind_of(step)``) instead of testing a step's class::

    StepKind.model             the step's model; its field named like the kind holds the kind's settings
    StepKind.targets/.expressions/.events/.check      meaning (journeymap.checks, JourneyMap.event_types)
    StepKind.waits/.always_jumps/.jump                the step graph (the loop check, the picture)
    StepKind.shape/.label/.edges                      the picture (journeymap.mermaid)
    StepKind.run(step, ctx)    the handler: does the step, returns the id of the step to go to next

The handler talks to the interpreter only through :class:`StepContext` (``workflows.journey.JourneyWorkflow``
implements it), so a kind needs nothing above this floor. Handlers run inside the workflow: they must be
deterministic (``workflow.now()``, never the clock; activities for anything that touches the world).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from contracts.activities import SendMessageInput, SendMessageResult
from contracts.errors import InputError
from contracts.events import JourneyEvent
from contracts.journey import Status
from journeymap.errors import MapError
from journeymap.expressions import referenced_names
from journeymap.fields import FrozenModel, OnError, StepId, StepTarget

if TYPE_CHECKING:  # the map's model is built from this registry
    from journeymap.models import JourneyMap


class StepModel(FrozenModel):
    """What every step has, whatever its kind."""

    id: StepId
    next: StepTarget | None = None
    """Where to go after this step; the following step in the list when unset (the end after the last)."""
    on_error: OnError | None = None
    """What to do when the step cannot evaluate an expression or template; the map's ``on_error`` when unset."""


class StepFault(InputError):
    """A step cannot go on: an expression or template could not be evaluated with the data the journey has.

    Raised by :meth:`StepContext.fault`; the interpreter records it and does what the map's ``on_error`` says.
    """

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


class StepState(Protocol):
    """The part of the interpreter's state a handler reads and writes (``workflows.models.JourneyState``)."""

    status: Status
    wait_until: datetime | None
    """Deadline of the wait in progress; set by :meth:`StepContext.begin_wait`, kept across continue-as-new."""
    vars: dict[str, Any]
    trigger: dict[str, Any]
    event: dict[str, Any]
    last_event_type: str | None
    profile: dict[str, Any]
    split_variants: dict[str, str]
    exit_event: str | None


class StepContext(Protocol):
    """What a step's handler may ask of the interpreter running it."""

    @property
    def journey(self) -> JourneyMap: ...

    @property
    def customer_id(self) -> str: ...

    @property
    def instance_key(self) -> str | None: ...

    @property
    def state(self) -> StepState: ...

    def following(self, step: StepModel) -> str:
        """Where ``step`` goes when it names no other target: its ``next``, the following step, or the end."""
        ...

    def value(self, expression: str, where: str) -> Any:
        """An expression's value as plain data; raises :class:`StepFault` naming ``where`` when it cannot be had
        (runs recorded before faults existed go on with ``None``)."""
        ...

    def condition(self, expression: str, where: str, event: JourneyEvent | None = None) -> bool:
        """A condition's truth. On a candidate ``event`` (a wait's match) one that cannot be evaluated is false:
        the event is not the one waited for; without one it is a :class:`StepFault`."""
        ...

    def fault(self, where: str, message: str) -> None:
        """Stop the step: raises :class:`StepFault`, except in runs recorded before faults stopped a step, which
        replay as they ran (the caller then goes on as it did)."""
        ...

    def zone(self) -> tzinfo:
        """The customer's time zone, or the map's."""
        ...

    def idempotency_key(self, step: StepModel) -> str:
        """The key of this visit of ``step``: the same on every retry and replay, new on the next loop pass."""
        ...

    def journey_facts(self) -> dict[str, Any]:
        """``journey.*`` as expressions and templates see it."""
        ...

    def begin_wait(self, deadline: datetime | None, events: list[str]) -> None:
        """Come to rest: record the deadline and awaited events, and tell ops (search attributes)."""
        ...

    def end_wait(self) -> None: ...

    async def wait(
        self, deadline: datetime | None, *, match: Callable[[JourneyEvent], bool] | None, summary: str
    ) -> JourneyEvent | None:
        """Until ``deadline`` or an event ``match`` accepts; None on timeout or exit. May continue-as-new."""
        ...

    async def sleep_until(self, moment: datetime, summary: str, *, absorb: bool) -> None:
        """A durable sleep that ends at once on an exit event; ``absorb`` drops events meanwhile.

        Like :meth:`wait` it may continue-as-new: keep the deadline in the state, so the next run sleeps the rest.
        """
        ...

    def upsert(self, *, wait_until: datetime | None = None, why: str | None = None) -> None:
        """Tell ops where the journey rests: search attributes and the UI's current details."""
        ...

    async def deliver(self, request: SendMessageInput, summary: str) -> SendMessageResult:
        """Send a step's message through the delivery routing (rate-limited channels on their own queues)."""
        ...

    def record_send(self, step: StepModel, key: str, delivered: list[str], outcome: str) -> None: ...

    def end(self, status: Status, reason: str) -> None:
        """End the journey now."""
        ...


S = TypeVar("S", bound=StepModel)


class StepKind(Generic[S]):
    """One kind of step. A kind's module subclasses this, sets the class attributes and overrides what differs.

    The defaults describe a step that names no targets and reads no expressions, goes on to the following
    step, and is drawn as a node with its kind's name.
    """

    name: ClassVar[str]
    """The key that gives the kind in YAML (``send:``); also the name of the model's field holding its settings."""
    model: type[S]
    shape: ClassVar[tuple[str, str]]
    """Mermaid's opening and closing brackets of the node (``("[/", "/]")``: a parallelogram)."""
    waits: ClassVar[bool] = False
    """Whether the step waits (for time or an event): a loop through it is not a busy loop."""

    def targets(self, step: S) -> list[tuple[str, str]]:
        """(path inside the step, target) for every step this one names, besides ``next``."""
        return []

    def expressions(self, step: S) -> list[tuple[str, str]]:
        """(path inside the step, expression) for every expression the step evaluates."""
        return []

    def events(self, step: S) -> list[str]:
        """Event types the step waits for (routing sends these to the journey)."""
        return []

    def takes_events(self, step: S) -> list[str]:
        """Event types the step takes as ``event``: its own expressions see one of these (``wait_for.match``)."""
        return []

    def event_flow(self, step: S, following: str) -> list[tuple[str, list[str] | None]] | None:
        """For a step that changes ``event``: (target, event types the steps there see as ``event``, None when
        unchanged) for every way out. None (the default): the step changes nothing, its successors see what it
        saw. The event contract (:mod:`journeymap.contract`) follows this to know what ``event`` is at a step."""
        return None

    def templates(self, step: S) -> list[tuple[str, str, list[str]]]:
        """(path inside the step, template name, channels) of every message template the step renders."""
        return []

    def always_jumps(self, step: S) -> bool:
        """Whether the step always names where it goes, so it never falls through to the following step."""
        return False

    def jump(self, step: S) -> str | None:
        """For a step that only jumps (``goto``): its target, drawn as an arrow instead of a node."""
        return None

    def reads_profile(self, step: S) -> bool:
        """Whether the step reads the profile (or the segments and scores, loaded with it): after time has passed
        the interpreter reloads it first."""
        loaded = {"profile", "segments", "scores"}
        return any(loaded & referenced_names(expression)[0] for _, expression in self.expressions(step))

    def reads_only_time_zone(self, step: S) -> bool:
        """Whether the step reads the profile only for the customer's time zone (a local time of day). Such a
        step takes a time zone read recently (a profile load or a send reports it) rather than reload it."""
        return False

    def check(
        self, step: S, *, journey: JourneyMap, source: str, path: str, templates_dir: Path | None
    ) -> list[MapError]:
        """Problems of meaning particular to this kind; ``path`` locates the step (``steps[3]``)."""
        return []

    def label(self, step: S) -> list[str]:
        """The node's label lines, after the step id."""
        return [self.name]

    def edges(self, step: S, following: str) -> list[tuple[str, str | None]]:
        """(target, label) of the arrows out of the step; ``following`` is where it goes when it names none."""
        return [(following, None)]

    async def run(self, step: S, ctx: StepContext) -> str:
        """Do the step; return the id of the step to go to next (``END`` to end)."""
        raise NotImplementedError(f"step kind {self.name!r} has no handler")


_KINDS: dict[str, StepKind[Any]] = {}
_BY_MODEL: dict[type[StepModel], StepKind[Any]] = {}

K = TypeVar("K", bound=StepKind[Any])


def register(kind: K) -> K:
    """Add a step kind; maps may use it from now on (a map's model already built needs ``model_rebuild``)."""
    if kind.name in _KINDS:
        raise ValueError(f"step kind {kind.name!r} is registered twice")
    if kind.name not in kind.model.model_fields:
        raise ValueError(f"step kind {kind.name!r}: {kind.model.__name__} has no field {kind.name!r}")
    _KINDS[kind.name] = kind
    _BY_MODEL[kind.model] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a step kind (tests register throwaway kinds)."""
    kind = _KINDS.pop(name)
    del _BY_MODEL[kind.model]


def kinds() -> list[StepKind[Any]]:
    """Every registered kind, in registration order (the order error messages list them in)."""
    return list(_KINDS.values())


def kind_of(step: StepModel) -> StepKind[Any]:
    """The kind of a validated step."""
    return _BY_MODEL[type(step)]
