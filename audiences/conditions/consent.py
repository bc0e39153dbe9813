"""``consent``: the customer agreed to a category of message on a channel (``{channel: sms, category:
promotional}``), read as a send reads it (``activities.consent``): the latest ``consent`` row whose channel is
this one or ``*`` and whose category is this one or ``*`` wins. With no row, ``unset`` decides (by default the
customer is not in: a campaign audience wants an explicit opt-in).

A change of consent re-checks it at once (``starter.consent_segments``); a pause running out changes it with no
write at all, so the schedule re-checks it too.
"""

from __future__ import annotations

from sqlalchemy import Boolean, false, func, literal, or_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.sql.sqltypes import UTCDateTime

from audiences.conditions.base import ConditionKind, ConditionModel, Query, register
from journeymap.fields import Category, Channel, FrozenModel
from storage.tables import Consent as ConsentRow


class ConsentSpec(FrozenModel):
    channel: Channel
    category: Category = "promotional"
    unset: bool = False
    """Whether a customer who never said either way counts as consenting."""


class ConsentCondition(ConditionModel):
    consent: ConsentSpec


class Consent(ConditionKind[ConsentCondition]):
    name = "consent"
    model = ConsentCondition
    summary = "consent to a category of message on a channel (the latest word wins)"

    def consent(self, condition: ConsentCondition) -> bool:
        return True

    def describe(self, condition: ConsentCondition) -> str:
        return f"consented to {condition.consent.category} by {condition.consent.channel}"

    def sql(self, condition: ConsentCondition, query: Query) -> ColumnElement[bool]:
        spec = condition.consent
        row = ConsentRow.__table__.alias("said")  # type: ignore[attr-defined]
        latest = (
            select(row.c.granted)
            .where(
                row.c.customer_id == query.customer.c.id,
                row.c.channel.in_([spec.channel, "*"]),
                row.c.category.in_([spec.category, "*"]),
                # A pause (a word with ``until``) holds only until then, as a send reads it; after, the earlier word.
                or_(row.c.until.is_(None), row.c.until > literal(query.now, UTCDateTime())),
            )
            .order_by(row.c.at.desc(), row.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        return func.coalesce(latest, true() if spec.unset else false(), type_=Boolean) == true()


register(Consent())
