"""``python -m storage.migrations "what changed"``: write the revision for a change to :mod:`storage.tables`.

Alembic's autogenerate against a scratch database at head; the new file lands in ``versions/``, numbered after
the last one. Read it before committing (a rename comes out as a drop and an add: make it an alter).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from storage.schema import new_revision


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        print('usage: python -m storage.migrations "what changed"', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        written = new_revision(argv[0], Path(folder))
    print(written or "storage/tables.py matches the schema at head: no revision written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
