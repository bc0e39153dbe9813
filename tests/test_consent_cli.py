"""``journeys consent`` and ``journeys customers``: a customer's say and data-subject requests from a shell."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.consent import consent_refusal
from starter.cli import main
from storage import make_engine
from testkit.harness import running_journeys


def test_grant_revoke_show_and_audit(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    assert main(["consent", "revoke", "c1", "--channel", "email", "--category", "offers"]) == 0
    assert capsys.readouterr().out == "customer c1: revoked email/offers (cli)\n"
    assert main(["consent", "revoke", "c1", "--category", "promotional", "--for", "30d", "--source", "call"]) == 0
    assert main(["consent", "grant", "c1", "--channel", "sms", "--source", "signup_form"]) == 0
    capsys.readouterr()

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            reason = consent_refusal(session, "c1", "push", "promotional", promotional_requires_opt_in=False)
            assert reason is not None and reason.startswith("paused: promotional paused until")
            assert consent_refusal(session, "c1", "sms", "transactional", promotional_requires_opt_in=False) is None
    finally:
        engine.dispose()

    assert main(["consent", "show", "c1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    cells = {(c["channel"], c["scope"]): c["allowed"] for c in shown["choices"]}
    assert cells[("email", "offers")] is False and cells[("email", "news")] is True
    assert shown["paused_until"] is not None
    assert main(["consent", "show", "c1"]) == 0
    text = capsys.readouterr().out
    assert "offers               email  no   unconsented: email/offers revoked (cli)" in text
    assert "promotions paused until" in text

    assert main(["consent", "audit", "--customer", "c1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["channel"], r["category"], r["granted"], r["source"], bool(r["until"])) for r in rows] == [
        ("email", "offers", "False", "cli", False),
        ("*", "promotional", "False", "call", True),
        ("sms", "*", "True", "signup_form", False),
    ]


def test_a_wrong_category_or_duration_is_one_line_and_changes_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    assert main(["consent", "revoke", "c1", "--category", "raffles"]) == 2
    assert capsys.readouterr().err.startswith("journeys consent: --category: 'raffles' is not one of")
    assert main(["consent", "revoke", "c1", "--for", "soon"]) == 2
    assert capsys.readouterr().err.startswith("journeys consent: --for:")
    assert main(["consent", "audit", "--since", "yesterday"]) == 2
    capsys.readouterr()
    assert main(["consent", "audit"]) == 0
    assert capsys.readouterr().out == "at,customer_id,channel,category,granted,source,until\n"


async def test_customers_export_and_forget(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    customer = f"dsr-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_CODEC_KEYS", "")
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        j.add_customer(customer, email=f"{customer}@example.com")
        await j.send(customer, "order_placed", order_id="o-9", total=5)
        await j.settled("order_updates", customer, "o-9")
        out = tmp_path / "export.json"
        assert await asyncio.to_thread(main, ["customers", "export", customer, "-o", str(out)]) == 0
        exported = json.loads(out.read_text())
        assert exported["profile"]["email"] == f"{customer}@example.com"
        assert [m["template"] for m in exported["messages"]] == ["order_confirmed"]
        capsys.readouterr()

        assert await asyncio.to_thread(main, ["customers", "forget", customer]) == 0
        result = json.loads(capsys.readouterr().out)
        order_journey = j.handle("order_updates", customer, "o-9").id
        assert order_journey in result["journeys_ended"] and result["messages_redacted"] == 1
        described = await j.client.get_workflow_handle(order_journey).describe()
        assert described.status == WorkflowExecutionStatus.TERMINATED
        [row] = j.outbox(customer)
        assert row.status == "sent" and row.sent_at is not None and set(row.content) == {"redacted"}
        assert j.profile(customer) == {}


def test_identify_on_the_command_line_takes_consent_as_the_api_does(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    assert main(["identify", "c2", 'first_name="Cy"', 'consent={"sms": false}']) == 0
    assert main(["consent", "audit", "--customer", "c2", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()[1:]
    assert {k: v for k, v in json.loads(line).items() if k in ("channel", "category", "granted", "source")} == {
        "channel": "sms",
        "category": "*",
        "granted": False,
        "source": "cli",
    }
    assert main(["identify", "c2", 'consent={"fax": true}']) == 2
    assert "consent.fax: not a channel" in capsys.readouterr().err
