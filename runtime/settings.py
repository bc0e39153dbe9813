"""Configuration from the environment (``JOURNEYS_*``), with embedded defaults that need no account."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


class DeliverySettings(BaseSettings):
    """Message providers and the customer's terms (issue 3), from ``JOURNEYS_*`` variables.

    Every channel's provider defaults to ``outbox``: the message is recorded in the database and nothing leaves
    the machine, so the system runs with no account and no network. Credentials only ever come from here.
    """

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", extra="ignore")

    email_provider: str = "outbox"
    """``outbox``, ``smtp`` or ``http`` (a Resend-compatible ``POST /emails`` API)."""
    sms_provider: str = "outbox"
    """``outbox`` or ``twilio``."""
    voice_provider: str = "outbox"
    """``outbox`` or ``twilio`` (a call that speaks the message with TwiML ``<Say>``)."""
    push_provider: str = "outbox"
    """``outbox`` or ``fcm`` (FCM HTTP v1)."""
    webhook_provider: str = "outbox"
    """``outbox`` or ``http`` (signed JSON to ``webhook_url``)."""
    email_from: str = "Journeys <journeys@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 20.0
    http_timeout_seconds: float = 20.0
    """How long a worker waits for an HTTP provider (email API, Twilio, FCM, webhooks) before retrying later."""
    http_email_url: str = "https://api.resend.com"
    http_email_api_key: str | None = None
    twilio_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    """The sending number (E.164) for SMS and calls."""
    twilio_messaging_service_sid: str | None = None
    """Used instead of ``twilio_from`` for SMS when set."""
    fcm_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str | None = None
    fcm_access_token: str | None = None
    """An OAuth2 bearer token for FCM (minted outside, e.g. by a sidecar from the service account)."""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """HMAC-SHA256 key for the ``X-Journeys-Signature`` header."""
    sms_max_segments: int = 3
    """An SMS longer than this many segments is not sent (recorded failed, so a fallback channel may go)."""
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    """Quiet hours in the customer's local time; equal start and end turn them off."""
    quiet_hours_transactional: str = "voice"
    """Comma-separated channels whose transactional messages also wait out quiet hours (promotional always do)."""
    default_timezone: str = "UTC"
    """For customers whose profile names no ``timezone``."""
    promotional_cap: int = 3
    """At most this many promotional messages per customer per rolling window, across journeys (0: no cap)."""
    promotional_cap_days: int = 7
    promotional_requires_opt_in: bool = False
    """When true, a promotional send needs an explicit grant (``journeys consent grant``, the consent API, the
    preference center), not only no opt-out."""
    outbox_requires_address: bool = False
    """By default the outbox records a message even for a profile with no address for its channel (addressed to
    the customer id), so a newcomer sees what journeys send; real providers always need one (else unreachable)."""


class ReportSettings(BaseSettings):
    """What ``journeys report`` counts as a purchase, its value and a customer's stage, from ``JOURNEYS_REPORT_*``.

    The defaults are the built-in lifecycle map's words (``journeys/lifecycle.yaml``); a brand whose backend
    names them otherwise says so here rather than editing code. docs/analytics.md says where each figure's
    words come from (a split's conversions come from its map's ``goal``, not from here).
    """

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_REPORT_", extra="ignore")

    purchase_events: str = "order_placed"
    """Comma-separated event types that are purchases (customer value, cohorts)."""
    value_property: str = "amount"
    """The purchase event's property holding its value (a JSON number; anything else counts 0)."""
    stage_trait: str = "lifecycle_stage"
    """The profile trait naming the customer's lifecycle stage (customer value by stage)."""
    assignment_trait: str = "{split}_assigned_at"
    """The profile trait holding when a split assigned the customer; ``{split}`` is the split step's id without
    its ``_split`` suffix. Where the profile has no such instant, the journey's entry is used."""

    @field_validator("purchase_events")
    @classmethod
    def _some_events(cls, value: str) -> str:
        if not [name for name in value.split(",") if name.strip()]:
            raise ValueError("JOURNEYS_REPORT_PURCHASE_EVENTS: name at least one event type")
        return value

    @field_validator("value_property", "stage_trait", "assignment_trait")
    @classmethod
    def _a_name(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value.replace("{split}", "split")):
            raise ValueError(
                f"JOURNEYS_REPORT_{str(info.field_name).upper()}: {value!r} is not a name (letters, digits, _)"
            )
        return value

    def purchase_event_types(self) -> list[str]:
        return sorted({name.strip() for name in self.purchase_events.split(",") if name.strip()})

    def assignment_trait_of(self, split_step: str) -> str:
        return self.assignment_trait.replace("{split}", split_step.removesuffix("_split"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: str | None = None
    """Temporal Cloud API key; turns TLS on."""
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    """Client certificate (mTLS) for Temporal Cloud or a secured cluster; with ``temporal_tls_key``."""
    temporal_tls_key: Path | None = None
    task_queue: str = "journeys"
    data_dir: Path = ROOT / "data"
    database_url: str | None = None
    """Defaults to a SQLite file in ``data_dir``."""
    journeys_dir: Path = ROOT / "journeys"
    """Where the journey maps live; templates are in its ``templates/`` folder."""
    # Event API and codec server (issue 4).
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: str = ""
    """Comma-separated API keys accepted by the event API and the codec server (``JOURNEYS_API_KEYS``)."""
    api_workers: int = Field(default=1, ge=1, le=64)
    """Processes serving the event API on its one port (``journeys api --workers``): one per spare core."""
    api_max_body_bytes: int = 512 * 1024
    """Largest request body the event API reads (Segment's batch limit is 500 KB)."""
    api_public_url: str | None = None
    """The API's URL as providers call it (behind a proxy): Twilio signs the URL it called."""
    # The customer's own say (issue 16): signed links, the preference center, SMS HELP.
    link_keys: str = ""
    """Comma-separated secrets that sign customer links (unsubscribe, preferences), newest first: the first signs,
    all verify, so a key is rotated by putting a new one in front. Empty: ``link_key_file``."""
    link_key_file: Path | None = None
    """Where the link key is kept when ``link_keys`` is empty; ``<data_dir>/links.key`` (written when missing)."""
    link_ttl_days: int = Field(default=400, ge=1)
    """How long an unsubscribe or preferences link works: longer than mail sits in an inbox (the law asks 30
    days at least); a page reached by an expired link says so and nothing changes."""
    links_url: str | None = None
    """The public base URL of the preference center (the event API as customers reach it); else
    ``api_public_url``, else ``http://<api_host>:<api_port>``."""
    unsubscribe_mailto: str | None = None
    """An address for ``List-Unsubscribe``'s mailto form (``unsubscribe@brand.example``); left out when unset."""
    preferences_templates_dir: Path | None = None
    """A folder of jinja2 page templates that override the preference center's own (same file names)."""
    sms_help_text: str = "Journeys: reply STOP to stop texts, START to resume. Msg&data rates may apply."
    """The answer to an SMS HELP (or INFO) keyword: the brand's name and how to stop."""
    email_webhook_secret: str | None = None
    """The email provider's webhook signing secret (Resend/Svix ``whsec_...``) for receipts."""
    codec_keys: str = ""
    """``key-id:base64-key`` pairs, comma-separated; the first encrypts, all decrypt (rotation)."""
    codec_key_file: Path | None = None
    """A file with one ``key-id:base64-key`` per line, newest first; read after ``codec_keys``. When neither is
    set, ``<data_dir>/codec.key`` is used if it exists (``journeys dev`` writes it), so the CLI next to a dev
    system reads what it wrote."""
    codec_enabled: bool = True
    """False keeps payloads plain whatever keys exist (``journeys dev --no-codec``)."""
    codec_cors_origins: str = ""
    """Comma-separated origins (the Temporal UI's) allowed to call the codec server from a browser."""
    codec_allow_unauthenticated: bool = False
    """Only for ``journeys dev`` on loopback, where the dev UI has no login to pass a token from."""
    metrics_port: int | None = None
    """Serve the worker's Prometheus metrics on ``0.0.0.0:<port>/metrics`` when set."""
    worker_max_cached_workflows: int = 1000
    """Journeys kept in a worker's memory between events (about 0.2-0.3 MiB each, docs/benchmarks.md); one
    evicted from the cache is rebuilt by replaying its history when its next event or timer comes."""
    worker_max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)
    """Workflow tasks a worker runs at once (the SDK's default, 100, when unset). A Python worker runs them on
    one core: on a starved one, 100 at a time take longer than the server's 10-second task timeout and are run
    again (docs/scaling.md); 10-20 keeps each task short."""
    worker_shutdown_seconds: float = 30.0
    """On SIGTERM a worker stops polling and gives activities in hand this long to finish."""
    search_by_step: bool = False
    """Journeys started with this set upsert ``JourneyStep``, ``JourneyStatus`` and ``JourneyWaitUntil`` at every
    rest, so the Temporal UI can search them by step: one billable action per rest (46 of pharmacy_refill's ~160
    a customer-year; docs/benchmarks.md). Off, ops still find every journey by customer and name and read its
    step and next wake-up on its page; ``journeys diff`` and the report count steps without it."""
    delivery_task_queue: str = ""
    """When set, workers also serve ``send_message`` on this queue (and the per-channel queues below)."""
    delivery_rate_limits: str = ""
    """``channel=per_second`` pairs (``sms=1,voice=0.2``): each channel's queue ``<delivery_task_queue>-<channel>``
    is limited by the Temporal server across all workers, so a provider's limit holds however many run."""

    def delivery_rates(self) -> dict[str, float]:
        """``delivery_rate_limits`` parsed: channel -> sends per second; a malformed pair is an error."""
        rates: dict[str, float] = {}
        for pair in (p.strip() for p in self.delivery_rate_limits.split(",") if p.strip()):
            channel, sep, rate = pair.partition("=")
            try:
                per_second = float(rate)
            except ValueError:
                per_second = -1.0
            if not sep or not channel.strip() or per_second <= 0:
                raise ValueError(
                    f"JOURNEYS_DELIVERY_RATE_LIMITS: {pair!r}: write CHANNEL=PER_SECOND (a positive number)"
                )
            rates[channel.strip()] = per_second
        return rates

    segments_refresh_minutes: float = Field(default=60.0, gt=0)
    """How often the Schedule re-evaluates the segments that change with time alone (``journeys setup``/``dev``)."""
    segments_refresh_page_size: int = Field(default=2000, ge=1, le=100_000)
    """Customers per page of a refresh: one activity (one database transaction) each."""

    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    """Providers, credentials and the customer's terms (``JOURNEYS_SMTP_HOST``, ``JOURNEYS_SMS_PROVIDER``, ...)."""

    report: ReportSettings = Field(default_factory=ReportSettings)
    """The report's conventions (``JOURNEYS_REPORT_PURCHASE_EVENTS``, ``JOURNEYS_REPORT_VALUE_PROPERTY``, ...)."""

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'journeys.db'}"

    @property
    def link_base_url(self) -> str:
        return (self.links_url or self.api_public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def link_key_path(self) -> Path:
        return self.link_key_file or self.data_dir / "links.key"

    @property
    def preferences_file(self) -> Path:
        """The brand's topics and preference center choices (``journeys/brand/preferences.yaml``); optional."""
        return self.journeys_dir / "brand" / "preferences.yaml"

    @property
    def templates_dir(self) -> Path:
        return self.journeys_dir / "templates"

    @property
    def segments_dir(self) -> Path:
        """Where the segment definitions live (issue 15)."""
        return self.journeys_dir / "segments"

    @property
    def broadcasts_dir(self) -> Path:
        """Where the broadcast definitions live (issue 15): a map sent to a segment at a set time."""
        return self.journeys_dir / "broadcasts"


def settings_error(exc: ValidationError) -> ConfigurationError | None:
    """A bad ``JOURNEYS_*`` value as one line naming the variable, or None when ``exc`` is not about settings.

    pydantic names the field (``api_port``); an operator set a variable (``JOURNEYS_API_PORT``), so the message
    names that, with what was wrong. pydantic's own messages leave the value out (it may be a key or a password).
    """
    prefixes = {model.__name__: model.model_config.get("env_prefix", "") for model in _SETTINGS_MODELS}
    if exc.title not in prefixes:
        return None
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        model = exc.title
        if field in _NESTED:  # a nested model's own variables carry its prefix
            model, field = _NESTED[field], str(error["loc"][1]) if len(error["loc"]) > 1 else ""
        variable, problem = f"{prefixes[model]}{field.upper()}", str(error["msg"]).removeprefix("Value error, ")
        problems.append(problem if problem.startswith(f"{variable}:") else f"{variable}: {problem}")
    return ConfigurationError("; ".join(problems))


_SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (Settings, DeliverySettings, ReportSettings)
_NESTED = {"delivery": DeliverySettings.__name__, "report": ReportSettings.__name__}
