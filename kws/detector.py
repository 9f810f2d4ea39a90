"""Turning per-frame posteriors into detections. Knows nothing of Keras; every duration in ms.

A label fires when its posterior, averaged over the last `average_window_ms`, has
stayed at or above `threshold` for `min_above_ms`, at least `suppression_ms` after
the previous detection, and only if it has been below the threshold since it last
fired (so one spoken word fires once, and `reset()` does not re-fire a word that is
still being heard). `silence` and `unknown` never fire.

The decisions for N streams in lockstep are one compiled loop (`_detect`); a single
stream's `Detector` is that loop with N = 1, so both make the same decisions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from kws.labels import NEVER_FIRE


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


@njit(cache=True)
def _detect(posteriors, first_ms, step_ms, ring, sums, smoothed, armed, fires, counters, above_label, above_frames, last_fire_ms,
            threshold, min_above, suppression_ms):
    """posteriors (T, N, C) of T frames for N streams, frame t at stream time first_ms + t * step_ms;
    updates the state in place. ring (W, N, C): the last W frames; counters: [next ring slot,
    frames in the ring]. Returns (T, N) the label index fired on each frame (or -1), (T, N) its
    smoothed score, and how many fired."""
    window = ring.shape[0]
    steps, n, c = posteriors.shape
    fired = np.full((steps, n), -1, np.int64)
    fired_scores = np.zeros((steps, n))
    count = 0
    for t in range(steps):
        slot, filled = counters[0], counters[1]
        full = filled == window
        filled = min(filled + 1, window)
        time_ms = first_ms + t * step_ms
        for i in range(n):
            best, best_score = -1, -1.0
            for j in range(c):
                if full:
                    sums[i, j] -= ring[slot, i, j]
                ring[slot, i, j] = posteriors[t, i, j]
                sums[i, j] += posteriors[t, i, j]
                score = sums[i, j] / filled
                smoothed[i, j] = score
                if score < threshold:
                    armed[i, j] = True
                if fires[j] and score > best_score:
                    best, best_score = j, score
            if best < 0 or best_score < threshold:
                above_label[i], above_frames[i] = -1, 0
                continue
            above_frames[i] = above_frames[i] + 1 if best == above_label[i] else 1
            above_label[i] = best
            if above_frames[i] >= min_above and armed[i, best] and time_ms - last_fire_ms[i] >= suppression_ms:
                armed[i, best] = False
                last_fire_ms[i] = time_ms
                fired[t, i], fired_scores[t, i] = best, best_score
                count += 1
        counters[0], counters[1] = (slot + 1) % window, filled
    return fired, fired_scores, count


class BatchDetector:
    """N streams in lockstep, each making exactly the decisions of its own `Detector`."""

    def __init__(self, labels: list[str], n_streams: int, config: DetectorConfig = DetectorConfig()):
        if not labels:
            raise ValueError("labels must not be empty")
        if n_streams < 1:
            raise ValueError(f"n_streams must be >= 1, got {n_streams}")
        self.labels, self.config, self.n = list(labels), config, n_streams
        self._fires = np.array([label not in NEVER_FIRE for label in self.labels])
        self._window = max(1, int(round(config.average_window_ms / config.frame_ms)))
        self._min_above = max(1, int(round(config.min_above_ms / config.frame_ms)))
        self._armed = np.ones((n_streams, len(self.labels)), np.bool_)
        self._clear()

    def _clear(self) -> None:
        n, c = self.n, len(self.labels)
        self._ring = np.zeros((self._window, n, c))
        self._sums = np.zeros((n, c))
        self.smoothed = np.zeros((n, c))
        self._counters = np.zeros(2, np.int64)
        self._above_label = np.full(n, -1, np.int64)
        self._above_frames = np.zeros(n, np.int64)
        self._last_fire_ms = np.full(n, -np.inf)

    def reset(self) -> None:
        """Forget the history. Labels above threshold now stay disarmed until they drop."""
        self._armed &= self.smoothed < self.config.threshold
        self._clear()

    def run_frames(self, posteriors: np.ndarray, first_ms: float) -> list[tuple[int, int, Detection]]:
        """posteriors (T, N, classes), frame t at stream time first_ms + t * frame_ms
        -> [(frame, stream, detection)]."""
        if posteriors.ndim != 3 or posteriors.shape[1:] != self._sums.shape:
            raise ValueError(f"posteriors have shape {posteriors.shape}, expected (frames, {self.n}, {len(self.labels)})")
        step_ms = self.config.frame_ms
        fired, scores, count = _detect(
            posteriors, float(first_ms), step_ms, self._ring, self._sums, self.smoothed, self._armed, self._fires,
            self._counters, self._above_label, self._above_frames, self._last_fire_ms, self.config.threshold,
            self._min_above, self.config.suppression_ms)
        if not count:
            return []
        return [(int(t), int(i), Detection(self.labels[fired[t, i]], float(scores[t, i]), first_ms + t * step_ms))
                for t, i in zip(*np.nonzero(fired >= 0))]

    def update(self, posteriors: np.ndarray, time_ms: float) -> list[tuple[int, Detection]]:
        """posteriors (N, classes) of one frame -> [(stream index, detection)]."""
        found = self.run_frames(np.asarray(posteriors)[None], time_ms)
        return [(i, d) for _, i, d in found]


class Detector:
    """One stream. `update` takes one frame; `run` many at once."""

    def __init__(self, labels: list[str], config: DetectorConfig = DetectorConfig()):
        self._batch = BatchDetector(labels, 1, config)
        self.labels, self.config = self._batch.labels, config

    @property
    def smoothed(self) -> np.ndarray:
        return self._batch.smoothed[0]

    def reset(self) -> None:
        """Forget the history. Labels above threshold now stay disarmed until they drop."""
        self._batch.reset()

    def update(self, posterior: np.ndarray, time_ms: float) -> Detection | None:
        """One frame's posteriors (len(labels),) at stream time `time_ms`."""
        if np.shape(posterior) != (len(self.labels),):
            raise ValueError(f"posterior has shape {np.shape(posterior)}, expected ({len(self.labels)},)")
        found = self._batch.update(np.asarray(posterior)[None], time_ms)
        return found[0][1] if found else None

    def run(self, posteriors: np.ndarray, first_frame: int = 0, window_ms: float = 30.0) -> list[Detection]:
        """Frames (n, len(labels)) that are frames first_frame.. of the stream."""
        posteriors = np.asarray(posteriors)
        if posteriors.ndim != 2 or posteriors.shape[1] != len(self.labels):
            raise ValueError(f"posteriors have shape {posteriors.shape}, expected (frames, {len(self.labels)})")
        first_ms = frame_time(first_frame, self.config.frame_ms, window_ms)
        return [d for _, _, d in self._batch.run_frames(posteriors[:, None, :], first_ms)]


def frame_time(index, frame_ms: float = 10.0, window_ms: float = 30.0):
    """Stream time (ms) of frame `index` (an int or an array): the end of its analysis window."""
    return index * frame_ms + window_ms


def frame_times(first: int, n: int, frame_ms: float = 10.0, window_ms: float = 30.0) -> np.ndarray:
    """Stream time (ms) of frames first..first+n-1."""
    return frame_time(first + np.arange(n), frame_ms, window_ms)
