"""``journeys outbox`` and ``journeys preview``: what a newcomer runs to see what journeys send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.rendering import TemplateRenderer
from contracts.activities import SendMessageInput
from runtime.settings import DeliverySettings, Settings
from starter.cli import main
from storage import Customer, make_engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Settings:
    """The commands' settings, from the environment as a user sets it; the subprocess test inherits it."""
    monkeypatch.setenv("JOURNEYS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", database_url)
    monkeypatch.setenv("JOURNEYS_JOURNEYS_DIR", str(ROOT / "journeys"))
    return Settings()


async def _sends(settings: Settings) -> None:
    engine = make_engine(settings.database)
    with Session(engine) as session:
        session.add(Customer(id="c1", traits={"first_name": "Maria", "locale": "es"}))
        session.add(Customer(id="c2", traits={}))
        session.commit()
    acts = DeliveryActivities(
        engine,
        TemplateRenderer(settings.templates_dir),
        settings=DeliverySettings(quiet_hours_start="00:00", quiet_hours_end="00:00"),
    )
    for customer, channels in (("c1", ["push", "email"]), ("c2", ["push"])):
        await ActivityEnvironment().run(
            acts.send_message,
            SendMessageInput(
                idempotency_key=f"key-{customer}",
                journey="pharmacy_refill",
                step="remind_refill",
                customer_id=customer,
                channels=channels,
                template="refill_reminder",
                category="transactional",
                variables={"vars": {"supply_ends": "2026-12-25"}},
            ),
        )
    engine.dispose()


async def test_outbox_lists_and_filters_what_was_sent(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    await _sends(settings)
    assert main(["outbox", "--customer", "c1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["customer_id"], r["channel"], r["status"]) for r in rows] == [
        ("c1", "push", "sent"),
        ("c1", "email", "sent"),
    ]
    assert rows[0]["content"]["title"] == "Es hora de resurtir"
    assert main(["outbox", "--channel", "push", "--json"]) == 0
    assert [json.loads(line)["customer_id"] for line in capsys.readouterr().out.splitlines()] == ["c1", "c2"]
    assert main(["outbox", "--journey", "other"]) == 0
    assert "outbox is empty" in capsys.readouterr().out
    assert main(["outbox"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["AT", "(UTC)", "CUSTOMER"]
    assert any("pharmacy_refill/remind_refill" in line and "Es hora de resurtir" in line for line in table)


async def test_the_outbox_command_runs_as_a_program(settings: Settings) -> None:
    await _sends(settings)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "journeys"), "outbox", "--customer", "c2"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
        check=True,
    )
    assert "c2" in done.stdout and "Time to refill" in done.stdout


def test_preview_renders_for_the_customers_locale(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(settings.database)
    with Session(engine) as session:
        session.add(Customer(id="c1", traits={"first_name": "Maria", "locale": "es-MX"}))
        session.commit()
    engine.dispose()
    assert main(["preview", "refill_reminder", "--customer", "c1", "--var", "supply_ends=2026-12-25"]) == 0
    out = capsys.readouterr().out
    assert "== push (es-MX)" in out and "Su receta se termina el 25/12" in out
    assert "== email" in out and "Hello Maria" in out
    assert main(["preview", "refill_reminder", "--customer", "c1", "--channel", "push", "--locale", "en"]) == 1
    assert "supply_ends" in capsys.readouterr().err
    assert main(["preview", "no_such_template", "--customer", "c1"]) == 2
    assert "not found" in capsys.readouterr().err
