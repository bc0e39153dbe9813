"""Provider webhooks on the event API: only a correctly signed call changes anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest_asyncio
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from activities.consent import consent_refusal
from runtime.settings import DeliverySettings, Settings
from starter.api import ApiServices, create_app
from starter.api.webhooks import verify_svix_signature
from storage.tables import Delivery
from testkit.harness import Journeys, running_journeys

TOKEN = "twilio-auth-token"
SVIX_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def twilio_signature(url: str, params: dict[str, str]) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def svix_headers(body: bytes, *, secret: str = SVIX_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = base64.b64encode(hmac.new(key, f"msg-1.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return {
        "svix-id": "msg-1",
        "svix-timestamp": stamp,
        "svix-signature": f"v1,{mac}",
        "content-type": "application/json",
    }


@pytest_asyncio.fixture
async def hooks(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Journeys]]:
    settings = Settings(
        api_keys="k",
        email_webhook_secret=SVIX_SECRET,
        api_public_url="https://journeys.example",
        sms_help_text="Pharmacy help: call 555-0100. Reply STOP to opt out.",
        data_dir=tmp_path,
        delivery=DeliverySettings(twilio_auth_token=TOKEN),
    )
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        app = create_app(settings, ApiServices(j.journeys, j.engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://internal") as http:
            yield http, j


def ledger_row(j: Journeys, provider_message_id: str) -> None:
    with Session(j.engine) as session:
        session.add(
            Delivery(
                idempotency_key=f"k-{provider_message_id}",
                channel="email",
                delivery_key=f"k-{provider_message_id}#email",
                customer_id="hook-1",
                journey="pharmacy_refill",
                step="remind_refill",
                template="refill_reminder",
                category="transactional",
                status="sent",
                provider="http",
                provider_message_id=provider_message_id,
            )
        )
        session.commit()


def receipt_of(j: Journeys, provider_message_id: str) -> str | None:
    with Session(j.engine) as session:
        row = session.exec(select(Delivery).where(Delivery.provider_message_id == provider_message_id)).one()
        return row.receipt


async def test_signed_email_event_updates_the_ledger(hooks: tuple[httpx.AsyncClient, Journeys]) -> None:
    http, j = hooks
    ledger_row(j, "em-1")
    body = json.dumps({"type": "email.opened", "data": {"email_id": "em-1"}}).encode()
    forged = await http.post("/webhooks/email", content=body, headers=svix_headers(body, secret="whsec_" + "A" * 44))
    assert forged.status_code == 401
    assert receipt_of(j, "em-1") is None
    response = await http.post("/webhooks/email", content=body, headers=svix_headers(body))
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] is True
    assert receipt_of(j, "em-1") == "opened"


async def test_inbound_sms_stop_needs_twilios_signature(hooks: tuple[httpx.AsyncClient, Journeys]) -> None:
    http, j = hooks
    j.add_customer("hook-sms", phone="+1 555 0100")
    form = {"From": "+15550100", "Body": "STOP", "MessageSid": "SM1"}
    # Twilio signs the public URL it called, not the address the proxy forwarded to.
    signature = twilio_signature("https://journeys.example/webhooks/twilio/inbound", form)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    unsigned = await http.post("/webhooks/twilio/inbound", content=urlencode(form), headers=headers)
    assert unsigned.status_code == 401
    with Session(j.engine) as session:
        assert consent_refusal(session, "hook-sms", "sms", "transactional", promotional_requires_opt_in=False) is None

    signed = await http.post(
        "/webhooks/twilio/inbound", content=urlencode(form), headers={**headers, "X-Twilio-Signature": signature}
    )
    assert signed.status_code == 200
    assert signed.text == "<Response/>"
    with Session(j.engine) as session:
        assert consent_refusal(session, "hook-sms", "sms", "transactional", promotional_requires_opt_in=False)


async def test_unconfigured_provider_webhooks_are_not_there(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, database_url: str
) -> None:
    async with running_journeys(dev_env.client, tmp_path, task_queue, database_url=database_url) as j:
        app = create_app(Settings(api_keys="k", data_dir=tmp_path), ApiServices(j.journeys, j.engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
            assert (await http.post("/webhooks/email", content=b"{}")).status_code == 404
            assert (await http.post("/webhooks/twilio/status", content=b"")).status_code == 404


def test_svix_signature_refuses_old_timestamps() -> None:
    body = b"{}"
    headers = svix_headers(body)
    assert verify_svix_signature(SVIX_SECRET, headers, body)
    assert not verify_svix_signature(SVIX_SECRET, headers, body, now=time.time() + 3600)
    assert not verify_svix_signature(SVIX_SECRET, headers, b"{ }")


async def test_sms_keywords_stop_start_and_help(hooks: tuple[httpx.AsyncClient, Journeys]) -> None:
    http, j = hooks
    j.add_customer("hook-kw", phone="+15550177")
    headers = {"content-type": "application/x-www-form-urlencoded"}
    url = "https://journeys.example/webhooks/twilio/inbound"

    async def text(body: str, sid: str) -> httpx.Response:
        form = {"From": "+15550177", "Body": body, "MessageSid": sid}
        signed = {**headers, "X-Twilio-Signature": twilio_signature(url, form)}
        return await http.post("/webhooks/twilio/inbound", content=urlencode(form), headers=signed)

    def refusal() -> str | None:
        with Session(j.engine) as session:
            return consent_refusal(session, "hook-kw", "sms", "promotional", promotional_requires_opt_in=False)

    assert (await text(" Stop. ", "SM-a")).text == "<Response/>"  # case, spaces and punctuation aside
    assert refusal() == "unconsented: sms/promotional revoked (sms_stop)"
    await text("unstop", "SM-b")
    assert refusal() is None
    await text("opt out", "SM-c")
    assert refusal() is not None
    helped = await text("HELP", "SM-d")
    assert helped.text == "<Response><Message>Pharmacy help: call 555-0100. Reply STOP to opt out.</Message></Response>"
    assert refusal() is not None, "HELP changes nothing"
    stranger = {"From": "+15550999", "Body": "help", "MessageSid": "SM-e"}
    answer = await http.post(
        "/webhooks/twilio/inbound",
        content=urlencode(stranger),
        headers={**headers, "X-Twilio-Signature": twilio_signature(url, stranger)},
    )
    assert "<Message>" in answer.text, "carriers require HELP to be answered for any number"
