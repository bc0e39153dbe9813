"""Map expressions: what they compute, what validation reports, and that the sandbox holds.

An expression is written by a marketer and evaluated inside the journey workflow, so every failure, from
missing data to an attempt to reach Python internals or to exhaust memory, must come out as an
``ExpressionError`` (which the interpreter treats as "false" / "no value") and never as anything else.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from journeymap.expressions import (
    CONTEXT_NAMES,
    FUNCTIONS,
    MAX_SIZE,
    ExpressionError,
    check_expression,
    evaluate,
    referenced_names,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def context(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event": {"rx_id": "rx1", "total": 42.5, "items": ["a", "b"], "store_name": "Main St"},
        "trigger": {"rx_id": "rx1", "filled_at": "2026-03-01T09:00:00Z", "days_supply": 30},
        "profile": {"first_name": "Ana", "tier": "gold", "birthday": "1990-07-15"},
        "vars": {"refills_remaining": 2, "supply_ends": "2026-03-31T09:00:00+00:00"},
        "journey": {"name": "pharmacy_refill", "customer_id": "c1"},
        "now": NOW,
    }
    base.update(overrides)
    return base


# ------------------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("event.rx_id == vars.rx_id if vars.rx_id is defined else event.rx_id == trigger.rx_id", True),
        ("vars.refills_remaining > 0", True),
        ("vars.refills_remaining - 1", 1),
        ("event.total >= 40 and profile.tier in ['gold', 'platinum']", True),
        ("not (event.total > 100 or profile.tier == 'silver')", True),
        ("event['store_name'] ~ ' pharmacy'", "Main St pharmacy"),
        ("event.items | length", 2),
        ("'b' in event.items", True),
        ("profile.nickname | default(profile.first_name)", "Ana"),
        ("profile.first_name | upper", "ANA"),
        ("journey.name", "pharmacy_refill"),
        ("date(trigger.filled_at) + days(trigger.days_supply)", datetime(2026, 3, 31, 9, 0, tzinfo=UTC)),
        ("date(vars.supply_ends) - hours(1.5)", datetime(2026, 3, 31, 7, 30, tzinfo=UTC)),
        ("days_between(trigger.filled_at, vars.supply_ends)", 30.0),
        ("date(vars.supply_ends) > now", True),
        ("now - date('2026-02-28') > days(1)", True),
        ("date(profile.birthday).month", 7),
        ("10 % 3", 1),
        ("'ab' * 3", "ababab"),
        ("2 ** 10", 1024),
    ],
)
def test_evaluation(expression: str, value: Any) -> None:
    assert evaluate(expression, context()) == value


def test_date_accepts_dates_datetimes_and_iso_strings() -> None:
    assert evaluate("date(x)", context(x=date(2026, 3, 1))) == datetime(2026, 3, 1, tzinfo=UTC)
    assert evaluate("date(x)", context(x="2026-03-01T10:00:00Z")) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    naive = evaluate("date('2026-03-01T10:00:00')", context())
    assert naive == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert evaluate("days(2)", context()) == timedelta(days=2)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("date('next tuesday')", "date(): 'next tuesday' is not an ISO 8601 date"),
        ("date(3)", "date(): cannot make a date of a int"),
        ("days('x')", "could not convert string to float"),
        ("days(10 ** 12)", "too large"),
        ("vars.refills_remaining / 0", "division by zero"),
        ("event.total + 'x'", "unsupported operand"),
    ],
)
def test_bad_values_are_expression_errors(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate(expression, context())


def test_missing_data_is_an_error_not_a_silent_value() -> None:
    """A condition on data the customer lacks fails (the interpreter takes it as false), however it is used."""
    for expression in ("profile.vip", "profile.vip == true", "[profile.vip]", "{'a': profile.vip}", "nothing"):
        with pytest.raises(ExpressionError, match=r"undefined|no attribute"):
            evaluate(expression, context())
    assert evaluate("profile.vip | default(false)", context()) is False
    assert evaluate("profile.vip is defined", context()) is False


def test_a_syntax_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"'vars.x ==' is not a valid expression"):
        evaluate("vars.x ==", context())


# ------------------------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "expression",
    [
        # Python internals: attributes, items and filters all refuse them.
        "event.__class__",
        "event['__class__']",
        "event | attr('__class__')",
        "now.__class__.__mro__",
        "trigger.__init__.__globals__",
        "''.__class__.__mro__[1].__subclasses__()",
        "date.__globals__",
        "days.__code__",
        "'{0.__class__}'.format(1)",
        "profile.first_name.__len__()",
        # Names that jinja offers templates, gone here.
        "range(10 ** 9)",
        "range(3)",
        "lipsum()",
        "cycler(1, 2)",
        "joiner()",
        "namespace(a=1)",
        "self",
        # Changing data the journey holds.
        "event.pop('rx_id')",
        "event.items.append(1)",
        "vars.update({'refills_remaining': 99})",
        # Exhausting memory or time.
        "'a' * 10 ** 9",
        "[1] * 10 ** 9",
        "10 ** 10 * 'a'",
        "2 ** 100000",
        "'%0999999999d' % 1",
        "'x'.center(10 ** 9)",
        "'x'.ljust(10 ** 9)",
        "'x'.zfill(10 ** 9)",
        "'x'.replace('x', 'xxxxxxxxxx')",
        "('a' * 5000) | replace('a', 'aaaa')",
        "(('a' * 100) ~ '') | replace('a', 'a' * 200)",
        "(" * 600 + "1" + ")" * 600,
        # Constant parts are folded while compiling: their failures are expression errors too.
        "not ((0).upper and event.rx_id)",
    ],
)
def test_the_sandbox_holds(expression: str) -> None:
    ctx = context()
    before = repr(ctx)

    with pytest.raises(ExpressionError):
        evaluate(expression, ctx)

    assert repr(ctx) == before, "an expression changed the journey's data"


@pytest.mark.parametrize("expression", ["event.items | random", "'x' | center(10 ** 9)", "'x' | indent(10 ** 9)"])
def test_filters_that_break_replay_or_pad_text_do_not_exist(expression: str) -> None:
    """``random`` would choose differently on replay; padding filters could exhaust memory."""
    with pytest.raises(ExpressionError, match="No filter named"):
        evaluate(expression, context())


def test_limits_leave_room_for_real_values() -> None:
    assert len(evaluate("'ab' * 5000", context())) == MAX_SIZE
    assert evaluate("2 ** 64", context()) == 18446744073709551616
    assert evaluate("'a-b' | replace('-', ' ')", context()) == "a b"


# ------------------------------------------------------------------------------------------- validation


def test_referenced_names_and_variables_read() -> None:
    names, read = referenced_names("vars.a + vars['b'] > event.x and date(profile.birthday) < now")
    assert names == {"vars", "event", "profile", "now"}
    assert read == {"a", "b"}


def test_functions_are_not_names_to_provide() -> None:
    names, _ = referenced_names("days_between(date(trigger.at), now) > days(1) / hours(24)")
    assert names == {"trigger", "now"}
    assert set(FUNCTIONS) == {"date", "days", "hours", "days_between"}


def test_check_expression() -> None:
    assert check_expression("vars.a > 1 and event.x", {"a"}) is None
    for name in CONTEXT_NAMES:
        assert check_expression(f"{name} is defined", set()) is None
    assert check_expression("customer.age > 3", set()) == (
        "unknown name 'customer' in 'customer.age > 3'; expressions may use "
        "event, journey, now, profile, scores, segments, trigger, vars and date, days, days_between, hours()"
    )
    assert check_expression("vars['b'] + 1", {"a"}) == (
        "unknown variable vars.b in \"vars['b'] + 1\"; declare it under `variables:`"
    )
    assert check_expression("vars.a >", {"a"}) == "'vars.a >' is not a valid expression: unexpected ')'"
    assert check_expression("vars.a | shuffle", {"a"}) == (
        "'vars.a | shuffle' is not a valid expression: No filter named 'shuffle'."
    )
    assert check_expression("event.x is wobbly", set()) == (
        "'event.x is wobbly' is not a valid expression: No test named 'wobbly'."
    )
    assert check_expression("(" * 600 + "1" + ")" * 600, set()) is not None
