"""Offline evaluation on audio people have: files, folders, labelled sets, long recordings.

- A folder whose sub-folders are named after words (the Speech Commands layout, or
  the canonical test set's with `_silence_/` and `_unknown_/`) is labelled: a
  sub-folder named after one of the model's commands is that class, `_silence_` is
  silence, `_unknown_` and any other word is unknown, `_background_noise_` is skipped.
  A model without an `unknown` class (or without `silence`) has no truth for the
  sub-folders that would be that class: they are skipped, and named once on stderr.
- Anything else is unlabelled.
- Files longer than `LONG_FILE_S` are recordings, not clips: they go through the
  streaming engine and give timestamped detections.
Unreadable files never stop the run: each is reported with its reason.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.audio import AudioError, audio_duration_s, iter_blocks, load_clip
from kws.bundle import Bundle
from kws.detector import Detection
from kws.engine import Engine, make_net
from kws.frontend import Mfcc
from kws.labels import SILENCE, UNKNOWN
from kws.recognizer import clip_posteriors

LONG_FILE_S = 1.5
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}
SKIP_DIRS = {"_background_noise_"}


@dataclass
class Item:
    path: Path
    label: str | None = None  # the true class, for labelled folders


@dataclass
class Failure:
    path: Path
    reason: str


@dataclass
class ClipResult:
    path: Path
    label: str | None
    posterior: np.ndarray


@dataclass
class StreamResult:
    path: Path
    detections: list[Detection]
    audio_s: float


@dataclass
class Evaluation:
    labels: list[str]
    clips: list[ClipResult] = field(default_factory=list)
    streams: list[StreamResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # sub-folders of no class of the model

    @property
    def labelled(self) -> list[ClipResult]:
        return [c for c in self.clips if c.label is not None]


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def folder_label(name: str, labels: list[str]) -> str | None:
    """The class of a labelled folder's sub-folder; None for one to skip: `_background_noise_`,
    or a folder whose class (silence, unknown) the model does not have."""
    if name in SKIP_DIRS:
        return None
    if name == "_silence_":
        label = SILENCE
    elif name in labels and name not in (SILENCE, UNKNOWN):
        label = name
    else:
        label = UNKNOWN
    return label if label in labels else None


def is_labelled_folder(folder: Path, labels: list[str]) -> bool:
    """True if some sub-folder holding audio is named after one of the model's classes."""
    commands = {label for label in labels if label not in (SILENCE, UNKNOWN)} | {"_silence_", "_unknown_"}
    return any(p.is_dir() and p.name in commands and any(map(is_audio, p.iterdir())) for p in folder.iterdir())


def collect(paths: list[str | os.PathLike], labels: list[str]) -> tuple[list[Item], list[Failure], list[Path]]:
    """(the files to score, the paths that do not exist, the labelled sub-folders skipped
    because the model has no class for them)."""
    items, failures, skipped = [], [], []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            failures.append(Failure(path, "no such file or folder"))
        elif path.is_file():
            items.append(Item(path))
        elif is_labelled_folder(path, labels):
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                label = folder_label(sub.name, labels)
                if label is not None:
                    items += [Item(f, label) for f in sorted(sub.rglob("*")) if f.is_file() and is_audio(f)]
                elif sub.name not in SKIP_DIRS:
                    skipped.append(sub)
        else:
            items += [Item(f) for f in sorted(path.rglob("*")) if f.is_file() and is_audio(f)]
    return items, failures, skipped


def skipped_warning(skipped: list[Path], labels: list[str]) -> str | None:
    """One line naming the labelled sub-folders that were not scored, or None."""
    if not skipped:
        return None
    missing = " or ".join(label for label in (UNKNOWN, SILENCE) if label not in labels)
    return (f"warning: not scored, as the model has no {missing} class: {len(skipped)} sub-folder(s) "
            f"{', '.join(str(p) for p in skipped)}")


def is_long(path: Path) -> bool:
    try:
        return audio_duration_s(path) > LONG_FILE_S
    except AudioError:
        return False  # let the clip reader report the problem


def stream_file(bundle: Bundle, path: Path, engine: Engine | None = None) -> StreamResult:
    engine = engine or Engine(bundle)
    engine.reset()
    detections = []
    for block in iter_blocks(path, block_s=1.0):
        detections += engine.process(block).detections
    return StreamResult(path, detections, engine.seconds_seen)


def evaluate(bundle: Bundle, paths: list[str | os.PathLike], batch_files: int = 2048, engine: Engine | None = None) -> Evaluation:
    """Score every readable file; clips in batches of `batch_files` files, recordings streamed."""
    items, failures, skipped = collect(paths, bundle.labels)
    result = Evaluation(bundle.labels, failures=failures, skipped=skipped)
    warning = skipped_warning(skipped, bundle.labels)
    if warning:
        print(warning, file=sys.stderr)
    mfcc = Mfcc(bundle.frontend)
    net = engine.net if engine is not None else make_net(bundle)
    clips = []
    for item in items:
        if is_long(item.path):
            try:
                engine = engine or Engine(bundle)
                result.streams.append(stream_file(bundle, item.path, engine))
            except AudioError as error:
                result.failures.append(Failure(item.path, error.problem))
        else:
            clips.append(item)
    for start in range(0, len(clips), batch_files):
        features, kept = [], []
        for item in clips[start : start + batch_files]:
            try:
                features.append(mfcc(load_clip(item.path)))
                kept.append(item)
            except AudioError as error:
                result.failures.append(Failure(item.path, error.problem))
        posteriors = clip_posteriors(net, features)
        result.clips += [ClipResult(i.path, i.label, p) for i, p in zip(kept, posteriors)]
    return result


@dataclass
class Metrics:
    labels: list[str]
    confusion: np.ndarray  # rows: truth, columns: prediction

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else 0.0

    def per_class(self) -> dict[str, dict]:
        out = {}
        for i, label in enumerate(self.labels):
            predicted, actual = self.confusion[:, i].sum(), self.confusion[i].sum()
            out[label] = {
                "precision": round(float(self.confusion[i, i] / predicted), 4) if predicted else None,
                "recall": round(float(self.confusion[i, i] / actual), 4) if actual else None,
                "n": int(actual),
            }
        return out


def metrics(evaluation: Evaluation) -> Metrics:
    labels = evaluation.labels
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    for clip in evaluation.labelled:
        confusion[index[clip.label], int(clip.posterior.argmax())] += 1
    return Metrics(labels, confusion)


def confusion_text(m: Metrics) -> str:
    width = max(6, *(len(label) for label in m.labels))
    header = " " * (width + 1) + " ".join(f"{label[:width]:>{width}}" for label in m.labels)
    rows = [f"{label:>{width}} " + " ".join(f"{v:>{width}d}" for v in row) for label, row in zip(m.labels, m.confusion)]
    return "\n".join(["truth \\ predicted", header, *rows])


def plot_confusion(m: Metrics, path: str | os.PathLike, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = m.confusion / np.maximum(m.confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(m.labels), 0.8 + 0.55 * len(m.labels)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(m.labels)), m.labels, rotation=45, ha="right")
    ax.set_yticks(range(len(m.labels)), m.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    for i in range(len(m.labels)):
        for j in range(len(m.labels)):
            if m.confusion[i, j]:
                ax.text(j, i, str(m.confusion[i, j]), ha="center", va="center",
                        color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(f"{title}: accuracy {m.accuracy:.3f} (N={m.n})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
