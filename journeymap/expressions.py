"""Conditions and values in maps: jinja2 expressions in a sandbox, never Python ``eval``.

An expression sees only the names in :data:`CONTEXT_NAMES` and the helper functions in :data:`FUNCTIONS`.
Compiling, and finding the names an expression reads, are cached per expression text, so the workflow
interpreter pays for them once per worker process (the module is passed through the workflow sandbox), not once
per journey or replayed history. Everything
here is deterministic: the current time comes in as the ``now`` name, from the workflow clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from contracts.errors import InputError
from journeymap.suggest import did_you_mean

#: The names an expression may read, and what they hold.
CONTEXT_NAMES: dict[str, str] = {
    "event": "properties of the event being handled (the trigger at entry, then each matched event)",
    "trigger": "properties of the event that started this journey",
    "profile": "the customer's profile traits",
    "vars": "this journey's variables (declared under `variables:`)",
    "journey": "facts about this run: name, customer_id, instance_key, entered_at",
    "now": "the current time (UTC), from the workflow clock",
    "segments": "names of the segments the customer is in (`'lapsed_customers' in segments`), read with the profile",
    "scores": "computed traits by name, read with the profile: a lead score (`scores.lead_score >= 50`), a customer "
    "value's RFM (`scores.customer_value.group == 'champions'`)",
}


class ExpressionError(InputError, ValueError):
    """An expression failed to compile or to evaluate; the message names the expression."""


class FloatingDate(datetime):
    """A date given without a time of day (``date('2026-03-01')``, ``date(profile.birthday)``).

    It computes and compares as midnight UTC, but :func:`plain_value` stores it as a date-only string, which a
    ``wait`` reads as that date in the customer's time zone: a refill due on the 25th is due on the 25th in New
    York, not on the evening of the 24th. Python keeps the subclass through ``+``/``-`` of a timedelta.
    """


def _to_datetime(value: Any) -> datetime:
    """``date('2026-03-01')``: a date, a datetime or an ISO 8601 string, as an aware UTC datetime."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        return FloatingDate(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return FloatingDate(day.year, day.month, day.day, tzinfo=UTC)
            result = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ExpressionError(f"date(): {value!r} is not an ISO 8601 date") from exc
    elif isinstance(value, Undefined):  # a property the event (or profile) does not have
        name = getattr(value, "_undefined_name", None)
        raise ExpressionError(f"date(): no value{f' (there is no {name!r})' if name else ''}")
    else:
        raise ExpressionError(f"date(): cannot make a date of a {type(value).__name__}")
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def plain_value(value: Any) -> Any:
    """An expression's value as plain JSON data, so a variable is the same before and after continue-as-new.

    Datetimes become ISO strings (a :class:`FloatingDate` at midnight a date-only one), durations seconds.
    """
    if isinstance(value, FloatingDate) and value.time() == time(0, 0):
        return value.date().isoformat()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain_value(v) for v in value]
    return value


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


MAX_SIZE = 10_000
"""The longest string or collection an expression may make (characters or items)."""
_MAX_BITS = 4096
"""The largest integer a power may make: far beyond any business number, far below a hung worker."""

#: Filters an expression may use. Left out: ``random`` (a replay would choose differently), and those that
#: pad or reflow text (``center``, ``indent``, ``wordwrap``, ``format``), which only templates need.
SAFE_FILTERS = frozenset(
    {
        *("abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "int", "items", "join"),
        *("last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace"),
        *("reverse", "round", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim"),
        *("truncate", "unique", "upper", "wordcount"),
    }
)

#: String methods that make text far longer than their inputs; the ``replace`` filter checks its size first.
_UNSAFE_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "replace"})


def _too_big(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple | dict | set | frozenset) and len(value) > MAX_SIZE


def _checked(value: Any, what: str) -> Any:
    if _too_big(value):
        raise SecurityError(f"{what} would make a value longer than {MAX_SIZE}")
    return value


def _guarded_filter(name: str, function: Any) -> Any:
    """A filter whose result may not grow past :data:`MAX_SIZE` (``replace`` is checked before it runs)."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name == "replace":
            # replace(eval_ctx, s, old, new[, count]): the result's length is known before making it.
            text, old, new = (str(a) for a in args[1:4])
            count = text.count(old) if old else len(text) + 1
            if len(text) + count * max(len(new) - len(old), 0) > MAX_SIZE:
                raise SecurityError(f"replace would make a value longer than {MAX_SIZE}")
        return _checked(function(*args, **kwargs), f"filter {name}")

    if hasattr(function, "jinja_pass_arg"):  # how jinja knows to pass the eval context (replace needs it)
        guarded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


class _ExpressionEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, also bounded in size: no expression can exhaust a worker's memory or time.

    Jinja's sandbox already refuses private attributes (``__class__``, ``__globals__``) and methods that change
    data; this adds limits on what repetition (``*``), powers (``**``), string formatting (``%``) and calls
    can make.
    """

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str | bytes):
                raise SecurityError("string formatting with % is not allowed; join text with ~")
            return left % right
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                repeats = isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int)
                if repeats and len(sequence) * times > MAX_SIZE:
                    raise SecurityError(f"repetition would make a value longer than {MAX_SIZE}")
            return left * right
        # operator == "**"
        integers = isinstance(left, int) and isinstance(right, int) and right > 0
        if integers and abs(left) > 1 and (abs(left).bit_length() - 1) * right > _MAX_BITS:
            raise SecurityError(f"{left} ** {right} is too large")
        return left**right

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``event.items`` is the event's ``items`` property, not the dict method of that name: maps read
        # data, and event properties are named by backends that know nothing of Python.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _UNSAFE_STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        return _checked(super().call(context, obj, *args, **kwargs), "a call")


def _environment() -> ImmutableSandboxedEnvironment:
    env = _ExpressionEnvironment(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()
    env.globals.update(FUNCTIONS)
    env.filters = {name: _guarded_filter(name, env.filters[name]) for name in sorted(SAFE_FILTERS)}
    return env


_ENV = _environment()


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Any:
    try:
        return _ENV.compile_expression(expression, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not a valid expression: {exc.message}") from exc
    except RecursionError as exc:
        raise ExpressionError(f"{expression!r} is nested too deeply") from exc
    except Exception as exc:
        # Compiling folds constant parts, running them: ``(0).upper and x`` fails here, not at evaluation.
        raise ExpressionError(f"{expression!r}: {exc}") from exc


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate ``expression`` against ``context``; any failure becomes an :class:`ExpressionError`."""
    function = _compiled(expression)
    try:
        return _data(function(**context))
    except Exception as exc:
        # Expressions call into arbitrary objects' methods; whatever they raise (a sandbox refusal, a type
        # error, missing data, an overflow) is a failed expression, which the interpreter can handle, never
        # an error that fails the workflow task.
        raise ExpressionError(f"{expression!r}: {exc}") from exc


_DATA = (str, int, float, date, timedelta, type(None))  # bool is an int; datetime is a date


def _data(value: Any) -> Any:
    """``value``, when it is plain data (or lists and mappings of it); else the reason it is not.

    A strict Undefined (missing data, or an attribute the sandbox hid) only raises when used, and a method
    or a template reference cannot be stored in the journey's state: left in a result, either would fail
    later, outside this module (``bool()`` of a condition, serializing the state), as an error the
    interpreter does not expect.
    """
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, list | tuple):
        for item in value:
            _data(item)
    elif isinstance(value, dict):
        for item in value.values():
            _data(item)
    elif not isinstance(value, _DATA):
        raise ExpressionError(f"gives a {type(value).__name__}, not a value")
    return value


@lru_cache(maxsize=4096)
def referenced_names(expression: str) -> tuple[frozenset[str], frozenset[str]]:
    """The context names an expression reads, and the ``vars.X`` variables it reads.

    Parsed once per process and expression: every journey the worker starts or replays asks it of each of its
    map's expressions (which steps read the profile), and jinja2 compiles the whole tree to find the names.

    Raises :class:`ExpressionError` when the expression does not parse.
    """
    try:
        tree = _ENV.parse("{{ (" + expression + ") }}")
        # Finding the names compiles the tree, which also fails on an unknown filter or test.
        names = frozenset(meta.find_undeclared_variables(tree)) - set(FUNCTIONS)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not a valid expression: {exc.message}") from exc
    except RecursionError as exc:
        raise ExpressionError(f"{expression!r} is nested too deeply") from exc
    except Exception as exc:  # constant parts are folded while compiling (see _compiled)
        raise ExpressionError(f"{expression!r}: {exc}") from exc
    return names, frozenset(variables_read(tree))


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


def names_read(tree: nodes.Node, root: str) -> frozenset[str] | None:
    """The attributes of ``root`` a parsed template or expression reads (``root.x``, ``root['x']``); None when it
    uses ``root`` any other way (passes it whole, iterates it, indexes it with a computed key, or assigns it)."""
    uses = [n for n in tree.find_all(nodes.Name) if n.name == root]
    if any(n.ctx != "load" for n in uses):
        return None
    found: set[str] = set()
    plain = 0
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == root:
            found.add(attr.attr)
            plain += 1
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == root:
            if not (isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str)):
                return None
            found.add(item.arg.value)
            plain += 1
    return frozenset(found) if plain == len(uses) else None


@lru_cache(maxsize=4096)
def attributes_read(expression: str, root: str) -> frozenset[str] | None:
    """:func:`names_read` of one expression, parsed once per process: empty when it does not name ``root``.

    Raises :class:`ExpressionError` when the expression does not parse.
    """
    try:
        tree = _ENV.parse("{{ (" + expression + ") }}")
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{expression!r} is not a valid expression: {exc.message}") from exc
    except RecursionError as exc:
        raise ExpressionError(f"{expression!r} is nested too deeply") from exc
    return names_read(tree, root)


def check_expression(expression: str, variables: set[str]) -> str | None:
    """Why ``expression`` is not valid in a map declaring ``variables``, or ``None`` when it is."""
    try:
        names, read = referenced_names(expression)
    except ExpressionError as exc:
        return str(exc)
    unknown = sorted(names - set(CONTEXT_NAMES))
    if unknown:
        return (
            f"unknown name {unknown[0]!r}{did_you_mean(unknown[0], [*CONTEXT_NAMES, *FUNCTIONS])} in {expression!r}; "
            f"expressions may use {', '.join(sorted(CONTEXT_NAMES))} and {', '.join(sorted(FUNCTIONS))}()"
        )
    undeclared = sorted(read - variables)
    if undeclared:
        suggestion = did_you_mean(undeclared[0], variables, prefix="vars.")
        return f"unknown variable vars.{undeclared[0]}{suggestion} in {expression!r}; declare it under `variables:`"
    return None
