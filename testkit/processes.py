"""Helpers for tests that run journeys' own commands as separate OS processes."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def journeys_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``JOURNEYS_*`` it happens to have, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return env | settings
