"""SQL the two databases spell differently: typed reads from JSON columns, and instants as integer microseconds.

Each construct below compiles to SQLite's and to PostgreSQL's own functions, so the report's queries are
written once. Instants are compared as microseconds since the epoch (integers): exact on both, where SQLite's
date functions keep milliseconds only. SQLite stores a ``DateTime`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` text in
UTC (SQLAlchemy's format); a profile trait holds an ISO 8601 string, with or without an offset (none means
UTC, as :func:`analytics.report` has always read it; on PostgreSQL the report's transaction runs in UTC).

Keys and paths travel as bound parameters (never spliced into the SQL), so statement caching stays correct.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Float, Integer, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

_ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
"""What PostgreSQL is asked to cast: a cast of anything else would fail the whole report."""


class _JsonScalar(FunctionElement[Any]):
    """``column[key]`` when the JSON value there is of one kind, else NULL: clauses are (column, key, path)."""

    inherit_cache = True


class json_number(_JsonScalar):
    """A JSON number (not a boolean, not a numeric string), as a float; NULL otherwise."""

    type = Float()
    name = "json_number"
    inherit_cache = True


class json_text(_JsonScalar):
    """A JSON string; NULL for any other kind of value, or none."""

    type = String()
    name = "json_text"
    inherit_cache = True


def json_scalar(kind: type[_JsonScalar], column: Any, key: str) -> ColumnElement[Any]:
    """``kind`` of ``column``'s top-level ``key``."""
    path = '$."' + key.replace('"', '\\"') + '"'
    return kind(column, literal(key, String()), literal(path, String()))


class epoch_us(FunctionElement[int]):
    """A ``DateTime`` column (naive UTC) as microseconds since the epoch."""

    type = BigInteger()
    name = "epoch_us"
    inherit_cache = True


class iso_epoch_us(FunctionElement[int]):
    """ISO 8601 text (``2026-11-25T10:00:00.123456+00:00``, ``...Z``, or no offset: UTC) as microseconds since the
    epoch; NULL when the text is not such an instant."""

    type = BigInteger()
    name = "iso_epoch_us"
    inherit_cache = True


class month_index(FunctionElement[int]):
    """``year * 12 + month - 1`` of a ``DateTime`` (naive UTC): months count on across years."""

    type = Integer()
    name = "month_index"
    inherit_cache = True


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(clause, **kw) for clause in element.clauses]


# ------------------------------------------------------------------------------------------------ SQLite


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = _args(element, compiler, **kw)
    return f"CASE WHEN json_type({column}, {path}) IN ('integer', 'real') THEN json_extract({column}, {path}) END"


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = _args(element, compiler, **kw)
    return f"CASE WHEN json_type({column}, {path}) = 'text' THEN json_extract({column}, {path}) END"


@compiles(epoch_us, "sqlite")
def _epoch_us_sqlite(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    # Whole seconds from the first 19 characters (SQLite would round the fraction to milliseconds), then the
    # six digits of the fraction as they are.
    return (
        f"(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr({value} || '.000000', 21, 6) AS INTEGER))"
    )


@compiles(iso_epoch_us, "sqlite")
def _iso_epoch_us_sqlite(element: iso_epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    # After the seconds come an optional fraction and an optional offset: ltrim strips the fraction, leaving the
    # offset, which strftime applies; the fraction's digits are padded or cut to six.
    offset = f"ltrim(substr({value}, 20), '.0123456789')"
    fraction = (
        f"CASE WHEN substr({value}, 20, 1) = '.'"
        f" THEN substr({value}, 21, length({value}) - 20 - length({offset})) ELSE '' END"
    )
    seconds = f"strftime('%s', substr({value}, 1, 19) || {offset})"
    return (
        f"(CASE WHEN {seconds} IS NOT NULL THEN CAST({seconds} AS INTEGER) * 1000000"
        f" + CAST(substr({fraction} || '000000', 1, 6) AS INTEGER) END)"
    )


@compiles(month_index, "sqlite")
def _month_index_sqlite(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"(CAST(substr({value}, 1, 4) AS INTEGER) * 12 + CAST(substr({value}, 6, 2) AS INTEGER) - 1)"


# ------------------------------------------------------------------------------------------------ PostgreSQL


@compiles(json_number, "postgresql")
def _json_number_postgresql(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = _args(element, compiler, **kw)
    return (
        f"CASE WHEN json_typeof({column} -> CAST({key} AS TEXT)) = 'number'"
        f" THEN CAST({column} ->> CAST({key} AS TEXT) AS DOUBLE PRECISION) END"
    )


@compiles(json_text, "postgresql")
def _json_text_postgresql(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = _args(element, compiler, **kw)
    return (
        f"CASE WHEN json_typeof({column} -> CAST({key} AS TEXT)) = 'string' THEN {column} ->> CAST({key} AS TEXT) END"
    )


@compiles(epoch_us, "postgresql")
def _epoch_us_postgresql(element: epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    # EXTRACT returns numeric (exact) since PostgreSQL 14.
    return f"CAST(EXTRACT(EPOCH FROM {value}) * 1000000 AS BIGINT)"


@compiles(iso_epoch_us, "postgresql")
def _iso_epoch_us_postgresql(element: iso_epoch_us, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    pattern = compiler.process(literal(_ISO_INSTANT, String()), **kw)
    return (
        f"CASE WHEN {value} ~ {pattern}"
        f" THEN CAST(EXTRACT(EPOCH FROM CAST({value} AS TIMESTAMPTZ)) * 1000000 AS BIGINT) END"
    )


@compiles(month_index, "postgresql")
def _month_index_postgresql(element: month_index, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"(CAST(EXTRACT(YEAR FROM {value}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {value}) AS INTEGER) - 1)"
