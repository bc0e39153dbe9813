"""How the long-running commands (``worker``, ``api``, ``dev``) learn they should stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT (Ctrl-C) or SIGTERM (``docker stop``, systemd) while the block runs.

    The command then shuts down in its own order (stop accepting, finish what is in hand) and exits 0; Python's
    default for SIGINT would raise ``KeyboardInterrupt`` wherever the loop happened to be. The handlers go with
    the block, so a caller in the same process (tests run ``main`` in theirs) gets the defaults back.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
