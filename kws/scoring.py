"""Scoring detections on a long recording against its ground truth (`label,time_ms` per word).

Each detection, in time order, is matched to the latest not-yet-matched spoken
word that started at most `tolerance_ms` before it. Same command: a hit (latency
= detection time - word start). Another label, or any detection on an `unknown`
word: wrong. No word in reach: a false alarm. Command words never matched: misses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.detector import Detection
from kws.errors import KwsError
from kws.labels import UNKNOWN


@dataclass(frozen=True)
class TruthWord:
    label: str
    time_ms: float


class TruthError(KwsError):
    """A ground-truth file that cannot be used."""


def read_truth(path: str | Path) -> list[TruthWord]:
    """A CSV of `label,time_ms` lines (header optional), as TensorFlow's streaming tools write."""
    path = Path(path)
    if not path.exists():
        raise TruthError(f"{path}: no such ground-truth file")
    words = []
    with open(path, newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or (line_no == 1 and row[0].strip().lower() == "label"):
                continue
            if len(row) < 2:
                raise TruthError(f"{path}: line {line_no}: expected 'label,time_ms', got {','.join(row)!r}")
            try:
                time_ms = float(row[1])
            except ValueError:
                raise TruthError(f"{path}: line {line_no}: time_ms {row[1]!r} is not a number") from None
            words.append(TruthWord(row[0].strip().strip("_"), time_ms))
    return sorted(words, key=lambda w: w.time_ms)


def write_truth(path: str | Path, words: list[TruthWord]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "time_ms"])
        for word in words:
            writer.writerow([word.label, f"{word.time_ms:.1f}"])


@dataclass
class StreamScore:
    hits: int
    misses: int
    wrong: int
    false_alarms: int
    commands: int
    audio_s: float
    latencies_ms: list[float]

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms * 3600.0 / self.audio_s if self.audio_s else 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.commands if self.commands else 0.0

    def to_dict(self) -> dict:
        latencies = np.array(self.latencies_ms)
        return {
            "hits": self.hits,
            "misses": self.misses,
            "wrong": self.wrong,
            "false_alarms": self.false_alarms,
            "false_alarms_per_hour": round(self.false_alarms_per_hour, 2),
            "commands": self.commands,
            "hit_rate": round(self.hit_rate, 4),
            "latency_ms": {
                "median": round(float(np.median(latencies)), 1) if len(latencies) else None,
                "p90": round(float(np.percentile(latencies, 90)), 1) if len(latencies) else None,
            },
            "audio_s": round(self.audio_s, 2),
        }


def score_stream(
    detections: list[Detection], truth: list[TruthWord], audio_s: float, tolerance_ms: float = 1500.0
) -> StreamScore:
    truth = sorted(truth, key=lambda w: w.time_ms)
    starts = np.array([w.time_ms for w in truth])
    matched = np.zeros(len(truth), bool)
    hits = wrong = false_alarms = 0
    latencies = []
    for detection in sorted(detections, key=lambda d: d.time_ms):
        reachable = np.flatnonzero((starts <= detection.time_ms) & (detection.time_ms - starts <= tolerance_ms) & ~matched)
        if not len(reachable):
            false_alarms += 1
            continue
        index = reachable[-1]
        matched[index] = True
        if truth[index].label == detection.label:
            hits += 1
            latencies.append(detection.time_ms - truth[index].time_ms)
        else:
            wrong += 1
    commands = [i for i, w in enumerate(truth) if w.label != UNKNOWN]
    misses = sum(1 for i in commands if not matched[i])
    return StreamScore(hits, misses, wrong, false_alarms, len(commands), audio_s, latencies)
