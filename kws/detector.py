"""Turning per-frame posteriors into detections. Knows nothing of Keras; every duration in ms.

A label fires when its posterior, averaged over the last `average_window_ms`, has
stayed at or above `threshold` for `min_above_ms`, at least `suppression_ms` after
the previous detection, and only if it has been below the threshold since it last
fired (so one spoken word fires once, and `reset()` does not re-fire a word that is
still being heard). `silence` and `unknown` never fire.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

NEVER_FIRE = ("silence", "unknown")


@dataclass(frozen=True)
class DetectorConfig:
    average_window_ms: float = 200.0
    threshold: float = 0.6
    min_above_ms: float = 30.0
    suppression_ms: float = 800.0
    frame_ms: float = 10.0

    def __post_init__(self):
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be > 0, got {self.frame_ms}")
        for name in ("average_window_ms", "min_above_ms", "suppression_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    time_ms: float  # stream time of the frame on which it fired (end of that frame's window)

    @property
    def time_s(self) -> float:
        return self.time_ms / 1000.0


class Detector:
    def __init__(self, labels: list[str], config: DetectorConfig = DetectorConfig()):
        if not labels:
            raise ValueError("labels must not be empty")
        self.labels = list(labels)
        self.config = config
        self._fires = np.array([label not in NEVER_FIRE for label in self.labels])
        self._never = np.where(self._fires, 0.0, -2.0)  # added to scores: never-firing labels cannot win
        self._window = max(1, int(round(config.average_window_ms / config.frame_ms)))
        self._min_above = max(1, int(round(config.min_above_ms / config.frame_ms)))
        self._armed = np.ones(len(self.labels), bool)
        self._clear()

    def _clear(self) -> None:
        self._history: deque[np.ndarray] = deque()
        self._sum = np.zeros(len(self.labels))
        self._above_label = -1
        self._above_frames = 0
        self._last_fire_ms = -np.inf
        self.smoothed = np.zeros(len(self.labels))

    def reset(self) -> None:
        """Forget the history. Labels above threshold now stay disarmed until they drop."""
        self._armed &= self.smoothed < self.config.threshold
        self._clear()

    def update(self, posterior: np.ndarray, time_ms: float) -> Detection | None:
        """One frame's posteriors (len(labels),) at stream time `time_ms`."""
        if np.shape(posterior) != self._sum.shape:
            raise ValueError(f"posterior has shape {np.shape(posterior)}, expected ({len(self.labels)},)")
        self._history.append(posterior)
        self._sum += posterior
        if len(self._history) > self._window:
            self._sum -= self._history.popleft()
        self.smoothed = smoothed = self._sum / len(self._history)
        c = self.config
        below = smoothed < c.threshold
        self._armed |= below
        best = int((smoothed + self._never).argmax())
        if below[best] or not self._fires[best]:
            self._above_label, self._above_frames = -1, 0
            return None
        self._above_frames = self._above_frames + 1 if best == self._above_label else 1
        self._above_label = best
        if (
            self._above_frames >= self._min_above
            and self._armed[best]
            and time_ms - self._last_fire_ms >= c.suppression_ms
        ):
            self._armed[best] = False
            self._last_fire_ms = time_ms
            return Detection(self.labels[best], float(smoothed[best]), float(time_ms))
        return None

    def run(self, posteriors: np.ndarray, first_frame: int = 0, window_ms: float = 30.0) -> list[Detection]:
        """Frames (n, len(labels)) that are frames first_frame.. of the stream."""
        found = []
        times = frame_times(first_frame, len(posteriors), self.config.frame_ms, window_ms)
        for posterior, time_ms in zip(posteriors, times):
            detection = self.update(posterior, time_ms)
            if detection:
                found.append(detection)
        return found


def frame_times(first: int, n: int, frame_ms: float = 10.0, window_ms: float = 30.0) -> np.ndarray:
    """Stream time (ms) of frames first..first+n-1: the end of each frame's analysis window."""
    return (first + np.arange(n)) * frame_ms + window_ms


class BatchDetector:
    """The same decisions as one `Detector` per stream, for N streams in lockstep, vectorised."""

    def __init__(self, labels: list[str], n_streams: int, config: DetectorConfig = DetectorConfig()):
        single = Detector(labels, config)  # validates, and fixes the window sizes the same way
        self.labels, self.config, self.n = single.labels, config, n_streams
        self._fires = single._fires
        self._window, self._min_above = single._window, single._min_above
        c = len(self.labels)
        self._ring = np.zeros((self._window, n_streams, c))
        self._filled = 0
        self._next = 0
        self._sum = np.zeros((n_streams, c))
        self._armed = np.ones((n_streams, c), bool)
        self._above_label = np.full(n_streams, -1)
        self._above_frames = np.zeros(n_streams, np.int64)
        self._last_fire_ms = np.full(n_streams, -np.inf)
        self._rows = np.arange(n_streams)

    def update(self, posteriors: np.ndarray, time_ms: float) -> list[tuple[int, Detection]]:
        """posteriors (N, classes) of one frame -> [(stream index, detection)]."""
        if len(self._ring) and self._filled == self._window:
            self._sum -= self._ring[self._next]
        self._ring[self._next] = posteriors
        self._sum += posteriors
        self._next = (self._next + 1) % self._window
        self._filled = min(self._filled + 1, self._window)
        smoothed = self._sum / self._filled
        c = self.config
        below = smoothed < c.threshold
        self._armed |= below
        best = np.where(self._fires, smoothed, -1.0).argmax(axis=1)
        above = ~below[self._rows, best] & self._fires[best]
        same = above & (best == self._above_label)
        self._above_frames = np.where(same, self._above_frames + 1, np.where(above, 1, 0))
        self._above_label = np.where(above, best, -1)
        fire = (above & (self._above_frames >= self._min_above) & self._armed[self._rows, best]
                & (time_ms - self._last_fire_ms >= c.suppression_ms))
        found = []
        for i in np.flatnonzero(fire):
            self._armed[i, best[i]] = False
            self._last_fire_ms[i] = time_ms
            found.append((int(i), Detection(self.labels[best[i]], float(smoothed[i, best[i]]), float(time_ms))))
        return found
