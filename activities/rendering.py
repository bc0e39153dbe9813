"""Render message templates for a customer: jinja2 sandbox, strict undefined, HTML autoescaped.

Also what a rendered message must satisfy before it goes: an SMS's length in segments (GSM-7 or UCS-2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from temporalio.exceptions import ApplicationError

from journeymap.expressions import FUNCTIONS, ExpressionError, variables_read
from journeymap.templates import MessageTemplate, load_template


class TemplateRenderer:
    """Loads templates from a folder (cached) and renders one channel's parts."""

    def __init__(self, templates_dir: Path) -> None:
        self._dir = templates_dir
        self._cache: dict[str, MessageTemplate] = {}
        self._text = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        for env in (self._text, self._html):
            env.globals.update(FUNCTIONS)

    def template(self, name: str) -> MessageTemplate:
        if name not in self._cache:
            path = self._dir / f"{name}.yaml"
            if not path.is_file():
                raise ApplicationError(f"template {name!r} not found", type="TemplateError", non_retryable=True)
            self._cache[name] = load_template(path)
        return self._cache[name]

    def render(self, name: str, channel: str, context: dict[str, Any], locale: str | None = None) -> dict[str, str]:
        parts = self.template(name).parts(channel, locale)
        if parts is None:
            raise ApplicationError(
                f"template {name!r} has no {channel!r} part", type="TemplateError", non_retryable=True
            )
        rendered = {}
        for part, source in parts.items():
            env = self._html if part == "html" else self._text
            given = context.get("vars")
            missing = sorted(variables_read(env.parse(source)) - set(given if isinstance(given, dict) else ()))
            if missing:
                # Named here because a function given an undefined value (``date(vars.x)``) cannot say which.
                raise ApplicationError(
                    f"template {name!r} {channel}.{part}: vars.{missing[0]} is not set",
                    type="TemplateError",
                    non_retryable=True,
                )
            try:
                rendered[part] = env.from_string(source).render(**context)
            except (TemplateError, ExpressionError, ValueError, TypeError) as exc:
                # Functions the templates call (``date()``...) raise their own errors on bad input.
                raise ApplicationError(
                    f"template {name!r} {channel}.{part}: {exc}", type="TemplateError", non_retryable=True
                ) from exc
        return rendered


# The GSM 03.38 default alphabet, and its extension table (each extension character costs two septets).
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> tuple[str, int]:
    """``(encoding, segments)`` for ``text``: GSM-7 when every character has a septet, else UCS-2.

    One GSM-7 segment holds 160 septets, 153 each when concatenated; UCS-2 holds 70 UTF-16 units, 67 each when
    concatenated. A single emoji therefore turns a 150-character message into three segments.
    """
    if all(c in _GSM7 or c in _GSM7_EXT for c in text):
        units = sum(2 if c in _GSM7_EXT else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units == 0:
        return encoding, 0
    return encoding, 1 if units <= single else math.ceil(units / multi)
