"""Sending a journey step's message: the delivery ledger makes each (key, channel) go out once.

The embedded default provider is the outbox: the message is rendered and recorded in the database, where
``journeys outbox`` shows it. A retried or re-executed activity finds its row already sent and sends nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from activities.models import ChannelOutcome, SendMessageInput, SendMessageResult
from activities.rendering import TemplateRenderer
from storage.tables import Customer, Delivery


class DeliveryActivities:
    def __init__(self, engine: Engine, renderer: TemplateRenderer) -> None:
        self._engine = engine
        self._renderer = renderer

    @activity.defn(name="send_message")
    async def send_message(self, input: SendMessageInput) -> SendMessageResult:
        # Database work is blocking: keep it off the event loop the workflows share.
        return await asyncio.to_thread(self._send, input)

    def _send(self, input: SendMessageInput) -> SendMessageResult:
        with Session(self._engine) as session:
            customer = session.get(Customer, input.customer_id)
            profile = dict(customer.traits) if customer else {}
        context = {**input.variables, "profile": profile}
        outcomes = []
        for channel in input.channels:
            outcome = self._deliver(input, channel, context, profile.get("locale"))
            outcomes.append(outcome)
            if input.mode == "first" and outcome.status == "sent":
                break
        return SendMessageResult(outcomes=outcomes)

    def _deliver(
        self, input: SendMessageInput, channel: str, context: dict[str, object], locale: object
    ) -> ChannelOutcome:
        delivery_key = f"{input.idempotency_key}#{channel}"
        with Session(self._engine) as session:
            existing = session.exec(select(Delivery).where(Delivery.delivery_key == delivery_key)).first()
            if existing is not None and existing.status == "sent":
                return ChannelOutcome(
                    channel=channel, status="sent", provider_message_id=existing.provider_message_id
                )
            content = self._renderer.render(
                input.template, channel, dict(context), locale if isinstance(locale, str) else None
            )
            row = existing or Delivery(
                idempotency_key=input.idempotency_key,
                channel=channel,
                delivery_key=delivery_key,
                customer_id=input.customer_id,
                journey=input.journey,
                step=input.step,
                template=input.template,
                category=input.category,
                status="pending",
            )
            row.content = content
            row.status = "sent"
            row.provider_message_id = f"outbox-{delivery_key}"
            row.updated_at = datetime.now(UTC)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                # Another attempt of this same send won the race: it is sent once, by that attempt.
                session.rollback()
            return ChannelOutcome(channel=channel, status="sent", provider_message_id=row.provider_message_id)
