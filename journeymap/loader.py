"""YAML in, a validated :class:`JourneyMap` out, or every problem with its file and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from journeymap.checks import check_map
from journeymap.errors import MapError, MapValidationError
from journeymap.models import JourneyMap

_TAGGED_LISTS = ("steps", "branch")


def format_location(loc: tuple[int | str, ...]) -> str:
    """``('steps', 3, 'wait_for', 'wait_for', 'timeout')`` -> ``steps[3].wait_for.timeout``.

    Pydantic puts a tagged union's tag in the location (a step's kind, a branch case's kind, the re-entry
    rule's form); it is dropped so the path is the one in the file.
    """
    out = ""
    for index, part in enumerate(loc):
        before = loc[index - 1] if index >= 1 else None
        container = loc[index - 2] if index >= 2 else None
        is_tag = (isinstance(before, int) and container in _TAGGED_LISTS) or before == "reentry"
        if isinstance(part, int):
            out += f"[{part}]"
        elif not is_tag:
            out += f".{part}" if out else part
    return out


def parse_map(data: Any, *, source: str, templates_dir: Path | None = None) -> JourneyMap:
    """Validate already-parsed YAML; raises :class:`MapValidationError` with every problem."""
    if not isinstance(data, dict):
        raise MapValidationError([MapError(source, "", "a journey map is a YAML mapping (name, entry, steps, ...)")])
    try:
        journey = JourneyMap.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            errors.append(MapError(source, format_location(error["loc"]), message))
        raise MapValidationError(errors) from None
    problems = check_map(journey, source=source, templates_dir=templates_dir)
    if problems:
        raise MapValidationError(problems)
    return journey


def parse_yaml(text: str, *, source: str) -> Any:
    """YAML text parsed, or a :class:`MapValidationError` naming the line it breaks on."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MapValidationError([MapError(source, where, f"not valid YAML: {problem}")]) from None


def read_text(path: Path) -> str:
    """A file's text, or a :class:`MapValidationError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapValidationError([MapError(path.name, "", f"cannot read: {exc.strerror}")]) from None


def load_map_text(text: str, *, source: str, templates_dir: Path | None = None) -> JourneyMap:
    return parse_map(parse_yaml(text, source=source), source=source, templates_dir=templates_dir)


def load_map(path: Path | str, *, templates_dir: Path | None = None) -> JourneyMap:
    """Load a map file; its templates are looked for in ``templates/`` beside it unless told otherwise."""
    path = Path(path)
    text = read_text(path)
    return load_map_text(text, source=path.name, templates_dir=templates_dir or path.parent / "templates")
