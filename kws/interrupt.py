"""Ctrl-C and SIGTERM as a stop request, not an exception thrown into running code.

An exception raised by a signal lands wherever the interpreter happens to be: inside
TensorFlow's C++ (which can swallow it) or a numba-compiled call (which turns it into
SystemError). Long-running commands instead poll `requested()` at safe points. A
second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading

_stop = threading.Event()


def _request(signum, frame):
    if _stop.is_set():
        raise KeyboardInterrupt
    _stop.set()


def install() -> threading.Event:
    """Route SIGINT and SIGTERM to the stop request (also where the parent ignored SIGINT)."""
    _stop.clear()
    signal.signal(signal.SIGINT, _request)
    signal.signal(signal.SIGTERM, _request)
    return _stop


def requested() -> bool:
    return _stop.is_set()
