"""Conditions and values in maps: jinja2 expressions in a sandbox, never Python ``eval``.

An expression sees only the names in :data:`CONTEXT_NAMES` and the helper functions in :data:`FUNCTIONS`.
Compiling is cached per expression text, so the workflow interpreter pays for it once per worker. Everything
here is deterministic: the current time comes in as the ``now`` name, from the workflow clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The names an expression may read, and what they hold.
CONTEXT_NAMES: dict[str, str] = {
    "event": "properties of the event being handled (the trigger at entry, then each matched event)",
    "trigger": "properties of the event that started this journey",
    "profile": "the customer's profile traits",
    "vars": "this journey's variables (declared under `variables:`)",
    "journey": "facts about this run: name, customer_id, instance_key, entered_at",
    "now": "the current time (UTC), from the workflow clock",
}


class ExpressionError(ValueError):
    """An expression failed to compile or to evaluate; the message names the expression."""


def _to_datetime(value: Any) -> datetime:
    """``date('2026-03-01')``: a date, a datetime or an ISO 8601 string, as an aware UTC datetime."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time(0, 0))
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ExpressionError(f"date(): {value!r} is not an ISO 8601 date") from exc
    else:
        raise ExpressionError(f"date(): cannot make a date of a {type(value).__name__}")
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def _days(n: float) -> timedelta:
    return timedelta(days=float(n))


def _hours(n: float) -> timedelta:
    return timedelta(hours=float(n))


def _days_between(start: Any, end: Any) -> float:
    return (_to_datetime(end) - _to_datetime(start)).total_seconds() / 86400


#: Helper functions every expression may call.
FUNCTIONS: dict[str, Any] = {
    "date": _to_datetime,
    "days": _days,
    "hours": _hours,
    "days_between": _days_between,
}


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()
    env.globals.update(FUNCTIONS)
    return env


_ENV = _environment()


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Any:
    try:
        return _ENV.compile_expression(expression, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not a valid expression: {exc.message}") from exc


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate ``expression`` against ``context``; any failure becomes an :class:`ExpressionError`."""
    function = _compiled(expression)
    try:
        return function(**context)
    except (UndefinedError, SecurityError, TypeError, ValueError, ArithmeticError, KeyError) as exc:
        raise ExpressionError(f"{expression!r}: {exc}") from exc


def referenced_names(expression: str) -> tuple[set[str], set[str]]:
    """The context names an expression reads, and the ``vars.X`` variables it reads.

    Raises :class:`ExpressionError` when the expression does not parse.
    """
    try:
        tree = _ENV.parse("{{ (" + expression + ") }}")
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not a valid expression: {exc.message}") from exc
    names = set(meta.find_undeclared_variables(tree)) - set(FUNCTIONS)
    return names, variables_read(tree)


def variables_read(tree: nodes.Node) -> set[str]:
    """The journey variables (``vars.X`` / ``vars['X']``) a parsed template or expression reads."""
    found: set[str] = set()
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "vars":
            found.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "vars"
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            found.add(item.arg.value)
    return found


def check_expression(expression: str, variables: set[str]) -> str | None:
    """Why ``expression`` is not valid in a map declaring ``variables``, or ``None`` when it is."""
    try:
        names, read = referenced_names(expression)
    except ExpressionError as exc:
        return str(exc)
    unknown = sorted(names - set(CONTEXT_NAMES))
    if unknown:
        return (
            f"unknown name {unknown[0]!r} in {expression!r}; "
            f"expressions may use {', '.join(sorted(CONTEXT_NAMES))} and {', '.join(sorted(FUNCTIONS))}()"
        )
    undeclared = sorted(read - variables)
    if undeclared:
        return f"unknown variable vars.{undeclared[0]} in {expression!r}; declare it under `variables:`"
    return None
