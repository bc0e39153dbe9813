"""Profile reads and writes for journeys (conditions read the profile; ``update_profile`` steps write it)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity

from audiences.membership import segments_of
from contracts.activities import LoadProfileInput, LoadProfileResult, UpdateProfileInput, UpdateProfileResult
from storage.tables import Customer


class ProfileActivities:
    """Sync activities (database I/O): the worker runs them in its thread pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="load_profile")
    def load_profile(self, input: LoadProfileInput) -> LoadProfileResult:
        with Session(self._engine) as session:
            customer = session.get(Customer, input.customer_id)
            segments = (
                [name for name, _ in segments_of(session.connection(), input.customer_id)] if input.segments else []
            )
            traits = dict(customer.traits) if customer else {}
            if input.traits is not None:
                traits = {k: v for k, v in traits.items() if k in input.traits}
            return LoadProfileResult(profile=traits, segments=segments)

    @activity.defn(name="update_profile")
    def update_profile(self, input: UpdateProfileInput) -> UpdateProfileResult:
        # Setting the same values twice is harmless, so a retried update needs no ledger.
        with Session(self._engine) as session:
            customer = session.get(Customer, input.customer_id) or Customer(id=input.customer_id)
            customer.traits = {**customer.traits, **input.set}
            customer.updated_at = datetime.now(UTC)
            session.add(customer)
            session.commit()
            return UpdateProfileResult(profile=dict(customer.traits))
