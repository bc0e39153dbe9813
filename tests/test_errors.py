"""One exception tree (``contracts.errors``), mapped to exit codes in one place (``starter.exit_codes``) and to HTTP
statuses in one place (``starter.api.errors``): every error of ours has a family, so every boundary knows it."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.channels import PermanentDeliveryError, RetryableDeliveryError
from contracts.errors import (
    AccessDenied,
    ConfigurationError,
    DeliveryError,
    InputError,
    JourneysError,
    NotConfigured,
    SchemaError,
    StorageError,
    UnavailableError,
    UsageError,
)
from journeymap import MapValidationError
from journeymap.errors import MapError
from journeymap.expressions import ExpressionError
from runtime.binaries import BinaryNotFound
from runtime.codec import CodecError
from runtime.connection import TemporalUnreachable, temporal_error
from runtime.settings import Settings
from starter.api import ApiServices, create_app, errors
from starter.api.server import ApiBindError
from starter.api.wire import BodyTooLarge
from starter.cli import main
from starter.client import JourneyClient
from starter.exit_codes import exit_code, message
from storage import make_engine

PACKAGES = (
    "activities",
    "analytics",
    "contracts",
    "journeymap",
    "runtime",
    "starter",
    "storage",
    "workers",
    "workflows",
)

ALEMBIC_SCRIPTS = ("storage.migrations.env", "storage.migrations.versions")
"""Run by Alembic inside its migration context, never imported: they define no error classes."""


def _our_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        modules = [root.__name__] + [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
        for name in modules:
            if name.startswith(ALEMBIC_SCRIPTS):
                continue
            module = importlib.import_module(name)
            found += [
                cls
                for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, BaseException) and cls.__module__ == name
            ]
    return found


def test_every_exception_class_of_ours_derives_from_the_root() -> None:
    classes = _our_exception_classes()
    names = {cls.__name__ for cls in classes}
    # The walk finds them (a walk that found nothing would pass anything).
    assert {"CodecError", "MapValidationError", "PermanentDeliveryError", "DevError", "BodyTooLarge"} <= names
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, JourneysError)] == []


def test_the_names_temporal_sees_are_unchanged() -> None:
    """The journey's retry policy and the recorded histories name these error types."""
    assert PermanentDeliveryError.__name__ == "PermanentDeliveryError"
    assert RetryableDeliveryError.__name__ == "RetryableDeliveryError"
    assert issubclass(PermanentDeliveryError, DeliveryError) and issubclass(RetryableDeliveryError, DeliveryError)


def test_the_old_standard_bases_still_catch_them() -> None:
    """``except ValueError`` / ``except RuntimeError`` written before the tree still catch what they caught."""
    assert issubclass(CodecError, ValueError) and issubclass(MapValidationError, ValueError)
    assert issubclass(ExpressionError, ValueError)
    assert issubclass(TemporalUnreachable, RuntimeError) and issubclass(ApiBindError, RuntimeError)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (JourneysError("x"), 1),
        (InputError("x"), 1),
        (MapValidationError([MapError("m.yaml", "steps", "x")]), 1),
        (ExpressionError("x"), 1),
        (UsageError("x"), 2),
        (ConfigurationError("x"), 2),
        (CodecError("x"), 2),
        (BinaryNotFound("x"), 2),
        (NotConfigured("x"), 2),
        (UnavailableError("x"), 1),
        (TemporalUnreachable("x"), 1),
        (ApiBindError("x"), 1),
        (StorageError("x"), 1),
        (SchemaError("x"), 1),
        (DeliveryError("x"), 1),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_codes(error: JourneysError, code: int) -> None:
    assert exit_code(error) == code


def test_an_error_is_one_line_per_problem_naming_the_command() -> None:
    assert message("describe", CodecError("key 'acc-1' is not configured")) == (
        "journeys describe: key 'acc-1' is not configured"
    )
    broken = MapValidationError([MapError("a.yaml", "entry", "Field required"), MapError("a.yaml", "steps", "bad")])
    assert message("report", broken) == "a.yaml: entry: Field required\na.yaml: steps: bad"  # as `validate` says


def test_a_wrong_argument_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["track", "c-1", "signed_up", "novalue"]) == 2
    assert capsys.readouterr().err == "journeys track: 'novalue': write properties as KEY=VALUE\n"


def test_a_database_that_cannot_be_opened_is_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", f"sqlite:///{tmp_path}")  # a folder, not a file
    assert main(["outbox"]) == 1
    err = capsys.readouterr().err
    assert err == "journeys outbox: the database failed: unable to open database file (JOURNEYS_DATABASE_URL)\n"


def test_temporal_not_answering_is_unavailable_and_a_refusal_is_not_translated() -> None:
    down = temporal_error(RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b""))
    assert isinstance(down, UnavailableError) and "UNAVAILABLE" in str(down)
    assert temporal_error(RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")) is None


STATUSES = [
    (JourneysError("x"), 500),
    (ConfigurationError("x"), 500),
    (NotConfigured("receipts are not configured"), 404),
    (InputError("body: not JSON"), 400),
    (MapValidationError([MapError("m.yaml", "steps", "x")]), 400),
    (AccessDenied("signature does not match"), 401),
    (BodyTooLarge("too large"), 413),
    (UnavailableError("Temporal did not answer"), 503),
    (TemporalUnreachable("cannot connect"), 503),
    (StorageError("the database failed"), 503),
    (SchemaError("behind"), 503),
]


@pytest.mark.parametrize(
    ("error", "status"), STATUSES, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v)
)
async def test_http_statuses_on_both_paths(error: JourneysError, status: int) -> None:
    """A route of the FastAPI app and the plain ASGI path answer an error with the same status and body."""
    app = FastAPI()
    errors.install(app)

    @app.get("/raises")
    async def raises() -> None:
        raise error

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        answered = await http.get("/raises")
    assert answered.status_code == status
    assert answered.json() == {"errors": [{"path": "", "message": str(error)}]}

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await errors.refuse(send, error)
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"]) == answered.json()


async def test_the_api_answers_503_when_the_database_fails(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    """A backend retries a 503; the body names the setting and no row values, on the lean path and FastAPI's."""
    engine = make_engine(f"sqlite:///{tmp_path}", create=False)  # a folder: every query fails
    journeys = JourneyClient(dev_env.client, {}, task_queue=task_queue)
    app = create_app(Settings(api_keys="k"), ApiServices(journeys, engine))
    body = json.dumps({"userId": "c-1", "event": "signed_up", "properties": {"email": "c1@example.com"}})
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            for content_type in ("application/json", "application/vnd.segment+json"):
                answered = await http.post(
                    "/v1/track", content=body, headers={"content-type": content_type}, auth=("k", "")
                )
                assert answered.status_code == 503, (content_type, answered.text)
                [problem] = answered.json()["errors"]
                assert "JOURNEYS_DATABASE_URL" in problem["message"] and "c1@example.com" not in problem["message"]
    finally:
        engine.dispose()
