"""Sending a journey step's message, effectively once, on the customer's terms.

For each channel of the step (in the customer's preferred order when the mode is ``first``) the activity:

1. finds the ledger row ``<idempotency key>#<channel>``: a row already sent, suppressed or failed is the answer,
   and nothing is sent again, however often the activity is retried or re-executed;
2. checks consent (channel and category) and that the profile has an address for the channel: if not, the row
   is recorded ``suppressed`` with the reason (``mode: first`` then moves on to the next channel);
3. checks quiet hours in the customer's local time: inside them the outcome is ``deferred`` with ``retry_at``,
   and the workflow sleeps durably and calls again with the same key;
4. renders the template (an SMS over the segment limit is ``failed``), writes the row ``pending`` and, for a
   promotional message, applies the cross-journey frequency cap (``suppressed`` when over it);
5. hands the message to the channel's provider with the idempotency key, and records ``sent`` with the
   provider's message id, or ``failed`` on a permanent rejection. A retryable error (timeout, 429, 5xx) leaves
   the row ``pending`` and fails the attempt, honouring the provider's Retry-After.

The embedded default provider for every channel is the outbox: the rendered message is the ledger row, and
``journeys outbox`` shows it. docs/delivery.md says which crash window remains for providers that take no key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import caps, quiet_hours
from activities.channels.base import (
    ChannelProvider,
    OutgoingMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from activities.channels.http_email import HttpEmailProvider
from activities.channels.outbox import OutboxProvider
from activities.channels.push import FcmProvider
from activities.channels.smtp import SmtpProvider
from activities.channels.twilio import TwilioProvider
from activities.channels.webhook_channel import WebhookProvider
from activities.consent import ADDRESS_NAMES, Profile, consent_refusal, load_profile
from activities.rendering import TemplateRenderer, sms_segments
from contracts.activities import ChannelOutcome, SendMessageInput, SendMessageResult
from runtime.settings import DeliverySettings
from storage.tables import Delivery

FINAL = ("sent", "suppressed", "failed")


def build_providers(http: httpx.AsyncClient | None, settings: DeliverySettings) -> dict[str, ChannelProvider]:
    """The provider of each channel, as configured; unknown names fail the worker's start, not a send."""
    outbox = OutboxProvider()
    choices: dict[str, dict[str, ChannelProvider]] = {"outbox": {}, "smtp": {}, "http": {}, "twilio": {}, "fcm": {}}
    for channel in ("email", "sms", "voice", "push", "webhook"):
        choices["outbox"][channel] = outbox
    choices["smtp"]["email"] = SmtpProvider(settings)
    if http is not None:
        choices["http"]["email"] = HttpEmailProvider(http, settings)
        choices["http"]["webhook"] = WebhookProvider(http, settings)
        twilio = TwilioProvider(http, settings)
        choices["twilio"] = {"sms": twilio, "voice": twilio}
        choices["fcm"]["push"] = FcmProvider(http, settings)
    configured = {
        "email": settings.email_provider,
        "sms": settings.sms_provider,
        "voice": settings.voice_provider,
        "push": settings.push_provider,
        "webhook": settings.webhook_provider,
    }
    providers: dict[str, ChannelProvider] = {}
    for channel, name in configured.items():
        provider = choices.get(name, {}).get(channel)
        if provider is None:
            raise ValueError(f"JOURNEYS_{channel.upper()}_PROVIDER: {name!r} is not a provider for {channel}")
        providers[channel] = provider
    return providers


@dataclass
class _Ready:
    """A send that passed every check: its pending row and the message to hand to the provider."""

    row_id: int
    message: OutgoingMessage
    provider: ChannelProvider


class DeliveryActivities:
    """Built once per worker with its dependencies; ``send_message`` is the activity journeys call."""

    def __init__(
        self,
        engine: Engine,
        renderer: TemplateRenderer,
        *,
        http: httpx.AsyncClient | None = None,
        settings: DeliverySettings | None = None,
        providers: Mapping[str, ChannelProvider] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``providers`` and ``clock`` are seams for tests; by default they come from ``settings``, and the
        clock is the later of the wall clock and the server's time for the attempt (see :func:`_now`)."""
        self._clock = clock or _now
        self._engine = engine
        self._renderer = renderer
        self._settings = settings or DeliverySettings()
        self._providers = dict(providers) if providers is not None else build_providers(http, self._settings)

    @activity.defn(name="send_message")
    async def send_message(self, input: SendMessageInput) -> SendMessageResult:
        async with _heartbeating():
            return await self._send_message(input)

    async def _send_message(self, input: SendMessageInput) -> SendMessageResult:
        now = self._clock()
        profile = await asyncio.to_thread(self._profile, input.customer_id)
        channels = profile.order(input.channels) if input.mode == "first" else list(input.channels)
        outcomes: list[ChannelOutcome] = []
        retry: RetryableDeliveryError | None = None
        for channel in channels:
            try:
                outcome = await self._deliver(input, channel, profile, now)
            except RetryableDeliveryError as exc:
                if input.mode == "first":
                    # A passing fault is no reason to fall back to a channel the customer likes less.
                    raise _retryable(exc) from exc
                retry = retry or exc
                continue
            outcomes.append(outcome)
            if input.mode == "first" and outcome.status in ("sent", "deferred"):
                break
        if retry is not None:
            # Every other channel went (or was settled) first; the retried attempt skips them via the ledger.
            raise _retryable(retry) from retry
        return SendMessageResult(outcomes=outcomes)

    def _profile(self, customer_id: str) -> Profile:
        with Session(self._engine) as session:
            return load_profile(session, customer_id, default_timezone=self._settings.default_timezone)

    async def _deliver(self, input: SendMessageInput, channel: str, profile: Profile, now: datetime) -> ChannelOutcome:
        # Database work blocks: it runs in a thread, off the event loop the workflows share.
        prepared = await asyncio.to_thread(self._prepare, input, channel, profile, now)
        if isinstance(prepared, ChannelOutcome):
            return prepared
        try:
            receipt = await prepared.provider.send(prepared.message)
        except PermanentDeliveryError as exc:
            await asyncio.to_thread(self._finish, prepared.row_id, "failed", str(exc), None, None, now)
            return ChannelOutcome(channel=channel, status="failed", reason=str(exc))
        except RetryableDeliveryError as exc:
            await asyncio.to_thread(self._note_retry, prepared.row_id, str(exc), now)
            raise
        await asyncio.to_thread(self._finish, prepared.row_id, "sent", None, receipt.provider, receipt.message_id, now)
        return ChannelOutcome(channel=channel, status="sent", provider_message_id=receipt.message_id)

    def _prepare(
        self, input: SendMessageInput, channel: str, profile: Profile, now: datetime
    ) -> ChannelOutcome | _Ready:
        s = self._settings
        key = f"{input.idempotency_key}#{channel}"
        provider = self._providers.get(channel)
        with Session(self._engine) as session:
            row = session.exec(select(Delivery).where(Delivery.delivery_key == key)).first()
            if row is not None and row.status in FINAL:
                return _outcome(row)
            refusal = consent_refusal(
                session,
                input.customer_id,
                channel,
                input.category,
                promotional_requires_opt_in=s.promotional_requires_opt_in,
            )
            if refusal is None and input.category == "promotional" and profile.traits.get("promotional_paused"):
                # The brand's own word (the lifecycle pauses promotions for a lost customer), not the customer's.
                refusal = "paused: promotional messages paused for this customer"
            address = profile.address(channel)
            if address is None and provider is not None and provider.name == "outbox":
                address = None if s.outbox_requires_address else f"customer:{input.customer_id}"
            if refusal is None and address is None:
                refusal = f"unreachable: no {ADDRESS_NAMES.get(channel, 'address')}"
            if refusal is None and provider is None:
                refusal = f"unreachable: no provider for {channel}"
            if refusal is not None:
                return _outcome(self._record(session, row, input, channel, now, "suppressed", refusal))
            assert address is not None and provider is not None
            if row is None:
                # A pending row means an earlier attempt passed these checks and may have reached the provider:
                # it goes on now, whatever the clock says. Only a send not yet begun waits for the window.
                opens = quiet_hours.deferred_until(now, profile.timezone, channel, input.category, s)
                if opens is not None:
                    return ChannelOutcome(channel=channel, status="deferred", reason="quiet hours", retry_at=opens)
            content, problem = self._render(input, channel, profile)
            if problem is not None:
                return _outcome(self._record(session, row, input, channel, now, "failed", problem))
            if row is None:
                try:
                    row = self._record(session, None, input, channel, now, "pending", None, content=content)
                except IntegrityError:
                    # Another attempt of this very send wrote its row first: its state is the answer.
                    session.rollback()
                    row = session.exec(select(Delivery).where(Delivery.delivery_key == key)).one()
                    if row.status in FINAL:
                        return _outcome(row)
                else:
                    if input.category == "promotional":
                        assert row.id is not None
                        capped = caps.cap_refusal(
                            session,
                            input.customer_id,
                            row_id=row.id,
                            now=now,
                            cap=s.promotional_cap,
                            days=s.promotional_cap_days,
                        )
                        if capped is not None:
                            return _outcome(self._record(session, row, input, channel, now, "suppressed", capped))
            row.attempts += 1
            row.provider = provider.name
            row.updated_at = now
            session.add(row)
            session.commit()
            assert row.id is not None
            metadata = {
                "journey": input.journey,
                "step": input.step,
                "template": input.template,
                "category": input.category,
                "customer_id": input.customer_id,
            }
            if profile.locale:
                metadata["locale"] = profile.locale
            message = OutgoingMessage(
                idempotency_key=key, channel=channel, to=address, content=dict(row.content), metadata=metadata
            )
            return _Ready(row.id, message, provider)

    def _render(self, input: SendMessageInput, channel: str, profile: Profile) -> tuple[dict[str, str], str | None]:
        """The message's parts, or why it cannot go (a template error or an over-long SMS)."""
        if channel == "webhook":
            return {"json": json.dumps(input.variables, default=str, sort_keys=True)}, None
        context = {**input.variables, "profile": profile.traits}
        try:
            content = self._renderer.render(input.template, channel, context, profile.locale)
        except ApplicationError as exc:
            return {}, str(exc)
        if channel == "sms":
            encoding, segments = sms_segments(content["text"])
            if segments > self._settings.sms_max_segments:
                return content, (
                    f"sms too long: {segments} segments ({encoding}), at most {self._settings.sms_max_segments}"
                )
        return content, None

    def _record(
        self,
        session: Session,
        row: Delivery | None,
        input: SendMessageInput,
        channel: str,
        now: datetime,
        status: str,
        reason: str | None,
        *,
        content: dict[str, str] | None = None,
    ) -> Delivery:
        if row is None:
            row = Delivery(
                idempotency_key=input.idempotency_key,
                channel=channel,
                delivery_key=f"{input.idempotency_key}#{channel}",
                customer_id=input.customer_id,
                journey=input.journey,
                step=input.step,
                template=input.template,
                category=input.category,
                status=status,
                created_at=now,
            )
        row.status = status
        row.reason = reason
        if content is not None:
            row.content = content
        row.updated_at = now
        session.add(row)
        session.commit()
        session.refresh(row)
        return row

    def _finish(
        self,
        row_id: int,
        status: str,
        reason: str | None,
        provider: str | None,
        message_id: str | None,
        now: datetime,
    ) -> None:
        with Session(self._engine) as session:
            row = session.get(Delivery, row_id)
            assert row is not None
            row.status = status
            row.reason = reason
            if provider is not None:
                row.provider = provider
            row.provider_message_id = message_id
            if status == "sent":
                row.sent_at = now
            row.updated_at = now
            session.add(row)
            session.commit()

    def _note_retry(self, row_id: int, reason: str, now: datetime) -> None:
        with Session(self._engine) as session:
            row = session.get(Delivery, row_id)
            assert row is not None
            row.reason = f"retrying: {reason}"
            row.updated_at = now
            session.add(row)
            session.commit()


def _now() -> datetime:
    """The send's clock: the later of the wall clock and the server's time for this attempt.

    On a real server the two agree (wall clock a little later); on the time-skipping test server the server's
    time runs ahead, and quiet hours and caps must follow the journey's time, not the test machine's.
    """
    wall = datetime.now(UTC)
    try:
        scheduled = activity.info().current_attempt_scheduled_time
    except RuntimeError:
        return wall
    return max(wall, scheduled.astimezone(UTC)) if scheduled else wall


@asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a send runs, when the workflow asks for heartbeats (``heartbeat_timeout``).

    A slow provider call is one long await; heartbeating beside it lets the server notice a dead worker after
    the heartbeat timeout rather than the whole start-to-close timeout, so the retry comes sooner.
    """
    try:
        timeout = activity.info().heartbeat_timeout
    except RuntimeError:
        timeout = None
    if not timeout:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(timeout.total_seconds() / 3)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _outcome(row: Delivery) -> ChannelOutcome:
    status = row.status if row.status in FINAL else "failed"
    return ChannelOutcome(
        channel=row.channel,
        status=status,
        reason=row.reason,
        provider_message_id=row.provider_message_id,
    )


def _retryable(exc: RetryableDeliveryError) -> ApplicationError:
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(str(exc), type="RetryableDeliveryError", next_retry_delay=delay)
