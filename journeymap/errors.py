"""Errors of the journey-map language.

    MapValidationError          a map (or a set of them, or a scenario told to one) is not valid
      .errors: list[MapError]   one per problem: file, path inside it, message

Every problem is reported, not only the first, so a marketer fixes a map in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.errors import InputError


@dataclass(frozen=True)
class MapError:
    """One problem in one map, located precisely: ``refill.yaml: steps[3].wait_for.timeout: ...``."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class MapValidationError(InputError, ValueError):
    """Raised with every problem found in a map."""

    def __init__(self, errors: list[MapError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
