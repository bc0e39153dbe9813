"""Statements compiled by SQLAlchemy once and run on the database driver's own cursor, for the hottest queries.

The event API looks up and records each message it handles (``starter.api.bookkeeping``), a few hundred a
second. Measured there, SQLAlchemy's execution path (per-call context, parameter processing, result set-up)
cost several times the database's own work (about 150 us a statement against 15 us on SQLite), and on a host
shared with the Temporal server that CPU is taken from the server (docs/benchmarks.md). SQLAlchemy still
writes the SQL for the dialect, and values go through their column types' bind and result processors, so what
is stored and read is exactly what SQLAlchemy would store and read.

Both run in the caller's transaction: begin and commit it with SQLAlchemy (``with connection.begin():``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Select
from sqlalchemy.engine import Dialect


class DriverInsert:
    """``statement`` for rows with exactly the columns ``keys``, compiled for ``dialect``.

    Raises ValueError at construction when the statement needs a value that is not among ``keys`` (a column
    default SQLAlchemy would fill in): such a column must be passed explicitly.
    """

    def __init__(self, statement: Insert, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        missing = sorted(set(compiled.binds) - set(keys))
        if missing:
            raise ValueError(f"{statement.table} needs values for {', '.join(missing)}: add them to the row keys")
        self.sql = compiled.string
        self._positional = compiled.positional
        order = list(compiled.positiontup or ()) if compiled.positional else list(keys)
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = [
            (key, compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in order
        ]

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` in ``connection``'s transaction (the caller begins and commits it)."""
        if not rows:
            return
        cursor = connection.connection.cursor()
        try:
            if self._positional:
                cursor.executemany(self.sql, [tuple(self._values(row)) for row in rows])
            else:
                names = [key for key, _ in self._columns]
                cursor.executemany(self.sql, [dict(zip(names, self._values(row), strict=True)) for row in rows])
        finally:
            cursor.close()

    def _values(self, row: Mapping[str, Any]) -> list[Any]:
        return [row[key] if process is None else process(row[key]) for key, process in self._columns]


class DriverSelect:
    """``statement``, whose one expanding parameter ``expanding`` (``col.in_(bindparam(name, expanding=True))``)
    takes a list of values, compiled for ``dialect``. The SQL for each length of list is made once.

    Parameters are passed to the driver as they are, so none may have a type whose values need processing
    (text is fine): checked at construction.
    """

    _CACHED_LENGTHS = 1000

    def __init__(self, statement: Select[*tuple[Any, ...]], dialect: Dialect, expanding: str) -> None:
        self._compiled = statement.compile(dialect=dialect)
        if expanding not in self._compiled.binds:
            raise ValueError(f"the statement has no parameter {expanding!r}")
        for name, bind in self._compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise ValueError(f"parameter {name!r} has a type whose values need processing: not supported here")
        self._expanding = expanding
        self._shapes: dict[int, tuple[str, list[Any] | dict[str, Any], list[Any]]] = {}
        self._results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns
        ]

    def rows(self, connection: Connection, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows for ``values`` (at least one), each value of each row as SQLAlchemy would return it."""
        sql, template, slots = self._shape(len(values))
        bound: tuple[Any, ...] | dict[str, Any]
        if isinstance(template, list):
            positional = list(template)
            for slot, value in zip(slots, values, strict=True):
                positional[slot] = value
            bound = tuple(positional)
        else:
            bound = dict(template)
            bound.update(zip(slots, values, strict=True))
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, bound)
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        processors = self._results
        return [
            tuple(value if process is None else process(value) for value, process in zip(row, processors, strict=True))
            for row in fetched
        ]

    def _shape(self, length: int) -> tuple[str, list[Any] | dict[str, Any], list[Any]]:
        """The SQL for ``length`` values, the parameters with a place for each value, and those places."""
        shape = self._shapes.get(length)
        if shape is not None:
            return shape
        if length < 1:
            raise ValueError("at least one value is needed")
        markers = [object() for _ in range(length)]
        state = self._compiled.construct_expanded_state({self._expanding: markers})
        template: list[Any] | dict[str, Any]
        if self._compiled.positional:
            template = list(state.positional_parameters)
            where: dict[int, Any] = {id(value): index for index, value in enumerate(template)}
        else:
            template = dict(state.parameters)
            where = {id(value): name for name, value in template.items()}
        slots: list[Any] = [where[id(marker)] for marker in markers]
        shape = (state.statement, template, slots)
        if len(self._shapes) < self._CACHED_LENGTHS:
            self._shapes[length] = shape
        return shape


class DriverStatement:
    """Any ``statement`` compiled once for ``dialect``, run on the driver's cursor with new values for some of
    its parameters at each run: the event path's segment re-checks (``audiences.membership``), built once per
    segment instead of per batch (SQLAlchemy's building and execution path cost ~650 us a statement there,
    against ~40 us for SQLite's own work). ``expanding`` names its one ``bindparam(..., expanding=True)``.

    Values go through their parameters' bind processors, as SQLAlchemy would send them; rows come back as the
    driver gives them (callers read ids and text).
    """

    _CACHED_LENGTHS = 1000

    def __init__(self, statement: Any, dialect: Dialect, expanding: str) -> None:
        self._compiled = statement.compile(dialect=dialect)
        if expanding not in self._compiled.binds:
            raise ValueError(f"the statement has no parameter {expanding!r}")
        self._expanding = expanding
        self.values: dict[str, Any] = {
            name: value for name, value in self._compiled.construct_params({expanding: []}).items() if name != expanding
        }
        """The values the statement was built with, by parameter name (those a run does not give stay)."""
        self.sql = self._compiled.string
        processors: Mapping[str, Callable[[Any], Any]] = self._compiled._bind_processors
        self._processors = dict(processors)
        self._shapes: dict[int, tuple[str, list[tuple[str, Any, Callable[[Any], Any] | None]], bool]] = {}

    def rows(self, connection: Connection, values: Mapping[str, Any], expanded: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run with ``values`` by parameter name over :attr:`values`, and ``expanded`` (at least one) in the
        expanding parameter, in ``connection``'s transaction; the rows it returns (none without RETURNING)."""
        sql, order, positional = self._shape(len(expanded))
        given = {**self.values, **values}
        out: list[Any] = []
        for name, source, process in order:
            if source is _GIVEN:
                value = given[name]
            elif isinstance(source, int):
                value = expanded[source]
            else:
                value = source.value
            out.append(value if process is None else process(value))
        bound: tuple[Any, ...] | dict[str, Any] = (
            tuple(out) if positional else dict(zip((name for name, _, _ in order), out, strict=True))
        )
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, bound)
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            cursor.close()

    def _shape(self, length: int) -> tuple[str, list[tuple[str, Any, Callable[[Any], Any] | None]], bool]:
        """The SQL for ``length`` expanded values, and for each parameter in order: its name, where its value
        comes from (a run's values by name, the index of an expanded value, or a fixed one: an item of a list
        the statement was built with, such as ``one_of``'s) and its bind processor."""
        shape = self._shapes.get(length)
        if shape is not None:
            return shape
        if length < 1:
            raise ValueError("at least one value is needed")
        markers = [object() for _ in range(length)]
        state = self._compiled.construct_expanded_state({**self.values, self._expanding: markers})
        slot_of = {id(marker): index for index, marker in enumerate(markers)}
        names = list(state.positiontup) if self._compiled.positional and state.positiontup else list(state.parameters)
        order: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in names:
            value = state.parameters[name]
            process = state.processors.get(name) or self._processors.get(name)
            if id(value) in slot_of:
                order.append((name, slot_of[id(value)], process or self._processors.get(self._expanding)))
            elif name in self.values:
                order.append((name, _GIVEN, process))
            else:
                order.append((name, _Fixed(value), process))
        shape = (state.statement, order, bool(self._compiled.positional))
        if len(self._shapes) < self._CACHED_LENGTHS:
            self._shapes[length] = shape
        return shape


_GIVEN = object()
"""A parameter whose value a run gives by name (or :attr:`DriverStatement.values` has)."""


class _Fixed:
    """A parameter whose value was fixed when the statement was built (an item of an expanded list)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
