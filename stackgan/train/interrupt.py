"""Ctrl-C during training, the same in both trainers: the first one lets the current step finish, then
the loop checkpoints and stops; a second one interrupts at once (KeyboardInterrupt)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

MESSAGE = "Ctrl-C: stopping after this step, with a checkpoint (Ctrl-C again to interrupt at once)"


class StopRequest:
    """Set by the first Ctrl-C; the training loop reads :attr:`requested` after every step."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def graceful_interrupt(printer: Callable[[str], None] = print) -> Iterator[StopRequest]:
    """Install the handler for the ``with`` block (the previous one comes back after it). Outside the
    main thread no handler can be installed: Ctrl-C then behaves as usual."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):  # noqa: ARG001
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        printer(MESSAGE)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)
