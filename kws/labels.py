"""The two classes every model has besides its command words, named in one place.

`silence` (nothing spoken) and `unknown` (a word that is not a command) are labels
of the network's output like the commands, but they never fire a detection.
"""

from __future__ import annotations

SILENCE = "silence"
UNKNOWN = "unknown"
NEVER_FIRE = (SILENCE, UNKNOWN)


def command_words(labels: list[str]) -> tuple[str, ...]:
    """The labels that are commands (everything but silence and unknown), in order."""
    return tuple(label for label in labels if label not in NEVER_FIRE)
