"""Static lists imported from CSV (``journeys segments import NAME FILE.csv``): the ``in_list`` condition reads them.

The CSV has a header; its ``customer_id`` column names customers directly, or a ``user_id`` or ``email``
column names them by an identity the event API linked (``customeridentity``), resolved in SQL. An import
replaces the list whole, in one transaction: a list is what its last file held.

Errors::

    ListImportError      the file cannot be read as such a list (the message names the file and line)
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, delete, func, insert, literal, select
from sqlmodel.sql.sqltypes import UTCDateTime

from contracts.errors import InputError
from storage.tables import CustomerIdentity, SegmentListMember

LIST = SegmentListMember.__table__  # type: ignore[attr-defined]
IDENTITY = CustomerIdentity.__table__  # type: ignore[attr-defined]
COLUMNS = ("customer_id", "user_id", "email")
"""The columns a list may name customers by, in the order they are looked for."""
_CHUNK = 1000


class ListImportError(InputError):
    """A CSV file that cannot be imported as a list."""


def read_list(path: Path) -> tuple[str, list[str]]:
    """(the column used, its distinct non-empty values) of the CSV at ``path``."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [name.strip().lower() for name in reader.fieldnames or []]
            column = next((name for name in COLUMNS if name in fields), None)
            if column is None:
                raise ListImportError(
                    f"{path.name}: line 1: the header needs one of {', '.join(COLUMNS)} (found: {', '.join(fields)})"
                )
            original = (reader.fieldnames or [])[fields.index(column)]
            values = [(row.get(original) or "").strip() for row in reader]
    except OSError as exc:
        raise ListImportError(f"{path.name}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ListImportError(f"{path.name}: not a CSV file in UTF-8: {exc}") from None
    cleaned = (value.lower() if column == "email" else value for value in values)
    return column, list(dict.fromkeys(value for value in cleaned if value))


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def import_list(connection: Connection, name: str, column: str, values: list[str], *, now: datetime) -> int:
    """Replace list ``name`` with the customers ``values`` name (by ``column``); returns how many it holds."""
    connection.execute(delete(LIST).where(LIST.c.list == name))
    for chunk in _chunks(values):
        if column == "customer_id":
            connection.execute(insert(LIST), [{"list": name, "customer_id": v, "added_at": now} for v in chunk])
            continue
        kind = "user_id" if column == "user_id" else "email"
        found = (
            select(literal(name), IDENTITY.c.customer_id, literal(now, UTCDateTime()))
            .where(IDENTITY.c.kind == kind, IDENTITY.c.value.in_(chunk))
            .distinct()
        )
        # Two identities of one customer in the file make one row: only those not in the list yet go in.
        listed = select(LIST.c.customer_id).where(LIST.c.list == name)
        connection.execute(
            insert(LIST).from_select(
                ["list", "customer_id", "added_at"], found.where(IDENTITY.c.customer_id.not_in(listed))
            )
        )
    return int(connection.execute(select(func.count()).select_from(LIST).where(LIST.c.list == name)).scalar_one())


def list_names(connection: Connection) -> list[str]:
    return [str(name) for name in connection.execute(select(LIST.c.list).distinct().order_by(LIST.c.list)).scalars()]
