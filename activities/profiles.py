"""Profile reads and writes for journeys (conditions read the profile; ``update_profile`` steps write it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity

from audiences.membership import segments_of
from audiences.scores import ScoreDefinition
from audiences.scoring import computed_traits
from contracts.activities import LoadProfileInput, LoadProfileResult, UpdateProfileInput, UpdateProfileResult
from storage.tables import Customer


class ProfileActivities:
    """Sync activities (database I/O): the worker runs them in its thread pool."""

    def __init__(self, engine: Engine, scores: Mapping[str, ScoreDefinition] | None = None) -> None:
        """``scores``: the deployment's computed traits (``journeys/scores/``), computed by a profile load that asks."""
        self._engine = engine
        self._scores = dict(scores or {})

    @activity.defn(name="load_profile")
    def load_profile(self, input: LoadProfileInput) -> LoadProfileResult:
        # The scores are computed here, in the activity, at the moment of the read, and only for a map that reads
        # them: the workflow keeps the result, so replaying it computes nothing (a lead score decays with the
        # wall clock).
        with Session(self._engine) as session:
            customer = session.get(Customer, input.customer_id)
            connection = session.connection()
            segments = [name for name, _ in segments_of(connection, input.customer_id)] if input.segments else []
            traits = dict(customer.traits) if customer else {}
            if input.traits is not None:
                traits = {k: v for k, v in traits.items() if k in input.traits}
            scores = (
                computed_traits(connection, self._scores, input.customer_id, datetime.now(UTC)) if input.scores else {}
            )
            return LoadProfileResult(profile=traits, segments=segments, scores=scores)

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
