"""The nearest known name for a misspelt one, so a validation message can say what was probably meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], *, prefix: str = "") -> str:
    """`` (did you mean 'pickup'?)`` for the known name closest to ``name``, or ``""`` when none is close.

    ``prefix`` is put before the suggestion as the user would write it (``vars.``), but plays no part in the
    match: a shared prefix would make every name look alike.
    """
    close = difflib.get_close_matches(name, sorted(set(known) - {name}), n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""
