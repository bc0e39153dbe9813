"""The sandbox journey workflows run in, for workers and replayers alike: the SDK's, with three savings.

**Pure packages pass through.** ``contracts`` and ``journeymap`` (and jinja2, which compiles expressions lazily
and imports its runtime then) are plain, deterministic code: passed through, they are imported once per process
instead of once per workflow run, and every run shares the compiled-expression cache.

**The per-payload question is answered outside.** For every payload of every activation and completion the
SDK asks the workflow instance which serialization context applies (the activity it is for, ...), so that a
context-aware codec can use it. Inside the sandbox each answer is an ``exec`` through the sandbox's importer:
about 4 per payload a workflow sends, 3 per payload it receives, the largest single cost of a replay
(docs/benchmarks.md). Our converters ignore the context, so :class:`JourneySandbox` answers with the
workflow's own context for every payload, without entering the sandbox: the bytes are the same. It does so only
when the data converter really ignores it (:func:`ignores_context`, probed when the runner is made); a
context-aware converter gets the SDK's per-payload answers.

**A replayer compiles the workflow module once.** The sandbox imports a workflow's module afresh for every
workflow run (that isolation is what makes a replay trustworthy), and where no bytecode is on disk
(``PYTHONDONTWRITEBYTECODE``, a read-only checkout) Python compiles its source again each time: most of the
import, 4-10% of a journey's replay. :func:`workflow_bytecode` compiles the modules once for a process that
replays many histories (``journeys replay``, ``journeys check``). An installed package has its bytecode already
(pip compiles it), and so has a worker whose process could write it.
"""

from __future__ import annotations

import dataclasses
import py_compile
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import temporalio.bridge.proto.workflow_activation
import temporalio.bridge.proto.workflow_completion
from temporalio import workflow
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from runtime.connection import DATA_CONVERTER

PASSED_THROUGH = ("jinja2", "markupsafe", "contracts", "journeymap")
"""Imported once per process, not per workflow run: pure, deterministic code without state of its own."""

_PROBE = ActivitySerializationContext(
    namespace="probe",
    activity_id="probe",
    activity_type="probe",
    activity_task_queue="probe",
    workflow_id="probe",
    workflow_type="probe",
    is_local=False,
)


def ignores_context(data_converter: DataConverter) -> bool:
    """Whether ``data_converter`` encodes every payload alike whatever the serialization context (none of its
    parts takes one) and stores nothing externally."""
    return data_converter.external_storage is None and data_converter.with_context(_PROBE) is data_converter


@dataclasses.dataclass(frozen=True)
class JourneySandbox(SandboxedWorkflowRunner):
    """The SDK's sandbox; when ``context_free``, payload contexts are answered without entering it."""

    context_free: bool = False

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        return _ContextFree(instance) if self.context_free else instance


class _ContextFree(WorkflowInstance):
    """A sandboxed workflow instance whose payloads all take the workflow's own context."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner
        info = inner.get_info()
        self._context = WorkflowSerializationContext(namespace=info.namespace, workflow_id=info.workflow_id)
        self._store = StorageDriverStoreContext(
            target=StorageDriverWorkflowInfo(
                id=info.workflow_id, run_id=info.run_id, type=info.workflow_type, namespace=info.namespace
            )
        )

    def activate(
        self, act: temporalio.bridge.proto.workflow_activation.WorkflowActivation
    ) -> temporalio.bridge.proto.workflow_completion.WorkflowActivationCompletion:
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return self._context

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return self._store

    def get_info(self) -> workflow.Info:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


def journey_sandbox(data_converter: DataConverter | None = None) -> JourneySandbox:
    """The runner for workflows whose payloads ``data_converter`` converts (by default :data:`DATA_CONVERTER`)."""
    return JourneySandbox(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH),
        context_free=ignores_context(data_converter or DATA_CONVERTER),
    )


@contextmanager
def workflow_bytecode(workflows: Iterable[type]) -> Iterator[None]:
    """While inside, the sandboxes load the bytecode of the ``workflows``' modules (and of their packages, which
    the sandbox imports afresh too) instead of compiling them.

    The bytecode is written to a temporary folder made the process's ``sys.pycache_prefix`` meanwhile, never
    beside the sources; Python still checks it against each source's modification time and size, as always.
    """
    names = {w.__module__ for w in workflows}
    names |= {name.rsplit(".", i)[0] for name in names for i in range(1, name.count(".") + 1)}  # their packages
    sources = {getattr(sys.modules.get(name), "__file__", None) or "" for name in names}
    previous = sys.pycache_prefix
    with tempfile.TemporaryDirectory(prefix="journeys-bytecode-") as folder:
        sys.pycache_prefix = folder
        try:
            for source in sorted(s for s in sources if s.endswith(".py")):
                py_compile.compile(source, doraise=True)
            yield
        finally:
            sys.pycache_prefix = previous
