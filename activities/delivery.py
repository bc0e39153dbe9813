"""Sending a journey step's message, effectively once, on the customer's terms.

For each channel of the step, in ``activities.decision.channel_order`` (the customer's preferred order when the
mode is ``first``), the activity:

1. renders the message and opens the ledger's transaction before the provider call (``activities.ledger``): a
   row already sent, suppressed or failed is the answer, and nothing is sent again, however often the activity
   is retried or re-executed; otherwise the pure ``activities.decision.decide`` rules on consent, reachability,
   quiet hours, the rendered message and the frequency cap, and the row is written ``suppressed``/``failed``
   with the reason, or ``pending``; a ``deferred`` outcome carries ``retry_at``, and the workflow sleeps durably
   and calls again with the same key;
2. hands a ``pending`` message to the channel's provider with the idempotency key, and records ``sent`` with the
   provider's message id, or ``failed`` on a permanent rejection, in the transaction after the call. A
   retryable error (timeout, 429, 5xx) leaves the row ``pending`` and fails the attempt, honouring the
   provider's Retry-After;
3. moves on to the next channel while ``activities.decision.goes_on`` says so.

Every template gets the customer's signed ``unsubscribe_url`` (for this channel and the message's topic, or its
category) and ``preferences_url`` (``activities.links``); a promotional email also carries them as RFC 8058
headers (``List-Unsubscribe``, ``List-Unsubscribe-Post``) through whichever email provider sends it. A provider
reporting a push token unregistered (``AddressGone``) fails that send and drops the token from the profile.

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
from functools import partial

import httpx
from jinja2 import Environment, meta
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.base import (
    AddressGone,
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
from activities.consent import drop_address, load_profile
from activities.decision import Profile, Rendered, Rules, channel_order, goes_on
from activities.ledger import Draft, Ledger, Ready
from activities.links import CustomerLinks, ephemeral_links, reference_for
from activities.rendering import TemplateRenderer, sms_segments
from audiences.scores import ScoreDefinition
from audiences.scoring import computed_traits
from contracts.activities import ChannelOutcome, SendMessageInput, SendMessageResult
from contracts.errors import ConfigurationError
from journeymap.preferences import PreferenceCatalog
from journeymap.templates import template_texts
from runtime.settings import DeliverySettings


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
            raise ConfigurationError(f"JOURNEYS_{channel.upper()}_PROVIDER: {name!r} is not a provider for {channel}")
        providers[channel] = provider
    return providers


_SCAN = Environment()
"""Parses a template's parts to see which names they read (never renders)."""


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
        links: CustomerLinks | None = None,
        preferences: PreferenceCatalog | None = None,
        scores: Mapping[str, ScoreDefinition] | None = None,
    ) -> None:
        """``providers`` and ``clock`` are seams for tests; by default they come from ``settings``, and the
        clock is the later of the wall clock and the server's time for the attempt (see :func:`_now`).
        ``links`` signs the customer's links: a worker passes the deployment's (``workers/worker.py``), so the
        API verifies them; without it they are signed with a key of this process alone (tests, tools).
        ``preferences`` is the brand's catalog, whose topics a template may belong to. ``scores`` are the
        deployment's computed traits (``journeys/scores/``): a template that reads ``scores`` gets them computed
        at its send, fresh, as the profile is."""
        self._clock = clock or _now
        self._engine = engine
        self._renderer = renderer
        self._settings = settings or DeliverySettings()
        self._providers = dict(providers) if providers is not None else build_providers(http, self._settings)
        self._ledger = Ledger(engine, Rules.from_settings(self._settings))
        self._links = links or ephemeral_links()
        self._catalog = preferences or PreferenceCatalog()
        self._scores = dict(scores or {})
        self._reads_scores: dict[tuple[str, str], bool] = {}

    @activity.defn(name="send_message")
    async def send_message(self, input: SendMessageInput) -> SendMessageResult:
        async with _heartbeating():
            return await self._send_message(input)

    async def _send_message(self, input: SendMessageInput) -> SendMessageResult:
        now = self._clock()
        profile, ref = await asyncio.to_thread(self._profile, input.customer_id)
        links = _SendLinks(self._links, ref, self._catalog.topic_of(input.template) or input.category, now)
        outcomes: list[ChannelOutcome] = []
        retry: RetryableDeliveryError | None = None
        for channel in channel_order(input, profile):
            try:
                outcome = await self._deliver(input, channel, profile, links, now)
            except RetryableDeliveryError as exc:
                if input.mode == "first":
                    # A passing fault is no reason to fall back to a channel the customer likes less.
                    raise _retryable(exc) from exc
                retry = retry or exc
                continue
            outcomes.append(outcome)
            if not goes_on(input.mode, outcome.status):
                break
        if retry is not None:
            # Every other channel went (or was settled) first; the retried attempt skips them via the ledger.
            raise _retryable(retry) from retry
        zone = profile.traits.get("timezone")
        return SendMessageResult(outcomes=outcomes, timezone=zone if isinstance(zone, str) else "")

    def _profile(self, customer_id: str) -> tuple[Profile, str]:
        """The profile, and the customer's link reference (made on their first message)."""
        with Session(self._engine) as session:
            profile = load_profile(session, customer_id, default_timezone=self._settings.default_timezone)
            return profile, reference_for(session, customer_id)

    async def _deliver(
        self, input: SendMessageInput, channel: str, profile: Profile, links: _SendLinks, now: datetime
    ) -> ChannelOutcome:
        # Database work blocks: it runs in a thread, off the event loop the workflows share.
        begun = await asyncio.to_thread(self._begin, input, channel, profile, links, now)
        if isinstance(begun, ChannelOutcome):
            return begun
        try:
            receipt = await self._providers[channel].send(self._message(input, begun, profile, links))
        except AddressGone as exc:
            # The token is dead for every journey: drop it so none of them keeps sending to it.
            await asyncio.to_thread(drop_address, self._engine, input.customer_id, channel, exc.address)
            await asyncio.to_thread(self._ledger.failed, begun.row_id, str(exc), now)
            return ChannelOutcome(channel=channel, status="failed", reason=str(exc))
        except PermanentDeliveryError as exc:
            await asyncio.to_thread(self._ledger.failed, begun.row_id, str(exc), now)
            return ChannelOutcome(channel=channel, status="failed", reason=str(exc))
        except RetryableDeliveryError as exc:
            await asyncio.to_thread(self._ledger.retrying, begun.row_id, str(exc), now)
            raise
        await asyncio.to_thread(
            partial(self._ledger.sent, begun.row_id, provider=receipt.provider, message_id=receipt.message_id, now=now)
        )
        return ChannelOutcome(channel=channel, status="sent", provider_message_id=receipt.message_id)

    def _begin(
        self, input: SendMessageInput, channel: str, profile: Profile, links: _SendLinks, now: datetime
    ) -> ChannelOutcome | Ready:
        provider = self._providers.get(channel)
        rendered = self._render(input, channel, profile, links)
        name = provider.name if provider is not None else None
        topic = links.scope if links.scope in self._catalog.topics else None
        return self._ledger.begin(Draft(input, channel, profile, rendered, name, topic), now)

    def _render(self, input: SendMessageInput, channel: str, profile: Profile, links: _SendLinks) -> Rendered:
        """The message's parts, or why it cannot go (a template error or an over-long SMS)."""
        if channel == "webhook":
            return Rendered({"json": json.dumps(input.variables, default=str, sort_keys=True)})
        context = {**input.variables, "profile": profile.traits, **links.variables(channel)}
        try:
            if self._scores and self._template_reads_scores(input.template, channel):
                with self._engine.connect() as connection:
                    context["scores"] = computed_traits(connection, self._scores, input.customer_id, datetime.now(UTC))
            content = self._renderer.render(input.template, channel, context, profile.locale)
        except ApplicationError as exc:
            return Rendered({}, str(exc))
        if channel == "sms":
            encoding, segments = sms_segments(content["text"])
            if segments > self._settings.sms_max_segments:
                return Rendered(
                    content,
                    f"sms too long: {segments} segments ({encoding}), at most {self._settings.sms_max_segments}",
                )
        return Rendered(content)

    def _template_reads_scores(self, name: str, channel: str) -> bool:
        """Whether the template's parts for ``channel`` name ``scores`` (then a send computes them: a query per
        score, paid only by the templates that use them). Found once per template and channel."""
        if (name, channel) not in self._reads_scores:
            texts = [text for _, text in template_texts(self._renderer.template(name), [channel])]
            self._reads_scores[(name, channel)] = any(
                "scores" in meta.find_undeclared_variables(_SCAN.parse(text)) for text in texts
            )
        return self._reads_scores[(name, channel)]

    @staticmethod
    def _message(input: SendMessageInput, ready: Ready, profile: Profile, links: _SendLinks) -> OutgoingMessage:
        metadata = {
            "journey": input.journey,
            "step": input.step,
            "template": input.template,
            "category": input.category,
            "customer_id": input.customer_id,
        }
        if profile.locale:
            metadata["locale"] = profile.locale
        return OutgoingMessage(
            idempotency_key=ready.key,
            channel=ready.send.channel,
            to=ready.send.address,
            content=ready.content,
            metadata=metadata,
            headers=links.headers(ready.send.channel) if input.category == "promotional" else {},
        )


@dataclass(frozen=True)
class _SendLinks:
    """One send's links: the customer's reference, the scope an unsubscribe revokes (the message's topic, else
    its category), and the send's clock (a token's expiry counts from it)."""

    links: CustomerLinks
    ref: str
    scope: str
    now: datetime

    def variables(self, channel: str) -> dict[str, str]:
        """``unsubscribe_url`` and ``preferences_url``, as every template may use them."""
        return {
            "unsubscribe_url": self.links.unsubscribe_url(self.ref, channel, self.scope, now=self.now),
            "preferences_url": self.links.preferences_url(self.ref, now=self.now),
        }

    def headers(self, channel: str) -> dict[str, str]:
        """RFC 8058 one-click unsubscribe (and RFC 2369's mailto form when configured), for promotional email.

        The HTTPS link comes first: mailbox providers POST ``List-Unsubscribe=One-Click`` to it."""
        if channel != "email":
            return {}
        targets = [self.links.unsubscribe_url(self.ref, channel, self.scope, now=self.now)]
        mailto = self.links.unsubscribe_mailto(self.ref, channel, self.scope, now=self.now)
        if mailto:
            targets.append(mailto)
        return {
            "List-Unsubscribe": ", ".join(f"<{t}>" for t in targets),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


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


def _retryable(exc: RetryableDeliveryError) -> ApplicationError:
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(str(exc), type="RetryableDeliveryError", next_retry_delay=delay)
