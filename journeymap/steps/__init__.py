"""Step kinds: one module each, holding the kind's models, checks, picture and handler (see :mod:`.base`).

Importing the package registers every kind: the documented ones first, in the order the language lists them
(error messages name the kinds in this order), then any other module found here, by name. So a new kind is a
new module in this folder and nothing else.
"""

from journeymap.fields import import_kinds
from journeymap.steps.base import (
    StepContext,
    StepFault,
    StepKind,
    StepModel,
    StepState,
    kind_of,
    kinds,
    register,
    unregister,
)

_DOCUMENTED = ("send", "wait", "wait_for", "branch", "split", "set", "update_profile", "webhook", "goto", "end")
import_kinds(__name__, __path__, _DOCUMENTED)

__all__ = [
    "StepContext",
    "StepFault",
    "StepKind",
    "StepModel",
    "StepState",
    "kind_of",
    "kinds",
    "register",
    "unregister",
]
