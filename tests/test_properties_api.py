"""The event API against its own OpenAPI document (schemathesis): no 500s, clear 4xx, nothing signalled when
a request is rejected.

The API runs as deployed, a uvicorn process, against the session's real dev server; schemathesis generates
requests from ``/openapi.json``: invalid ones first (each must be refused with a 4xx, and no journey may start
from any of them), then valid ones (each answered as the document says).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err
from temporalio.testing import WorkflowEnvironment

from storage import make_engine
from testkit.harness import ROOT
from testkit.processes import free_port

KEY = "property-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

# schemathesis leaves its operations and the cases they generate unparametrized (``SearchStrategy[Case]``).
Operation = APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]


@pytest.fixture
def api(dev_env: WorkflowEnvironment, tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    """The API's base URL and its task queue."""
    port, task_queue = free_port(), f"props-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_API_KEYS": KEY,
    }
    code = (
        "import uvicorn; from runtime.settings import Settings; from starter.api.app import create_app; "
        f"uvicorn.run(create_app(Settings()), host='127.0.0.1', port={port}, log_level='warning')"
    )
    make_engine(database_url).dispose()  # `journeys setup`'s part: the API checks the schema, never creates it
    with (tmp_path / "api.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
            time.sleep(0.1)
        yield base, task_queue
    finally:
        process.terminate()
        process.wait(20)


PROFILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)


def _operations(schema: BaseSchema) -> list[Operation]:
    """The document's operations; one schemathesis cannot read fails the test with schemathesis's own error."""
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


async def _workflows(dev_env: WorkflowEnvironment, task_queue: str) -> int:
    return (await dev_env.client.count_workflows(f"TaskQueue = '{task_queue}'")).count


async def test_event_api_answers_as_its_openapi_says(dev_env: WorkflowEnvironment, api: tuple[str, str]) -> None:
    base, task_queue = api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    # A generated body over JOURNEYS_API_MAX_BODY_BYTES (a batch past maxItems can be) is refused with the
    # documented 413, a rejection as good as a 422; schemathesis's default list lacks it.
    schema.config.checks.negative_data_rejection.expected_statuses.append("413")
    operations = [op for op in _operations(schema) if op.path.startswith("/v1/")]
    assert {op.path for op in operations} >= {"/v1/track", "/v1/identify", "/v1/batch"}

    for operation in operations:

        @PROFILE
        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        def refused(case: Case) -> None:
            response = case.call(base_url=base, headers=AUTH)
            case.validate_response(response, checks=[not_a_server_error, negative_data_rejection])

        refused()

    # Nothing was signalled by any refused request: no journey exists on this API's task queue.
    time.sleep(2)  # visibility is eventually consistent: give a wrongly started journey time to show
    assert await _workflows(dev_env, task_queue) == 0

    for operation in operations:

        @PROFILE
        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        def accepted(case: Case) -> None:
            response = case.call(base_url=base, headers=AUTH)
            case.validate_response(
                response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
            )

        accepted()


async def test_requests_without_a_valid_key_are_refused_and_signal_nothing(
    dev_env: WorkflowEnvironment, api: tuple[str, str]
) -> None:
    base, task_queue = api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    track = next(op for op in _operations(schema) if op.path == "/v1/track")

    @PROFILE
    @given(case=track.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def unauthenticated(case: Case) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic !!"}):
            response = case.call(base_url=base, headers=headers)
            assert response.status_code == 401, response.text

    unauthenticated()
    time.sleep(2)
    assert await _workflows(dev_env, task_queue) == 0
