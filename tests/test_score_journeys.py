"""The shipped hot-leads example end to end (time-skipping server, SQLite and PostgreSQL): events on the API's
path raise a customer's lead score over 50, she enters ``hot_leads``, ``segment_entered.hot_leads`` starts the
shipped ``hot_leads_crm`` map, and its signed webhook reaches a real local CRM endpoint with her score, read by
the load_profile activity; a template reads the scores too. A customer below the threshold starts nothing."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.channels.webhook_channel import SIGNATURE_HEADER, verify_signature
from audiences.definitions import load_segments
from audiences.membership import Audiences
from contracts.ids import journey_workflow_id
from runtime.settings import DeliverySettings
from starter.api.ingestion import Ingestion
from starter.api.models import IdentifyMessage, TrackMessage
from starter.api.services import ApiServices
from testkit import JourneyEnvironment
from testkit.harness import ROOT

SECRET = "crm-secret"


HELLO = """
name: hot_leads_hello
entry:
  events: [segment_entered.hot_leads]
events:
  segment_entered.hot_leads:
    description: Announced by journeys itself when a customer enters hot_leads (docs/audiences.md).
    properties:
      segment: string
steps:
  - id: hello
    send: {channels: [email], template: hot_hello, category: transactional}
"""
HELLO_TEMPLATE = """
email:
  subject: "a score of {{ scores.lead_score | round | int }}"
  text: "group: {{ scores.customer_value.group or 'none yet' }}"
"""
"""A template reads the computed traits: its send computes them (the map's expressions never read them)."""


@pytest.fixture
def crm() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real local HTTP endpoint standing in for the CRM: it records each body it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            signed = verify_signature(SECRET, self.headers[SIGNATURE_HEADER], raw)
            received.append({"path": self.path, "body": json.loads(raw), "signed": signed})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _shipped(tmp_path: Path) -> Path:
    """The shipped map, its template, the scores and the segment."""
    folder = tmp_path / "journeys"
    (folder / "templates").mkdir(parents=True)
    shutil.copy(ROOT / "journeys" / "events.yaml", folder)
    shutil.copytree(ROOT / "journeys" / "scores", folder / "scores")
    (folder / "segments").mkdir()
    shutil.copy(ROOT / "journeys" / "segments" / "hot_leads.yaml", folder / "segments")
    shutil.copy(ROOT / "journeys" / "hot_leads_crm.yaml", folder)
    shutil.copy(ROOT / "journeys" / "templates" / "hot_lead_crm.yaml", folder / "templates")
    (folder / "hot_leads_hello.yaml").write_text(HELLO)
    (folder / "templates" / "hot_hello.yaml").write_text(HELLO_TEMPLATE)
    return folder


async def test_a_hot_lead_is_handed_to_the_crm(
    time_env: WorkflowEnvironment, tmp_path: Path, database_url: str, crm: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = crm
    folder = _shipped(tmp_path)
    queue = f"scores-{uuid.uuid4().hex[:8]}"
    crm_channel = DeliverySettings(webhook_provider="http", webhook_url=f"{url}/hooks/hot-lead", webhook_secret=SECRET)
    async with JourneyEnvironment.start(
        folder, env=time_env, database_url=database_url, task_queue=queue, delivery=crm_channel
    ) as system:
        services = ApiServices(system.journeys, system.engine, audiences=Audiences(load_segments(folder / "segments")))
        ingestion = Ingestion(lambda: services)
        for journey in ("hot_leads_crm", "hot_leads_hello"):
            system.started[(journey, "ann")] = {journey_workflow_id(journey, "ann")}

        async def track(user: str, event: str) -> None:
            await ingestion.message(TrackMessage.model_validate({"userId": user, "event": event}))

        # ann: a company of 80 (20 points), a look at the prices (10): 30, not hot yet.
        await ingestion.message(IdentifyMessage.model_validate({"userId": "ann", "traits": {"company_size": 80}}))
        await track("ann", "pricing_viewed")
        assert await system.rest(journey_workflow_id("hot_leads_crm", "ann")) is None
        # A demo request (40) makes her hot at once: re-checked on the API's path, no schedule needed.
        await track("ann", "demo_requested")
        state = await system.rest(journey_workflow_id("hot_leads_crm", "ann"))
        # It went through its one step and rests in its 30-day cooldown: no second hand-over within a month.
        assert state is not None and (state.status, state.end_reason) == ("cooldown", "reached the end")
        [call] = received
        assert (call["path"], call["signed"]) == ("/hooks/hot-lead", True)
        body = call["body"]
        assert (body["customer_id"], body["template"], body["journey"]) == ("ann", "hot_lead_crm", "hot_leads_crm")
        handed = body["content"]["vars"]
        assert handed["lead_score"] == pytest.approx(70.0, abs=0.1)  # decayed by the seconds since
        assert handed["customer_value"] is None  # no purchase yet: no RFM group
        await system.rest(journey_workflow_id("hot_leads_hello", "ann"))
        [hello] = [row for row in system.sends("ann") if row.template == "hot_hello"]
        assert (hello.content["subject"], hello.content["text"]) == ("a score of 70", "group: none yet")

        # bob only looked at the prices: 10 points, nothing starts.
        await track("bob", "pricing_viewed")
        assert await system.rest(journey_workflow_id("hot_leads_crm", "bob")) is None
        assert len(received) == 1
