"""YAML in, a validated :class:`JourneyMap` out, or every problem with its file and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from journeymap.checks import check_map
from journeymap.errors import MapError, MapValidationError
from journeymap.events import EVENTS_FILE, EventsFile, TrackingPlan, declared_in
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


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: Any, source: str, shape: str) -> M:
    """``data`` as ``model``, or a :class:`MapValidationError` with every problem at its path in ``source``."""
    if not isinstance(data, dict):
        raise MapValidationError([MapError(source, "", shape)])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MapValidationError(
            [
                MapError(source, format_location(error["loc"]), error["msg"].removeprefix("Value error, "))
                for error in exc.errors(include_url=False)
            ]
        ) from None


def parse_map(
    data: Any, *, source: str, templates_dir: Path | None = None, plan: TrackingPlan | None = None
) -> JourneyMap:
    """Validate already-parsed YAML; raises :class:`MapValidationError` with every problem.

    ``plan`` is the shared ``events.yaml``: with it, or with an ``events:`` section in the map, the map must
    declare every event it uses and read only declared properties (:mod:`journeymap.contract`).
    """
    journey = _validated(JourneyMap, data, source, "a journey map is a YAML mapping (name, entry, steps, ...)")
    problems = check_map(journey, source=source, templates_dir=templates_dir, plan=plan)
    if problems:
        raise MapValidationError(problems)
    return journey


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping.

    Plain YAML keeps the last of two equal keys without a word, so an event declared twice in ``events.yaml`` (a
    merge that kept both sides) or a step field pasted twice silently loses the first one.
    """


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            earlier = first_line.get(key)
        except TypeError:  # an unhashable key: the constructor below says what is wrong with it
            continue
        if earlier is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {earlier})", key_node.start_mark
            )
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str) -> Any:
    """YAML text parsed like ``yaml.safe_load``, except that a key given twice in one mapping is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def parse_yaml(text: str, *, source: str) -> Any:
    """YAML text parsed, or a :class:`MapValidationError` naming the line it breaks on."""
    try:
        return load_yaml(text)
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


def load_map_text(
    text: str, *, source: str, templates_dir: Path | None = None, plan: TrackingPlan | None = None
) -> JourneyMap:
    return parse_map(parse_yaml(text, source=source), source=source, templates_dir=templates_dir, plan=plan)


def load_map(path: Path | str, *, templates_dir: Path | None = None, plan: TrackingPlan | None = None) -> JourneyMap:
    """Load a map file; its templates are looked for in ``templates/`` beside it unless told otherwise, and its
    events are checked against the ``events.yaml`` beside it (when there is one) unless a plan is given."""
    path = Path(path)
    text = read_text(path)
    if plan is None:
        plan = events_file_beside(path.parent)
    return load_map_text(text, source=path.name, templates_dir=templates_dir or path.parent / "templates", plan=plan)


def load_events_file(path: Path) -> TrackingPlan:
    """The declarations of an ``events.yaml``; raises :class:`MapValidationError` naming each problem."""
    source = path.name
    data = parse_yaml(read_text(path), source=source)
    parsed = _validated(EventsFile, {} if data is None else data, source, "an events file is a YAML mapping (events)")
    return declared_in(parsed.events, source)


def events_file_beside(folder: Path) -> TrackingPlan | None:
    """The ``events.yaml`` in ``folder``, or None when there is none."""
    path = folder / EVENTS_FILE
    return load_events_file(path) if path.is_file() else None
