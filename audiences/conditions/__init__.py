"""Segment condition kinds: one module each, holding the kind's model, checks and SQL (see :mod:`.base`).

Importing the package registers every kind: the documented ones first, in the order docs/audiences.md lists
them, then any other module found here, by name. So a new kind is a new module in this folder and nothing else.
"""

from audiences.conditions.base import (
    Condition,
    ConditionKind,
    ConditionModel,
    ListKind,
    Query,
    Scope,
    kind_of,
    kinds,
    register,
    walk,
)
from journeymap.fields import import_kinds

_DOCUMENTED = ("trait", "performed", "consent", "in_segment", "in_list", "score", "all_of", "any_of", "negation")
import_kinds(__name__, __path__, _DOCUMENTED)

__all__ = [
    "Condition",
    "ConditionKind",
    "ConditionModel",
    "ListKind",
    "Query",
    "Scope",
    "kind_of",
    "kinds",
    "register",
    "walk",
]
