"""Build the journey worker: workflows plus activities, with their dependencies made once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import httpx
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.broadcasts import BroadcastActivities, StartJourney
from activities.delivery import DeliveryActivities
from activities.links import customer_links
from activities.profiles import ProfileActivities
from activities.rendering import TemplateRenderer
from activities.segments import Announce, SegmentActivities
from activities.webhooks import WebhookActivities
from audiences.definitions import load_segments
from audiences.membership import Audiences
from audiences.scores import load_scores, scores_beside
from journeymap.preferences import load_preferences
from journeymap.template_reads import register_folder
from runtime.settings import Settings
from workers.sandbox import JourneySandbox, journey_sandbox
from workflows.broadcasts import BroadcastWorkflow
from workflows.journey import JourneyWorkflow
from workflows.segments import SegmentRefreshWorkflow


def workflow_runner(data_converter: DataConverter | None = None) -> JourneySandbox:
    """The sandbox for journey workflows, shared by workers and replayers so both run the code alike
    (:mod:`workers.sandbox`); ``data_converter`` is the one the workflows' payloads go through (by default
    ``runtime.connection.DATA_CONVERTER``)."""
    return journey_sandbox(data_converter)


@asynccontextmanager
async def journey_worker(
    client: Client,
    settings: Settings,
    engine: Engine,
    *,
    task_queue: str | None = None,
    sandboxed: bool = True,
    announce: Announce | None = None,
    start_journey: StartJourney | None = None,
) -> AsyncIterator[Worker]:
    """A worker for ``task_queue`` (the configured one by default), running until the context exits.

    ``sandboxed=False`` runs the workflows without the sandbox, for ``journeys simulate`` only: the sandbox
    guards against non-deterministic code, which the tests and replays (sandboxed) catch, and costs the
    simulation about a fifth of its time (docs/benchmarks.md). Workers and tests keep it.

    ``announce`` routes the segment changes a refresh finds to journeys (the starter's
    ``JourneyClient.send_event``: routing lives above this floor); without it they are recorded, not routed.
    ``start_journey`` starts a broadcast member's journey (``JourneyClient.start_broadcast``); without it a
    broadcast's pages fail (the fan-out waits, retrying, for a worker that has it).
    Raises ``MapValidationError`` when a segment or score definition is not valid.
    """
    scores = load_scores(scores_beside(settings.segments_dir))
    segments = SegmentActivities(engine, Audiences(load_segments(settings.segments_dir, scores=scores)), announce)
    # Sends carry only what their template reads (journeymap.template_reads): the templates this worker renders.
    register_folder(settings.templates_dir, task_queue or settings.task_queue)
    broadcasts = BroadcastActivities(engine, settings.delivery, start_journey)
    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.delivery.http_timeout_seconds)) as http:
        delivery = DeliveryActivities(
            engine,
            TemplateRenderer(settings.templates_dir),
            http=http,
            settings=settings.delivery,
            links=customer_links(settings),
            preferences=load_preferences(settings.preferences_file),
            scores=scores,
        )
        profiles = ProfileActivities(engine, scores)
        webhooks = WebhookActivities(http)
        with ThreadPoolExecutor(max_workers=16) as executor:
            worker = Worker(
                client,
                task_queue=task_queue or settings.task_queue,
                workflows=[JourneyWorkflow, SegmentRefreshWorkflow, BroadcastWorkflow],
                activities=[
                    delivery.send_message,
                    profiles.load_profile,
                    profiles.update_profile,
                    webhooks.call_webhook,
                    segments.refresh_segments,
                    broadcasts.start_broadcast_page,
                    broadcasts.segment_size,
                ],
                activity_executor=executor,
                workflow_runner=workflow_runner(client.data_converter) if sandboxed else UnsandboxedWorkflowRunner(),
                max_cached_workflows=settings.worker_max_cached_workflows,
                max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
                graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
            )
            delivery_workers = [
                Worker(
                    client,
                    task_queue=queue,
                    activities=[delivery.send_message],
                    max_task_queue_activities_per_second=rate,
                    graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
                )
                for queue, rate in delivery_queues(settings).items()
            ]
            async with AsyncExitStack() as stack:
                for extra in delivery_workers:
                    await stack.enter_async_context(extra)
                async with worker:
                    yield worker


def delivery_queues(settings: Settings) -> dict[str, float | None]:
    """The delivery task queues this deployment serves, with their server-side rate limit (per second).

    Temporal enforces ``max_task_queue_activities_per_second`` for the whole task queue, across all workers
    polling it; that is what keeps a provider under its limit however many workers run.
    """
    if not settings.delivery_task_queue:
        return {}
    queues: dict[str, float | None] = {settings.delivery_task_queue: None}
    for channel, per_second in settings.delivery_rates().items():
        queues[f"{settings.delivery_task_queue}-{channel}"] = per_second
    return queues
