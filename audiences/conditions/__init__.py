"""Segment condition kinds: one module each, holding the kind's model, checks and SQL (see :mod:`.base`).

Importing the package registers every kind: the documented ones first, in the order docs/audiences.md lists
them, then any other module found here, by name. So a new kind is a new module in this folder and nothing else.
"""

import importlib
import pkgutil

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

_DOCUMENTED = ("trait", "performed", "consent", "in_segment", "in_list", "all_of", "any_of", "negation")
_FOUND = sorted(module.name for module in pkgutil.iter_modules(__path__) if module.name not in {"base", *_DOCUMENTED})
for _module in (*_DOCUMENTED, *_FOUND):
    importlib.import_module(f"{__name__}.{_module}")

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
