"""Typed reads of one key of a JSON column (traits, event properties), in SQL that SQLite and PostgreSQL both run.

SQLAlchemy's ``column[key].as_float()`` casts whatever is there: on PostgreSQL a trait holding ``"gold"`` where
a number was expected fails the whole query, for every customer. These reads give NULL instead when the value
is not of the type asked for, so one customer's odd trait only keeps that customer out of a segment.

    json_text(col, key)       the value when it is a JSON string, else NULL
    json_number(col, key)     the value when it is a JSON number, else NULL
    json_is(col, key, flag)   true when the value is the JSON boolean ``flag``
    json_present(col, key)    true when the key is there and not ``null``

Keys are bound as parameters, never written into the SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, String, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class _JsonRead(FunctionElement[Any]):
    inherit_cache = True
    kind: str = ""

    def __init__(self, column: ColumnElement[Any], key: str, flag: bool | None = None) -> None:
        # The key (and the flag) are parameters of the element, not attributes: SQLAlchemy caches compiled SQL by
        # the element tree, and must bind each statement's own key into the cached SQL.
        args: list[Any] = [column, bindparam(None, key, type_=String())]
        if flag is not None:
            args.append(bindparam(None, "true" if flag else "false", type_=String()))
        super().__init__(*args)


# Named like the SQL functions they stand for.
class json_text(_JsonRead):
    type, kind, inherit_cache = String(), "text", True


class json_number(_JsonRead):
    type, kind, inherit_cache = Float(), "number", True


class json_is(_JsonRead):
    type, kind, inherit_cache = Boolean(), "bool", True


class json_present(_JsonRead):
    type, kind, inherit_cache = Boolean(), "present", True


_PRESENT = "{kind} IS NOT NULL AND {kind} != 'null'"
_SQL = {
    "sqlite": {
        "kind": """json_type({column}, ('$."' || {key} || '"'))""",
        "value": """json_extract({column}, ('$."' || {key} || '"'))""",
        "text": "CASE WHEN {kind} = 'text' THEN {value} END",
        "number": "CASE WHEN {kind} IN ('integer', 'real') THEN {value} END",
        "bool": "{kind} = {flag}",
        "present": _PRESENT,
    },
    "postgresql": {
        "kind": "json_typeof(({column} -> {key}))",
        "value": "({column} ->> {key})",
        "text": "CASE WHEN {kind} = 'string' THEN {value} END",
        "number": "CASE WHEN {kind} = 'number' THEN CAST({value} AS DOUBLE PRECISION) END",
        "bool": "{kind} = 'boolean' AND {value} = {flag}",
        "present": _PRESENT,
    },
}
"""Per dialect: how to name the JSON type of the key's value and the value itself, and each read built on them."""


def _compiled(dialect: str) -> Any:
    templates = _SQL[dialect]

    def render(element: _JsonRead, compiler: Any, **kw: Any) -> str:
        column, key, *flag = (compiler.process(clause, **kw) for clause in element.clauses.clauses)
        kind = templates["kind"].format(column=column, key=key)
        value = templates["value"].format(column=column, key=key)
        return "(" + templates[element.kind].format(kind=kind, value=value, flag=flag[0] if flag else "") + ")"

    return render


for _dialect in _SQL:
    for _read in (json_text, json_number, json_is, json_present):
        compiles(_read, _dialect)(_compiled(_dialect))
