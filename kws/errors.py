"""One error contract for every entry point (`kws`, `kws-train`, `python -m training.*`).

A `KwsError` is a problem the user can fix (a bad file, a bad model folder, a bad
option value); its message names the thing and the problem, and the entry point
prints it as one `error: ...` line. Anything else that escapes is a bug and keeps its
traceback. Each error class carries the exit status for its situation, the same in
every command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # an input file could not be used (the others were still processed)
EXIT_USAGE = 2  # bad command line, option value, model bundle, data folder or truth file
EXIT_DEVICE = 3  # the audio device failed or does not exist
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

EXIT_CODES_HELP = (
    "exit status: 0 ok; 1 an input file could not be used (the others were processed); "
    "2 bad usage, option value, model, data folder or truth file; 3 audio device error; 130 interrupted"
)


class KwsError(Exception):
    """A user-facing error: printed as one line, never a traceback."""

    exit_code = EXIT_USAGE


class InputFileError(KwsError):
    """An input file (audio) that cannot be used."""

    exit_code = EXIT_BAD_INPUT


class DeviceError(KwsError):
    """An audio device that is missing or fails."""

    exit_code = EXIT_DEVICE


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (so `--batch-size 0` is refused as a usage error)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def probability(text: str) -> float:
    """A score threshold in (0, 1]."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text}")
    return value


def percent(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in [0, 100), got {text}")
    return value


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {'whole number' if kind is int else 'number'}: {text!r}") from None
    if kind is float and value != value:  # NaN
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return value


def report(error: KwsError) -> int:
    """Print the one-line message and return the exit status."""
    import sys

    print(f"error: {error}", file=sys.stderr, flush=True)
    return error.exit_code


@contextlib.contextmanager
def stderr_discarded():
    """File descriptor 2 to /dev/null for a block: C++ libraries (TensorFlow's absl and
    oneDNN start-up lines, LiteRT's delegate notice) write there before any log level
    applies, and only our own lines may reach the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
