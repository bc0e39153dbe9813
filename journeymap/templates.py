"""Message templates as data: one YAML file per message, a section per channel, locale variants.

    journeys/templates/refill_reminder.yaml
        email:  {subject: ..., text: ..., html: ...}   # html is optional: a text-only email is plain text
        push:   {title: ..., body: ...}
        sms:    {text: ...}
        voice:  {text: ...}
        locales:
          es: {email: {...}, push: {...}}     # any part missing here falls back to the default

Parts are jinja2 templates over the same names as map expressions (``profile``, ``trigger``, ``event``,
``vars``, ``journey``), plus the customer's signed links ``unsubscribe_url`` and ``preferences_url``
(:data:`LINK_NAMES`); a promotional email must give ``unsubscribe_url`` in its text and its HTML. Rendering is
a side effect's business (activities); this module only loads and checks, so a missing template or an unknown
variable fails ``journeys validate``, not a customer's send.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from journeymap.errors import MapError
from journeymap.expressions import CONTEXT_NAMES, FUNCTIONS, variables_read
from journeymap.suggest import did_you_mean

#: The parts each channel needs, in the order a message is composed.
CHANNEL_PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),  # html optional
    "sms": ("text",),
    "push": ("title", "body"),
    "voice": ("text",),
    "webhook": (),
}


LINK_NAMES = frozenset({"unsubscribe_url", "preferences_url"})
"""The customer's signed links every template may use (``activities.delivery`` gives them)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailParts(_Model):
    subject: str = Field(min_length=1)
    text: str = Field(min_length=1)
    html: str | None = Field(default=None, min_length=1)
    """Without it the email is sent as plain text only (many senders prefer that for transactional mail)."""


class SmsParts(_Model):
    text: str = Field(min_length=1)


class PushParts(_Model):
    title: str = Field(min_length=1)
    body: str = Field(min_length=1)


class VoiceParts(_Model):
    text: str = Field(min_length=1)


class ChannelParts(_Model):
    email: EmailParts | None = None
    sms: SmsParts | None = None
    push: PushParts | None = None
    voice: VoiceParts | None = None


class MessageTemplate(ChannelParts):
    locales: dict[str, ChannelParts] = Field(default_factory=dict)

    def parts(self, channel: str, locale: str | None = None) -> dict[str, str] | None:
        """The parts for ``channel`` in ``locale`` (``es-MX`` falls back to ``es``, then the default)."""
        candidates = []
        if locale:
            candidates += [locale, locale.split("-")[0]]
        for name in candidates:
            variant = self.locales.get(name)
            found = getattr(variant, channel, None) if variant else None
            if found is not None:
                return given_parts(found)
        default = getattr(self, channel, None)
        return given_parts(default) if default is not None else None


def given_parts(parts: BaseModel) -> dict[str, str]:
    """A channel's parts that the template gives (an optional part left out is absent, not ``None``)."""
    return {name: text for name, text in parts if text is not None}


def template_texts(template: MessageTemplate, channels: list[str]) -> list[tuple[str, str]]:
    """(where, text) of every part ``channels`` use, in every locale: ``push.body``, ``locales.es.push.body``."""
    found: list[tuple[str, str]] = []
    variants: list[tuple[str, ChannelParts]] = [("", template)]
    variants += [(f"locales.{locale}.", parts) for locale, parts in template.locales.items()]
    for prefix, variant in variants:
        for channel in channels:
            parts = getattr(variant, channel, None) if CHANNEL_PARTS.get(channel) else None
            if parts is not None:
                found += [(f"{prefix}{channel}.{part}", text) for part, text in given_parts(parts).items()]
    return found


def load_template(path: Path) -> MessageTemplate:
    """Load one template file; raises ``ValueError`` (YAML) or ``ValidationError`` (shape)."""
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    return MessageTemplate.model_validate(data if data is not None else {})


_CHECK_ENV = ImmutableSandboxedEnvironment()


def check_template(
    templates_dir: Path,
    name: str,
    channels: list[str],
    variables: set[str],
    *,
    source: str,
    path: str,
    category: str = "transactional",
) -> list[MapError]:
    """Problems with template ``name`` as used by a send step of ``category`` over ``channels``, at ``path``."""
    file = templates_dir / f"{name}.yaml"
    if not file.is_file():
        return [MapError(source, path, f"template {name!r} not found (looked for {file})")]
    try:
        template = load_template(file)
    except yaml.YAMLError as exc:
        return [MapError(source, path, f"template {name!r}: {file.name} is not valid YAML: {exc}")]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return [MapError(source, path, f"template {name!r}: {file.name}: {where}: {first['msg']}")]
    errors: list[MapError] = []
    # What a send gives its template (activities/delivery.py): the expression names but ``now`` and ``segments``
    # (``scores`` are computed by the send itself when its template reads them).
    allowed = (set(CONTEXT_NAMES) - {"now", "segments"}) | set(FUNCTIONS) | LINK_NAMES
    for channel in channels:
        if not CHANNEL_PARTS[channel]:
            continue
        variants = [("", template.parts(channel))] + [
            (f"locales.{loc}.", given_parts(p) if (p := getattr(parts, channel)) else None)
            for loc, parts in template.locales.items()
        ]
        if variants[0][1] is None:
            errors.append(MapError(source, path, f"template {name!r} has no {channel!r} part"))
            continue
        for prefix, parts in variants:
            for part, text in (parts or {}).items():
                where = f"template {name!r} {prefix}{channel}.{part}"
                try:
                    tree = _CHECK_ENV.parse(text)
                    # This compiles the tree, so an unknown filter or test is found here too.
                    names = set(meta.find_undeclared_variables(tree))
                except TemplateSyntaxError as exc:
                    errors.append(MapError(source, path, f"{where}: line {exc.lineno}: {exc.message}"))
                    continue
                needs_link = category == "promotional" and channel == "email" and part != "subject"
                if needs_link and "unsubscribe_url" not in names:
                    # Gmail and Yahoo require it of bulk senders, and the law of every market we know.
                    errors.append(
                        MapError(
                            source,
                            path,
                            f"{where}: a promotional email needs an unsubscribe link: add {{{{ unsubscribe_url }}}}",
                        )
                    )
                unknown = sorted(names - allowed)
                if unknown:
                    suggestion = did_you_mean(unknown[0], allowed)
                    errors.append(MapError(source, path, f"{where}: unknown variable {unknown[0]!r}{suggestion}"))
                undeclared = sorted(variables_read(tree) - variables)
                if undeclared:
                    suggestion = did_you_mean(undeclared[0], variables, prefix="vars.")
                    message = f"{where}: unknown variable vars.{undeclared[0]}{suggestion}; declare it"
                    errors.append(MapError(source, path, message))
    return errors
