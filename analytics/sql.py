"""SQL the two databases spell differently: typed reads from JSON columns, and instants as integer microseconds.

Each construct below compiles to SQLite's and to PostgreSQL's own functions, so the report's queries are
written once. Instants are compared as microseconds since the epoch (integers): exact on both, where SQLite's
date functions keep milliseconds only. SQLite stores a ``DateTime`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` text in
UTC (SQLAlchemy's format); a profile trait holds an ISO 8601 string, with or without an offset (none means
UTC, as the report has always read it; on PostgreSQL the report's transaction runs in UTC).

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
    """``column[key]`` when the JSON value there is of one kind, else NULL."""

    inherit_cache = True
    clause_names = ("column", "key", "path")


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
    clause_names = ("value",)


class iso_epoch_us(FunctionElement[int]):
    """ISO 8601 text (``2026-11-25T10:00:00.123456+00:00``, ``...Z``, or no offset: UTC) as microseconds since the
    epoch; NULL when the text is not such an instant."""

    type = BigInteger()
    name = "iso_epoch_us"
    inherit_cache = True
    clause_names = ("value", "pattern")

    def __init__(self, value: Any) -> None:
        super().__init__(value, literal(_ISO_INSTANT, String()))


class month_index(FunctionElement[int]):
    """``year * 12 + month - 1`` of a ``DateTime`` (naive UTC): months count on across years."""

    type = Integer()
    name = "month_index"
    inherit_cache = True
    clause_names = ("value",)


def _renderer(template: str) -> Any:
    """Compiles a construct by filling ``template``'s ``{clause}`` places with its compiled clauses."""

    def render(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
        names = element.clause_names
        return template.format(**{n: compiler.process(c, **kw) for n, c in zip(names, element.clauses, strict=True)})

    return render


# SQLite: after the seconds of an ISO instant come an optional fraction and an optional offset. ltrim strips the
# fraction, leaving the offset, which strftime applies; the fraction's digits are padded or cut to six. Whole
# seconds are taken from the first 19 characters only, since SQLite would round a fraction to milliseconds.
_OFFSET = "ltrim(substr({value}, 20), '.0123456789')"
_FRACTION = (
    "CASE WHEN substr({value}, 20, 1) = '.'"
    f" THEN substr({{value}}, 21, length({{value}}) - 20 - length({_OFFSET})) ELSE '' END"
)
_SECONDS = f"strftime('%s', substr({{value}}, 1, 19) || {_OFFSET})"
_PG_JSON = "json_typeof({column} -> CAST({key} AS TEXT))"

_SQL: dict[type[FunctionElement[Any]], dict[str, str]] = {
    json_number: {
        "sqlite": "CASE WHEN json_type({column}, {path}) IN ('integer', 'real')"
        " THEN json_extract({column}, {path}) END",
        "postgresql": f"CASE WHEN {_PG_JSON} = 'number'"
        " THEN CAST({column} ->> CAST({key} AS TEXT) AS DOUBLE PRECISION) END",
    },
    json_text: {
        "sqlite": "CASE WHEN json_type({column}, {path}) = 'text' THEN json_extract({column}, {path}) END",
        "postgresql": f"CASE WHEN {_PG_JSON} = 'string' THEN {{column}} ->> CAST({{key}} AS TEXT) END",
    },
    epoch_us: {
        "sqlite": "(CAST(strftime('%s', substr({value}, 1, 19)) AS INTEGER) * 1000000"
        " + CAST(substr({value} || '.000000', 21, 6) AS INTEGER))",
        # EXTRACT returns numeric (exact) since PostgreSQL 14.
        "postgresql": "CAST(EXTRACT(EPOCH FROM {value}) * 1000000 AS BIGINT)",
    },
    iso_epoch_us: {
        "sqlite": f"(CASE WHEN {_SECONDS} IS NOT NULL THEN CAST({_SECONDS} AS INTEGER) * 1000000"
        f" + CAST(substr({_FRACTION} || '000000', 1, 6) AS INTEGER) END)",
        "postgresql": "CASE WHEN {value} ~ {pattern}"
        " THEN CAST(EXTRACT(EPOCH FROM CAST({value} AS TIMESTAMPTZ)) * 1000000 AS BIGINT) END",
    },
    month_index: {
        "sqlite": "(CAST(substr({value}, 1, 4) AS INTEGER) * 12 + CAST(substr({value}, 6, 2) AS INTEGER) - 1)",
        "postgresql": "(CAST(EXTRACT(YEAR FROM {value}) AS INTEGER) * 12"
        " + CAST(EXTRACT(MONTH FROM {value}) AS INTEGER) - 1)",
    },
}
"""Each construct's SQL per dialect: one place to read both spellings side by side."""

for _construct, _dialects in _SQL.items():
    for _dialect, _template in _dialects.items():
        compiles(_construct, _dialect)(_renderer(_template))
