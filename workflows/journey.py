"""The journey interpreter: runs one customer's journey map as a long-lived, deterministic workflow.

The run is a loop over steps; what a step does is its kind's handler (:mod:`journeymap.steps`), found with one
registry look-up, and this class is the :class:`~journeymap.steps.StepContext` it runs in. Steps that act call
activities; steps that wait record their deadline in the state and block on a durable timer or an event.
Events arrive as signals, are deduplicated by their own id, and queue in the state's inbox; they are handled
in order at the next wait. Because the state is plain data
and every deadline is absolute, the run can continue-as-new at any wait without losing a step, an event or a
timer, so history stays bounded for journeys that run for years.

Cost (Temporal billable actions) is kept low on purpose: ops find a journey by the search attributes it starts
with (free) and read where it rests in the UI's current details (free); the step is upserted as a search
attribute only when the deployment asks for it (``search_by_step``, an action per rest), pure steps (``set``,
``branch``, ``split``, ``goto``) cost nothing, and one activity sends a step's message over all its channels.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import HandlerUnfinishedPolicy

with workflow.unsafe.imports_passed_through():
    from contracts import activities as activity_contracts
    from contracts import search_attributes as sa
    from contracts.activities import (
        SEND_GIVE_UP,
        SEND_RETRY,
        TEMPLATE_ERROR,
        ChannelOutcome,
        LoadProfileInput,
        SendMessageInput,
        SendMessageResult,
    )
    from contracts.errors import JourneysError
    from contracts.events import JourneyEvent
    from contracts.ids import idempotency_key
    from contracts.journey import ENDED, Fault, JourneyResult, JourneySnapshot, ResumeInput, SendRecord, Status
    from journeymap.checks import profile_reads, reads_scores
    from journeymap.expressions import ExpressionError, evaluate, plain_value
    from journeymap.fields import ON_ERROR_MODES
    from journeymap.models import END, Cooldown, JourneyMap, Step
    from journeymap.steps import StepFault, kind_of
    from journeymap.timing import customer_zone
    from workflows.models import SEEN_EVENT_IDS, JourneyInput, JourneyState

SEND_TIMEOUT = timedelta(seconds=60)
SEND_HEARTBEAT = timedelta(seconds=15)
STEP_LIMIT = 1000
"""Steps one pass may take without waiting; maps with such loops are rejected at validation already."""
KEEP_SENDS = 200
"""Send records kept in the state (for the query and ``journeys describe``)."""


LONG_WAITS_CONTINUE_AS_NEW = "long-waits-continue-as-new"
"""Patch id: quiet-hours waits and re-entry cooldowns may continue-as-new (runs recorded before may not)."""


FAULTS_STOP_A_STEP = "faults-stop-a-step"
"""Patch id: an expression or template that cannot be evaluated stops the step and is recorded as a fault (runs
recorded before went on with ``None``, or with a failed send). Asked only where a fault happens."""


LEAN = "lean-journeys"
"""Patch id (issue 18): a journey upserts its step at every rest only when started with ``search_by_step``, and
a local time of day takes a recently read time zone instead of loading the profile (runs recorded before did
both always). Asked once per chain started before this code, where it first matters (:meth:`lean`)."""

TIME_ZONE_FRESH = timedelta(days=7)
"""How long a time zone read (by a profile load or a send) serves a local time of day without a new load."""


class _ContinueAsNew(JourneysError):
    """Raised inside a wait to leave the step loop and continue-as-new."""


@workflow.defn(name="Journey")
class JourneyWorkflow:
    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self._map: JourneyMap = input.journey
        self._input = input
        self._state: JourneyState = input.state or JourneyState()
        self._seen: set[str] = set(self._state.seen_event_ids)
        self._sleeping = False
        """In a quiet-hours wait or a re-entry cooldown (:meth:`sleep_until`)."""
        self._leaving_sleep = False
        """That sleep is to continue-as-new: Temporal suggested it, and this run's code may (the patch)."""
        self._index_of = {step.id: index for index, step in enumerate(self._map.steps)}
        # Steps whose expressions read the profile, or whose local time of day depends on its time zone: after
        # time has passed they reload it, so a journey years long branches on today's profile, not its entry's.
        self._reads_profile = {step.id for step in self._map.steps if kind_of(step).reads_profile(step)}
        self._reads_time_zone = {step.id for step in self._map.steps if kind_of(step).reads_only_time_zone(step)}
        traits, segments = profile_reads(self._map)
        # What a profile load brings into the history: the traits the map reads, and the time zone (local times).
        self._profile_request = LoadProfileInput(
            customer_id=input.customer_id,
            traits=None if traits is None else sorted(traits | {"timezone"}),
            segments=segments,
            scores=reads_scores(self._map),
        )
        self._resume: ResumeInput | None = None
        """An operator's decision for a faulted journey (the ``resume`` update), until the step takes it."""

    # ------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyResult:
        state = self._state
        try:
            if state.status == "entering" and not await self._enter():
                return self._result()
            if state.status != "cooldown":  # a run continued inside the re-entry cooldown has no steps left
                await self._run_steps()
            await self._after_end()
        except _ContinueAsNew:
            state.runs += 1
            workflow.continue_as_new(input.model_copy(update={"state": state}))
        return self._result()

    async def _enter(self) -> bool:
        """Take the first trigger in the inbox, load the profile, set the variables. False: not entered."""
        state = self._state
        await workflow.wait_condition(lambda: bool(state.inbox))
        trigger = next((e for e in state.inbox if e.type in self._map.entry.events), None)
        if trigger is None:
            self.end("not_entered", "started without a trigger event")
            return False
        state.inbox = state.inbox[state.inbox.index(trigger) + 1 :]
        state.entry_id = trigger.id
        state.entered_at = workflow.now()
        state.trigger = dict(trigger.properties)
        state.event = dict(trigger.properties)
        state.last_event_type = trigger.type
        await self._load_profile()
        # On the trigger: an entry condition that cannot be evaluated is not met, as before faults existed.
        if self._map.entry.when and not self.condition(self._map.entry.when, "entry.when", trigger):
            self.end("not_entered", "entry condition not met")
            return False
        state.status = "active"
        state.step = self._map.steps[0].id
        try:
            self._set_variables()
        except StepFault as fault:
            target = self._record_fault(fault, None)
            if target is not None:
                state.step = target
        # Events that came in while entering (an exit right behind the trigger) are judged now.
        state.inbox = [e for e in state.inbox if not self._observe(e)]
        return True

    async def _load_profile(self) -> None:
        loaded = await workflow.execute_activity(
            activity_contracts.load_profile,
            self._profile_request,
            start_to_close_timeout=timedelta(seconds=30),
            summary="load profile",
        )
        self._state.profile = loaded.profile
        self._state.segments = loaded.segments
        self._state.scores = loaded.scores
        self._state.profile_stale = False
        self._state.time_zone_read_at = workflow.now()

    def _time_zone_fresh(self, step: Step) -> bool:
        """A step that reads the profile only for its time zone takes one read within :data:`TIME_ZONE_FRESH`
        (by a load or a send) instead of loading the profile again: an activity, and its bytes, saved each
        cycle of a journey like pharmacy_refill. Runs recorded before reloaded it (the patch, :meth:`lean`)."""
        read = self._state.time_zone_read_at
        return (
            step.id in self._reads_time_zone
            and read is not None
            and workflow.now() - read < TIME_ZONE_FRESH
            and self.lean()
        )

    def _time_zone_reported(self, result: SendMessageResult) -> None:
        """A send read the profile: keep the time zone it found, and when (:meth:`_time_zone_fresh`)."""
        if result.timezone is None:
            return
        profile = dict(self._state.profile)
        if result.timezone:
            profile["timezone"] = result.timezone
        else:
            profile.pop("timezone", None)
        self._state.profile = profile
        self._state.time_zone_read_at = workflow.now()

    async def _run_steps(self) -> None:
        state = self._state
        taken = 0
        while state.status not in ENDED:
            if state.exit_event is not None:
                self.end("exited", f"exit event {state.exit_event}")
                break
            if state.step == END or state.step is None:
                self.end("completed", "reached the end")
                break
            taken += 1
            if taken > STEP_LIMIT:
                self.end("failed", f"took {STEP_LIMIT} steps without waiting")
                break
            step = self._map.steps[self._index_of[state.step]]
            if state.status not in ("waiting", "faulted"):  # a fresh visit, not one resumed after continue-as-new
                state.visits[step.id] = state.visits.get(step.id, 0) + 1
            if state.profile_stale and step.id in self._reads_profile and not self._time_zone_fresh(step):
                await self._load_profile()
            started = workflow.now()
            following = await self._run_step(step)
            if workflow.now() > started:
                taken = 0  # time passed (a real wait): the guard counts only steps taken without waiting
                state.profile_stale = True
            if state.exit_event is None:
                state.step = following

    def _set_variables(self) -> None:
        """The map's variables, in order; all or none (a fault leaves them as they were)."""
        state = self._state
        before = dict(state.vars)
        try:
            for name, expression in self._map.variables.items():
                state.vars[name] = self.value(expression, f"variables.{name}")  # a later one may read it
        except StepFault:
            state.vars = before
            raise

    # ------------------------------------------------------------------------------------ faults

    async def _run_step(self, step: Step) -> str:
        """Run ``step``; when it faults, do what the map's ``on_error`` says (issue 17): go to a step, or stop
        and wait for an operator or a corrected event, then try it again (same visit, same idempotency key)."""
        state = self._state
        while True:
            if state.status == "faulted":
                target = await self._await_resolution()
                if target is not None:
                    return target
                if state.fault is not None and state.fault.step is None:
                    try:
                        self._set_variables()  # the fault was at entry: its variables first
                    except StepFault as fault:
                        target = self._record_fault(fault, None)  # still the entry's
                        if target is not None:
                            return target
                        continue
            try:
                return await kind_of(step).run(step, self)
            except StepFault as fault:
                target = self._record_fault(fault, step)
                if target is not None:
                    return target

    def _record_fault(self, fault: StepFault, step: Step | None) -> str | None:
        """Record ``fault``; the step to go to when the map names one, else None (the journey is ``faulted``)."""
        state = self._state
        on_error = (step.on_error if step is not None else None) or self._map.on_error
        state.fault = Fault(
            step=step.id if step is not None else None,
            where=fault.where,
            message=fault.message,
            at=workflow.now(),
            on_error=on_error,
            event_type=state.last_event_type,
        )
        workflow.logger.warning("%s: could not be evaluated; %s", fault.where, on_error)
        if on_error not in ON_ERROR_MODES:
            state.fault.resolved = f"went to {on_error}"
            return on_error
        state.status = "faulted"
        state.wait_until = None
        state.waiting_for = [state.last_event_type] if on_error == "corrected_event" and state.last_event_type else []
        self.upsert(why="operator" if on_error == "operator" else "corrected event")
        return None

    async def _await_resolution(self) -> str | None:
        """Wait, faulted, for an operator's ``resume`` or (``corrected_event``) an event of the type the step had.

        None: try the step again; else the step to go to (``end`` when the journey ended meanwhile). Like every
        wait it may continue-as-new; an exit event ends it.
        """
        state = self._state
        assert state.fault is not None
        fault = state.fault
        wanted = fault.event_type if fault.on_error == "corrected_event" else None

        def corrected() -> JourneyEvent | None:
            return next((e for e in state.inbox if wanted is not None and e.type == wanted), None)

        while True:
            if state.exit_event is not None:
                return END
            if self._resume is not None:
                decision, self._resume = self._resume, None
                state.status, state.waiting_for = "active", []
                if decision.action == "end":
                    fault.resolved = "ended by an operator"
                    self.end("failed", f"ended by an operator after a fault at {fault.where}")
                    return END
                if decision.action == "goto" and decision.step is not None:
                    fault.resolved = f"an operator sent it to {decision.step}"
                    return decision.step
                fault.resolved = "retried by an operator"
                return None
            event = corrected()
            if event is not None:
                state.inbox.remove(event)
                state.event, state.last_event_type = dict(event.properties), event.type
                if fault.step is None:  # the fault was in the variables at entry: the corrected trigger
                    state.trigger = dict(event.properties)
                state.status, state.waiting_for = "active", []
                fault.resolved = "retried with a corrected event"
                return None
            if self._should_continue_as_new():
                raise _ContinueAsNew
            await workflow.wait_condition(
                lambda: (
                    self._resume is not None
                    or state.exit_event is not None
                    or corrected() is not None
                    or self._should_continue_as_new()
                )
            )

    @workflow.update(name="resume")
    async def resume(self, decision: ResumeInput) -> JourneySnapshot:
        """An operator's decision for a faulted journey (``journeys resume``): try the step again, go to a step,
        or end. Returns the state once the journey has taken it and rests again (faulted again, if it must)."""
        self._resume = decision
        await workflow.wait_condition(lambda: self._resume is None and self._rests())
        return self.snapshot()

    @resume.validator
    def _resume_allowed(self, decision: ResumeInput) -> None:
        """Refused (and not written to history) unless the journey is faulted, or the step to go to is unknown."""
        if self._state.status != "faulted":
            raise ValueError(f"the journey is {self._state.status}, not faulted: nothing to resume")
        if decision.action == "goto" and decision.step not in {*self._index_of, END}:
            raise ValueError(f"unknown step {decision.step!r}")

    def fault(self, where: str, message: str) -> None:
        if workflow.patched(FAULTS_STOP_A_STEP):
            raise StepFault(where, message)

    async def _after_end(self) -> None:
        """Apply the re-entry rule once the journey has ended."""
        state = self._state
        reentry = self._map.entry.reentry
        if state.status == "not_entered":
            return
        if reentry == "once":
            # Stay open and idle (no timer, no action) so "once" holds beyond the namespace's retention.
            while True:
                await workflow.wait_condition(lambda: bool(state.inbox) or self._should_continue_as_new())
                if self._should_continue_as_new():
                    raise _ContinueAsNew
                state.inbox.clear()
        if isinstance(reentry, Cooldown):
            assert state.ended_at is not None
            if state.status != "cooldown":  # not when a run continued-as-new inside the cooldown resumes it
                state.ended_status, state.status = state.status, "cooldown"
                self.upsert(wait_until=state.ended_at + reentry.cooldown)
            await self.sleep_until(state.ended_at + reentry.cooldown, "cooldown before re-entry", absorb=True)
            assert state.ended_status is not None
            state.status = state.ended_status
            # A trigger that came in with the cooldown's end (same workflow task) is after it: it re-enters below.
        # after_end: a trigger that arrived before this run could close starts the next entry.
        pending = next((i for i, e in enumerate(state.inbox) if e.type in self._map.entry.events), None)
        if pending is not None:
            fresh = JourneyState(seen_event_ids=state.seen_event_ids, inbox=state.inbox[pending:], lean=state.lean)
            workflow.continue_as_new(self._input.model_copy(update={"state": fresh}))

    # ------------------------------------------------------------------------------------ for the steps
    # Step handlers (journeymap.steps) do their work through these: the workflow is their StepContext.

    @property
    def journey(self) -> JourneyMap:
        return self._map

    @property
    def customer_id(self) -> str:
        return self._input.customer_id

    @property
    def instance_key(self) -> str | None:
        return self._input.instance_key

    @property
    def state(self) -> JourneyState:
        return self._state

    def following(self, step: Step) -> str:
        return self._map.next_of(self._index_of[step.id])

    async def deliver(self, request: SendMessageInput, summary: str) -> SendMessageResult:
        """One activity for the whole step, unless a channel has a rate-limited queue of its own.

        A provider's rate limit is enforced by Temporal per task queue, across all workers; a step that uses such
        a channel is sent channel by channel (in the map's order), each on its channel's queue.
        """
        routing = self._input.delivery
        if routing is None or not set(request.channels) & set(routing.rate_limited_channels):
            queue = routing.task_queue if routing else None
            result = await self._send_activity(request, queue, f"{summary} by {'/'.join(request.channels)}")
            self._time_zone_reported(result)
            return result
        outcomes: list[ChannelOutcome] = []
        for channel in request.channels:
            limited = channel in routing.rate_limited_channels
            queue = f"{routing.task_queue}-{channel}" if limited else routing.task_queue
            one = request.model_copy(update={"channels": [channel], "mode": "all"})
            try:
                result = await self._send_activity(one, queue, f"{summary} by {channel}")
            except ActivityError as error:
                if isinstance(error.cause, ApplicationError) and error.cause.type == TEMPLATE_ERROR:
                    raise  # the message cannot be made: the step's fault, not this channel's failure
                result = SendMessageResult(outcomes=[ChannelOutcome(channel=channel, status="failed")])
            self._time_zone_reported(result)
            outcomes += result.outcomes
            if request.mode == "first" and result.delivered:
                break
        return SendMessageResult(outcomes=outcomes)

    async def _send_activity(
        self, request: SendMessageInput, task_queue: str | None, summary: str
    ) -> SendMessageResult:
        return await workflow.execute_activity(
            activity_contracts.send_message,
            request,
            task_queue=task_queue,
            start_to_close_timeout=SEND_TIMEOUT,
            schedule_to_close_timeout=SEND_GIVE_UP,
            # The activity heartbeats while a provider answers: a killed worker's send is retried in seconds.
            heartbeat_timeout=SEND_HEARTBEAT,
            retry_policy=SEND_RETRY,
            summary=summary,
        )

    # ------------------------------------------------------------------------------------ waiting

    def begin_wait(self, deadline: datetime | None, events: list[str]) -> None:
        state = self._state
        state.wait_until = deadline
        state.waiting_for = events
        state.status = "waiting"
        self.upsert(wait_until=deadline)

    def end_wait(self) -> None:
        state = self._state
        state.wait_until = None
        state.waiting_for = []
        if state.status == "waiting":
            state.status = "active"

    async def wait(
        self, deadline: datetime | None, *, match: Callable[[JourneyEvent], bool] | None, summary: str
    ) -> JourneyEvent | None:
        """Until ``deadline`` (None: none) or a matching event; None on timeout or exit.

        Events in the inbox are handled in arrival order: one that matches ends the wait (those after it stay
        for the next wait); one that does not is dropped.
        """
        state = self._state
        while True:
            if state.exit_event is not None:
                return None
            while state.inbox:
                event = state.inbox.pop(0)
                if match is not None and match(event):
                    return event
            if self._should_continue_as_new():
                raise _ContinueAsNew
            if deadline is not None:
                remaining = deadline - workflow.now()
                if remaining <= timedelta(0):
                    return None
            else:
                remaining = None
            try:
                await workflow.wait_condition(
                    lambda: bool(state.inbox) or state.exit_event is not None or self._should_continue_as_new(),
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return None

    async def sleep_until(self, moment: datetime, summary: str, *, absorb: bool) -> None:
        """A durable sleep that still ends at once on an exit event; ``absorb`` drops events meanwhile.

        Like every wait it may continue-as-new (the state keeps the deadline, so the next run sleeps the rest):
        a cooldown can last months and take many events. Runs recorded before this could do so replay as they
        ran: the patch is asked only once Temporal suggests a new run (:meth:`_leave_long_sleep`), and is False
        when replaying such a history. Asking it costs a search-attribute upsert (the SDK records the patch in
        ``TemporalChangeVersion``), so it is asked only when the run really leaves, not at every sleep.
        """
        state = self._state
        self._sleeping = True
        try:
            self._leave_long_sleep()
            while (remaining := moment - workflow.now()) > timedelta(0):
                if state.exit_event is not None and not absorb:
                    return
                if self._leaving_sleep:
                    raise _ContinueAsNew
                try:
                    await workflow.wait_condition(
                        lambda: (
                            (state.exit_event is not None and not absorb)
                            or (absorb and bool(state.inbox))
                            or self._leaving_sleep
                        ),
                        timeout=remaining,
                        timeout_summary=summary,
                    )
                except TimeoutError:
                    return
                if absorb:
                    state.inbox.clear()
        finally:
            self._sleeping = False

    def _leave_long_sleep(self) -> None:
        """In a long sleep, once Temporal suggests a new run: leave for it, where this code may (the patch).

        Called as the sleep begins and from the event handler: an event is what grows a sleeping run's history.
        """
        if self._sleeping and not self._leaving_sleep and self._should_continue_as_new():
            self._leaving_sleep = workflow.patched(LONG_WAITS_CONTINUE_AS_NEW)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        threshold = self._input.continue_as_new_after_events
        if threshold is not None and info.get_current_history_length() >= threshold:
            return True
        return info.is_continue_as_new_suggested()

    # ------------------------------------------------------------------------------------ events

    @workflow.signal(name="event")
    def on_event(self, event: JourneyEvent) -> None:
        """Receive an event. Retried deliveries (same id) are dropped here; the rest queue in the inbox."""
        state = self._state
        self._leave_long_sleep()
        if event.id in self._seen:
            return
        self._seen.add(event.id)
        state.seen_event_ids.append(event.id)
        if len(state.seen_event_ids) > SEEN_EVENT_IDS:
            self._seen.discard(state.seen_event_ids.pop(0))
        if state.status in ENDED or state.status == "cooldown":
            state.inbox.append(event)  # only the re-entry rule looks at these
            return
        if state.status == "entering" or not self._observe(event):
            state.inbox.append(event)

    def _observe(self, event: JourneyEvent) -> bool:
        """Apply the journey-level rules to an event: True when it is an exit (the journey ends)."""
        state = self._state
        for rule in self._map.exit_on:
            if rule.event == event.type and (rule.when is None or self.condition(rule.when, "exit_on.when", event)):
                state.exit_event = event.type
                return True
        goal = self._map.goal
        if (
            goal is not None
            and state.goal_reached_at is None
            and event.type in goal.events
            and state.entered_at is not None
            and workflow.now() - state.entered_at <= goal.within
            and (goal.when is None or self.condition(goal.when, "goal.when", event))
        ):
            state.goal_reached_at = workflow.now()
        return False

    @workflow.query(name="state")
    def snapshot(self) -> JourneySnapshot:
        state = self._state
        return JourneySnapshot(
            journey=self._map.name,
            version=self._map.version,
            customer_id=self._input.customer_id,
            status=state.status,
            step=state.step if state.step != END else None,
            waiting_for=state.waiting_for,
            wait_until=state.wait_until,
            entered_at=state.entered_at,
            goal_reached_at=state.goal_reached_at,
            split_variants=state.split_variants,
            sends=state.sends,
            vars=state.vars,
            end_reason=state.end_reason,
            visits=dict(state.visits),
            fault=state.fault,
        )

    @workflow.update(name="rested", unfinished_policy=HandlerUnfinishedPolicy.ABANDON)
    async def rested(self) -> JourneySnapshot:
        """The state once the journey rests: it waits for an event or a timer, or has ended.

        For tests (``starter.testing``): they wait on this instead of polling the ``state`` query. Histories
        hold it only when it is called, so recorded histories replay as before. Events still in the inbox
        are about to be handled, except in a send's quiet-hours wait, which leaves them for the next wait.
        """

        await workflow.wait_condition(self._rests)
        return self.snapshot()

    def _rests(self) -> bool:
        """Whether the journey rests: it waits for an event, a timer or an operator, or has ended."""
        state = self._state
        if state.status in ENDED or state.status in ("cooldown", "faulted"):
            return True
        if state.status != "waiting" or state.exit_event is not None or state.step is None:
            return False
        # A waiting kind (wait, wait_for) handles the inbox first; any other kind resting (a send in quiet
        # hours) leaves the inbox to the next wait.
        handles_inbox = kind_of(self._map.steps[self._index_of[state.step]]).waits
        return not handles_inbox or not state.inbox

    # ------------------------------------------------------------------------------------ helpers

    def _context(self, event: JourneyEvent | None = None) -> dict[str, Any]:
        state = self._state
        return {
            "event": dict(event.properties) if event is not None else state.event,
            "trigger": state.trigger,
            "profile": state.profile,
            "vars": state.vars,
            "journey": self.journey_facts(),
            "now": workflow.now(),
            "segments": state.segments,
            "scores": state.scores,
        }

    def journey_facts(self) -> dict[str, Any]:
        state = self._state
        return {
            "name": self._map.name,
            "customer_id": self._input.customer_id,
            "instance_key": self._input.instance_key,
            "entered_at": state.entered_at.isoformat() if state.entered_at else None,
            "last_event_type": state.last_event_type,
        }

    def condition(self, expression: str, where: str, event: JourneyEvent | None = None) -> bool:
        """A condition's truth. One that cannot be evaluated (missing data) on a candidate ``event`` (a match, an
        exit or goal rule) is false: that event is not the one meant. In a step it is a fault."""
        try:
            return bool(evaluate(expression, self._context(event)))
        except ExpressionError as exc:
            if event is None:
                self.fault(where, f"condition could not be evaluated: {exc}")
            workflow.logger.warning(
                "%s: condition could not be evaluated (%s); taken as false", where, type(exc).__name__
            )
            return False

    def value(self, expression: str, where: str) -> Any:
        """An expression's value, made plain JSON data so it is the same before and after continue-as-new.

        One that cannot be evaluated is a fault (:meth:`fault`): the step stops, rather than go on with ``None``.
        """
        try:
            value = evaluate(expression, self._context())
        except ExpressionError as exc:
            self.fault(where, f"could not be evaluated: {exc}")
            workflow.logger.warning("%s: value could not be evaluated (%s); set to none", where, type(exc).__name__)
            return None
        return plain_value(value)

    def zone(self) -> tzinfo:
        return customer_zone(self._state.profile.get("timezone"), self._map.timezone)

    def idempotency_key(self, step: Step) -> str:
        return idempotency_key(workflow.info().workflow_id, self._state.entry_id, step.id, self._state.visits[step.id])

    def record_send(self, step: Step, key: str, delivered: list[str], outcome: str) -> None:
        state = self._state
        state.sends.append(
            SendRecord(
                step=step.id,
                visit=state.visits[step.id],
                idempotency_key=key,
                delivered=delivered,
                outcome=outcome,
                at=workflow.now(),
            )
        )
        del state.sends[:-KEEP_SENDS]

    def end(self, status: Status, reason: str) -> None:
        state = self._state
        state.status = status
        state.end_reason = reason
        state.ended_at = workflow.now()
        state.wait_until = None
        state.waiting_for = []
        self.upsert()
        workflow.logger.info("journey %s ended: %s (%s)", self._map.name, status, reason)

    def upsert(self, *, wait_until: datetime | None = None, why: str | None = None) -> None:
        """Tell ops where the journey rests: the UI's current details (free), and search attributes (an action
        each upsert) when the step is searchable, or when ``faulted`` begins or ends."""
        state = self._state
        step = state.step if state.step not in (None, END) else "-"
        if self.search_by_step():
            workflow.upsert_search_attributes(
                [
                    sa.STEP.value_set(step or "-"),
                    sa.STATUS.value_set(state.status),
                    sa.WAIT_UNTIL.value_set(wait_until) if wait_until else sa.WAIT_UNTIL.value_unset(),
                ]
            )
        elif (state.status == "faulted") != state.flagged_faulted:
            # Faults are rare and need someone: ``JourneyStatus = 'faulted'`` finds them, whatever the setting.
            state.flagged_faulted = state.status == "faulted"
            workflow.upsert_search_attributes(
                [sa.STATUS.value_set("faulted") if state.flagged_faulted else sa.STATUS.value_unset()]
            )
        details = f"**{self._map.name}** v{self._map.version}: `{state.status}`"
        if state.status == "waiting":
            details += f" at step `{step}`"
            if state.waiting_for:
                details += f", waiting for {', '.join(f'`{e}`' for e in state.waiting_for)}"
            if why:
                details += f" ({why})"
            if wait_until:
                details += f" until {wait_until.isoformat(timespec='minutes')}"
        elif state.status == "faulted" and state.fault is not None:
            fault = state.fault
            details += f" at step `{step}`: `{fault.where}`: {fault.message}; "
            if fault.on_error == "corrected_event":
                details += f"waiting for a corrected `{fault.event_type}` or an operator (`journeys resume`)"
            else:
                details += "waiting for an operator (`journeys resume`)"
        elif state.end_reason:
            details += f" ({state.end_reason})"
        workflow.set_current_details(details)

    def search_by_step(self) -> bool:
        """Whether this run upserts the step, status and wake-up at every rest (an action each time): the
        starter's setting (``JOURNEYS_SEARCH_BY_STEP``, off by default), always for a run from before it."""
        if self._input.search_by_step is not None:
            return self._input.search_by_step
        return not self.lean()

    def lean(self) -> bool:
        """Whether this run may take the cheaper paths of issue 18 (:data:`LEAN`).

        A journey started on this code says so in its input (``search_by_step`` set), and asks no patch. A chain
        started before is asked the patch once, where it first matters (the SDK's ``TemporalChangeVersion``
        upsert: one action), keeps the answer across continue-as-new, and, when it turns lean, clears the search
        attributes it had set at every rest, which would go stale (one more action, once). Histories recorded
        before replay as they ran: the patch is False there.
        """
        state = self._state
        if self._input.search_by_step is not None:
            return True
        if state.lean is None:
            state.lean = workflow.patched(LEAN)
            if state.lean:
                workflow.upsert_search_attributes(
                    [sa.STEP.value_unset(), sa.STATUS.value_unset(), sa.WAIT_UNTIL.value_unset()]
                )
        return state.lean

    def _result(self) -> JourneyResult:
        state = self._state
        return JourneyResult(
            status=state.status,
            end_reason=state.end_reason,
            goal_reached=state.goal_reached_at is not None,
            sends=len(state.sends),
        )
