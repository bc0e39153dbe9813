"""A deliberately incompatible version of the journey workflow, for the replay test to catch.

In its own module: the workflow sandbox re-imports the module that defines a workflow, and a test module
(with pytest in it) does not import cleanly there.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.journey import JourneyResult
    from workflows.journey import JourneyWorkflow
    from workflows.models import JourneyInput


@workflow.defn(name="Journey")
class JourneyWithoutProfileLoad(JourneyWorkflow):
    """Entry no longer loads the profile: one activity fewer than every recorded history has."""

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyResult:
        return await super().run(input)

    async def _enter(self) -> bool:
        state = self._state
        await workflow.wait_condition(lambda: bool(state.inbox))
        trigger = state.inbox.pop(0)
        state.entry_id, state.entered_at = trigger.id, workflow.now()
        state.trigger = state.event = dict(trigger.properties)
        for name, expression in self._map.variables.items():
            state.vars[name] = self.value(expression, name)
        state.status, state.step = "active", self._map.steps[0].id
        return True
