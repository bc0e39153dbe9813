"""Every activity's contract: one input and one result model each, and a typed stub the workflow calls.

The workflow imports these stubs, never the implementations in :mod:`activities`, so loading it brings no HTTP
client, database driver or provider SDK into the sandbox. A stub carries the activity's registered name and its
types; the worker registers the implementation under the same name (``tests/test_layers.py`` holds the two
together). Fields are only ever added with defaults, so histories recorded before still deserialize.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.common import RetryPolicy

from contracts.compact import Compact

ChannelStatus = Literal["sent", "suppressed", "failed", "deferred"]


class SendMessageInput(Compact):
    """One message of one journey step to one customer, over one or more channels."""

    idempotency_key: str
    """From the business (journey instance, entry, step, loop pass): the same key is delivered once."""
    journey: str
    step: str
    customer_id: str
    channels: list[str]
    mode: Literal["all", "first"] = "all"
    template: str
    category: Literal["transactional", "promotional"]
    variables: dict[str, Any] = Field(default_factory=dict)
    """What templates may read: ``trigger``, ``event``, ``vars``, ``journey`` (the profile is read at send)."""


class ChannelOutcome(Compact):
    channel: str
    status: ChannelStatus
    reason: str | None = None
    provider_message_id: str | None = None
    retry_at: datetime | None = None
    """With ``deferred``: when to try again (quiet hours)."""


def is_template_failure(outcome: ChannelOutcome, template: str) -> bool:
    """Whether a channel failed because ``template`` could not be rendered with the journey's data.

    The delivery activity records such a channel as ``failed`` with the renderer's error as its reason, which
    names the template first (``TemplateError: template 'notice' email.subject: ...``, ``activities.rendering``).
    """
    reason = (outcome.reason or "").removeprefix(f"{TEMPLATE_ERROR}: ")
    return outcome.status == "failed" and reason.startswith(f"template {template!r}")


class SendMessageResult(Compact):
    outcomes: list[ChannelOutcome]
    timezone: str | None = None
    """The customer's ``timezone`` trait as this send read it ("" when it has none), so a journey's next local
    time of day needs no profile load of its own. None: not reported (activities before it did)."""

    @property
    def delivered(self) -> list[str]:
        return [o.channel for o in self.outcomes if o.status == "sent"]

    @property
    def retry_at(self) -> datetime | None:
        times = [o.retry_at for o in self.outcomes if o.status == "deferred" and o.retry_at]
        return min(times) if times else None


class LoadProfileInput(Compact):
    customer_id: str
    traits: list[str] | None = None
    """Only these traits (what the map reads): the result is written to the journey's history, so it carries no
    more of a customer's data than the journey uses. None: every trait (runs recorded before asked so)."""
    segments: bool = True
    """Whether to look up the customer's segments (False when the map never reads ``segments``)."""
    scores: bool = False
    """Whether to compute the customer's computed traits (issue 15: lead scores, customer value), when the map's
    expressions read ``scores``: a query per score, and their values in the history, only for maps that use them."""


class LoadProfileResult(Compact):
    profile: dict[str, Any] = Field(default_factory=dict)
    """Traits the journey's conditions may read (``timezone`` and ``locale`` among them)."""
    segments: list[str] = Field(default_factory=list)
    """The segments the customer is in now (issue 15): ``segments`` in expressions."""
    scores: dict[str, Any] = Field(default_factory=dict)
    """The customer's computed traits now (issue 15): each lead score (a number) and customer value (its RFM
    values and group) by name, ``scores`` in expressions."""


class UpdateProfileInput(BaseModel):
    customer_id: str
    idempotency_key: str
    set: dict[str, Any]


class UpdateProfileResult(BaseModel):
    profile: dict[str, Any]


class CallWebhookInput(BaseModel):
    idempotency_key: str
    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, Any] = Field(default_factory=dict)


class CallWebhookResult(BaseModel):
    status_code: int


class RefreshSegmentsInput(BaseModel):
    """One page of a segment refresh: the customers after ``after`` (by id), at most ``page_size`` of them."""

    segments: list[str] | None = None
    """Names to refresh; None: the segments that change with time alone (``Audiences.scheduled``)."""
    after: str | None = None
    page_size: int = 2000
    now: datetime
    """Every page of one refresh is evaluated at the same moment (the workflow's clock at its start)."""


class RefreshSegmentsResult(BaseModel):
    upto: str | None
    """The last customer id of this page; None when it was the last page."""
    entered: int = 0
    exited: int = 0


# ------------------------------------------------------------------------------------------- typed stubs
# Called as ``workflow.execute_activity(send_message, SendMessageInput(...), ...)``; the bodies never run.


@activity.defn(name="send_message")
async def send_message(input: SendMessageInput) -> SendMessageResult:
    """Send one step's message over its channels, effectively once (``activities.delivery``)."""
    raise NotImplementedError("a contract: the worker registers DeliveryActivities.send_message")


@activity.defn(name="load_profile")
async def load_profile(input: LoadProfileInput) -> LoadProfileResult:
    """Read the traits a journey's conditions may use (``activities.profiles``)."""
    raise NotImplementedError("a contract: the worker registers ProfileActivities.load_profile")


@activity.defn(name="update_profile")
async def update_profile(input: UpdateProfileInput) -> UpdateProfileResult:
    """Set profile traits, once per idempotency key (``activities.profiles``)."""
    raise NotImplementedError("a contract: the worker registers ProfileActivities.update_profile")


@activity.defn(name="call_webhook")
async def call_webhook(input: CallWebhookInput) -> CallWebhookResult:
    """Call a brand's HTTP endpoint with the step's body (``activities.webhooks``)."""
    raise NotImplementedError("a contract: the worker registers WebhookActivities.call_webhook")


@activity.defn(name="refresh_segments")
async def refresh_segments(input: RefreshSegmentsInput) -> RefreshSegmentsResult:
    """Refresh one page of segment membership and announce the changes (``activities.segments``)."""
    raise NotImplementedError("a contract: the worker registers SegmentActivities.refresh_segments")


STUBS = (send_message, load_profile, update_profile, call_webhook)
"""Every activity a journey calls: a worker that serves journeys registers an implementation of each."""
AUDIENCE_STUBS = (refresh_segments,)
"""Every activity the segment refresh workflow calls: the same worker registers them."""

SEND_GIVE_UP = timedelta(hours=24)
"""A send (or webhook call) still failing after a day of retries is recorded as failed and the journey goes on."""
TEMPLATE_ERROR = "TemplateError"
"""The error type a send raises when its template cannot be rendered with the journey's data: never retried, and
the journey records it as a fault instead of going on."""

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["PermanentDeliveryError", "TemplateError"],
)
"""How a send or webhook call is retried: the activities raise these types when retrying cannot help."""
