"""Render message templates for a customer: jinja2 sandbox, strict undefined, HTML autoescaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from temporalio.exceptions import ApplicationError

from journeymap.expressions import FUNCTIONS
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
                raise ApplicationError(
                    f"template {name!r} not found", type="TemplateError", non_retryable=True
                )
            self._cache[name] = load_template(path)
        return self._cache[name]

    def render(
        self, name: str, channel: str, context: dict[str, Any], locale: str | None = None
    ) -> dict[str, str]:
        parts = self.template(name).parts(channel, locale)
        if parts is None:
            raise ApplicationError(
                f"template {name!r} has no {channel!r} part", type="TemplateError", non_retryable=True
            )
        rendered = {}
        for part, source in parts.items():
            env = self._html if part == "html" else self._text
            try:
                rendered[part] = env.from_string(source).render(**context)
            except TemplateError as exc:
                raise ApplicationError(
                    f"template {name!r} {channel}.{part}: {exc}", type="TemplateError", non_retryable=True
                ) from exc
        return rendered
