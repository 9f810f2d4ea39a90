"""The Speech Commands layout: word folders, splits, class balance and noise.

Layout: one folder per word (`yes/0a7c2a8d_nohash_0.wav` is speaker 0a7c2a8d),
`_background_noise_/` long noise recordings, and in the canonical test set
`_silence_/` and `_unknown_/` folders. Splits come from `validation_list.txt` /
`testing_list.txt` when present, otherwise from the data set's own rule, which
hashes the speaker id so that a speaker's clips never straddle two sets and the
split stays stable as the data set grows.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio
from kws.errors import KwsError
from kws.labels import SILENCE, UNKNOWN

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
NOISE_DIR = "_background_noise_"
SILENCE_DIR = "_silence_"
UNKNOWN_DIR = "_unknown_"
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # as in TensorFlow's speech_commands input_data.py


class DataError(KwsError):
    """A data folder that cannot be used; the message names it and the problem."""


def which_set(filename: str, validation_percentage: float, testing_percentage: float, salt: str = "") -> str:
    """TensorFlow's rule: hash the speaker id (the name before `_nohash_`).

    With a `salt`, the salt is hashed with the speaker id: still stable and
    speaker-disjoint, but independent of TensorFlow's split. That matters for a
    subset that TensorFlow's rule itself selected (its canonical test set, whose
    speakers all hash into one narrow band), where the plain rule is lopsided.
    """
    base_name = Path(filename).name
    hash_name = salt + re.sub(r"_nohash_.*$", "", base_name)
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def speaker_of(path: Path) -> str:
    return re.sub(r"_nohash_.*$", "", path.stem)


def speech_speaker(path: Path) -> str:
    """The speaker of `WORD_SPEAKER_INDEX.wav` (the Free Spoken Digit Dataset's names); a file
    named otherwise is its own speaker."""
    parts = path.stem.split("_")
    return "_".join(parts[1:-1]) if len(parts) >= 3 else path.stem


def speech_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such speech folder")
    files = sorted(folder.glob("*.wav"))
    if not files:
        raise DataError(f"{folder}: no .wav recordings in the speech folder")
    return files


def speech_halves(files: list[Path]) -> tuple[list[str], list[str]]:
    """The speakers in order of name, alternately: (for training and tuning the detector,
    held out from both for training.robustness)."""
    speakers = sorted({speech_speaker(f) for f in files})
    return speakers[::2], speakers[1::2]


def extra_training_clips(root: str | Path, labels: list[str], unknown_only: bool = False) -> list[Clip]:
    """Every clip of another folder in the Speech Commands layout (synthetic speech, your
    own recordings), all for training: a folder named after a class is that class, any
    other word folder is `unknown`; with `unknown_only`, only the `unknown` ones. Validation
    stays on the main data set's speakers."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such extra data folder")
    clips = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        label = directory.name if directory.name in labels else UNKNOWN
        if label not in labels or (unknown_only and label != UNKNOWN):
            continue  # a task without an unknown class takes only its own words
        clips += [Clip(directory / wav, label, directory.name)
                  for wav in sorted(e.name for e in os.scandir(directory) if e.name.endswith(".wav"))]
    if not clips and unknown_only:
        raise DataError(f"{root}: no non-command word folders with .wav clips in the extra data folder "
                        "(--extra-unknown-only takes only those)")
    if not clips:
        raise DataError(f"{root}: no word folders with .wav clips in the extra data folder")
    return clips


def speech_training_clips(folder: str | Path, labels: list[str]) -> tuple[list[Clip], list[str]]:
    """The recordings of the tuning half of a non-command speech folder's speakers (the half
    that training.tune_detector uses; the other half stays unheard for training.robustness),
    as `unknown` training clips, and those speakers. A recording whose word (the name's
    first part) is one of the task's words is left out: it is not non-command speech."""
    if UNKNOWN not in labels:
        raise DataError(f"{folder}: non-command speech trains the unknown class, and this task has none "
                        "(--words all): leave out --speech")
    files = speech_files(folder)
    chosen_speakers = set(speech_halves(files)[0])
    return [Clip(f, UNKNOWN, "speech") for f in files
            if speech_speaker(f) in chosen_speakers and f.stem.split("_")[0] not in labels], sorted(chosen_speakers)


def labels_for(words: tuple[str, ...], with_unknown: bool = True) -> list[str]:
    return [SILENCE] + ([UNKNOWN] if with_unknown else []) + list(words)


@dataclass
class Clip:
    path: Path
    label: str  # a class label: a word, UNKNOWN or SILENCE
    word: str  # the folder it came from


@dataclass
class DataSet:
    root: Path
    labels: list[str]
    splits: dict[str, list[Clip]] = field(default_factory=dict)
    noise_files: list[Path] = field(default_factory=list)

    def clips(self, split: str) -> list[Clip]:
        return self.splits.get(split, [])


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _split_rule(root: Path, validation_percentage: float, testing_percentage: float, salt: str = ""):
    val_list, test_list = root / "validation_list.txt", root / "testing_list.txt"
    if val_list.exists() and test_list.exists():
        validation, testing = _read_list(val_list), _read_list(test_list)

        def from_lists(relative: str) -> str:
            if relative in validation:
                return "validation"
            return "testing" if relative in testing else "training"

        return from_lists
    return lambda relative: which_set(relative, validation_percentage, testing_percentage, salt)


def scan(
    root: str | Path,
    words: tuple[str, ...] | None = COMMANDS,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
    split_salt: str = "",
) -> DataSet:
    """Index a Speech Commands folder. `words=None` makes every word folder a class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    word_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    available = {p.name for p in word_dirs}
    chosen = tuple(sorted(available)) if words is None else tuple(words)
    missing = [w for w in chosen if w not in available]
    if missing:
        raise DataError(f"{root}: no folder for word(s) {', '.join(missing)}")
    has_unknown = bool(available - set(chosen)) or (root / UNKNOWN_DIR).is_dir()
    dataset = DataSet(root=root, labels=labels_for(chosen, has_unknown))
    split_of = _split_rule(root, validation_percentage, testing_percentage, split_salt)
    for directory in word_dirs + [root / UNKNOWN_DIR, root / SILENCE_DIR]:
        if not directory.is_dir():
            continue
        name = directory.name
        label = name if name in chosen else SILENCE if name == SILENCE_DIR else UNKNOWN
        for wav in sorted(entry.name for entry in os.scandir(directory) if entry.name.endswith(".wav")):
            dataset.splits.setdefault(split_of(f"{name}/{wav}"), []).append(Clip(directory / wav, label, name))
    dataset.noise_files = sorted((root / NOISE_DIR).glob("*.wav")) if (root / NOISE_DIR).is_dir() else []
    if not dataset.clips("training"):
        raise DataError(f"{root}: no training clips found (is this a Speech Commands folder?)")
    return dataset


def scan_split(root: str | Path, words: tuple[str, ...] | None, split: dict) -> DataSet:
    """`scan` with the split as recorded in a bundle (`val_percent`, `test_percent`, `split_salt`)."""
    return scan(root, words, split["val_percent"], split["test_percent"], split["split_salt"])


MIN_TRAINING_CLIPS = 5  # fewer training clips than this in a class: refused
LOPSIDED = 0.1  # a class whose training share is under this fraction of what the split asks for: refused


def check_training_split(dataset: DataSet, validation_percentage: float, testing_percentage: float) -> None:
    """Refuse a split that leaves a class almost nothing to train on (a `DataError` naming
    the classes, their clips per split and the flag that fixes it): fewer than
    `MIN_TRAINING_CLIPS` training clips, or a training share under `LOPSIDED` of the one
    the percentages ask for (under 8% of its clips at the default 10/10 split). That is
    the sign of a subset whose speakers hash into one band of TensorFlow's split rule,
    like the canonical test set, where almost every clip goes to the (unused) test split.
    Silence, when it has no clips, is made of background noise and is not checked."""
    counts: dict[str, dict[str, int]] = {label: {} for label in dataset.labels}
    for split, clips in dataset.splits.items():
        for clip in clips:
            counts[clip.label][split] = counts[clip.label].get(split, 0) + 1
    wanted_share = (100.0 - validation_percentage - testing_percentage) / 100.0
    starved = []
    for label, per_split in counts.items():
        total, training = sum(per_split.values()), per_split.get("training", 0)
        enough = training >= MIN_TRAINING_CLIPS and training >= LOPSIDED * wanted_share * total
        if enough or (label == SILENCE and not total):
            continue
        starved.append(f"{label} {training} of {total} (validation {per_split.get('validation', 0)}, "
                       f"testing {per_split.get('testing', 0)})")
    if starved:
        raise DataError(f"{dataset.root}: the split leaves too few training clips (fewer than {MIN_TRAINING_CLIPS}, "
                        f"or a lopsided share) for {'; '.join(starved)}; to fix it, give --split-salt S (any text) for "
                        "a subset of the canonical test set, lower --val-percent/--test-percent, or leave words with few "
                        "clips out of --words")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def centred(sound: np.ndarray) -> np.ndarray:
    """`sound` in the middle of a 1-s clip (cut to 1 s first)."""
    sound = sound[:CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    start = (CLIP_SAMPLES - len(sound)) // 2
    clip[start: start + len(sound)] = sound
    return clip


def write_clip(audio: np.ndarray, out: Path) -> None:
    """A 16-bit 16 kHz WAV, there whole or not at all (written aside, then renamed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # not a .wav: a leftover is never read as a clip
    sf.write(partial, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(partial, out)


def word_span(audio: np.ndarray, frame: int = 160, below_peak_db: float = 25.0) -> tuple[int, int]:
    """(start, end) sample of the loud part of a clip: frames within `below_peak_db` of the loudest."""
    n = len(audio) // frame
    if n == 0:
        return 0, len(audio)
    energy = (audio[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    active = np.flatnonzero(level > level.max() - below_peak_db)
    return int(active[0] * frame), int((active[-1] + 1) * frame)


@dataclass
class LoadedClips:
    """Clips as int16, a row each, with labels and word spans.

    `pcm` is the storage: an in-memory (n, 16000) int16 array, or a whole cache
    (`training.cache.ClipStore`) with `rows` the cache row of each clip. Training reads
    clips one at a time as float32 (`clip`), so no float32 copy of the set is ever made;
    `audio` is that copy, for the tools that work on a validation set at once.
    """

    pcm: np.ndarray  # int16 rows
    labels: np.ndarray  # class index per clip
    spans: np.ndarray  # (n, 2) start/end sample of the spoken word
    paths: list[Path]
    rows: np.ndarray | None = None  # row of `pcm` per clip (None: row i is clip i)
    store: object | None = None  # the ClipStore `pcm` belongs to, if any

    def __len__(self) -> int:
        return len(self.labels)

    def clip(self, i: int) -> np.ndarray:
        """Clip `i` as float32 in [-1, 1) (16000 samples)."""
        from training.cache import to_float

        row = int(i if self.rows is None else self.rows[i])
        return to_float(self.store.read(row) if self.store is not None else self.pcm[row])

    @functools.cached_property
    def audio(self) -> np.ndarray:
        """Every clip as one (n, 16000) float32 array, made once on first use (4 bytes a
        sample: for validation sets; training uses `clip`)."""
        out = np.empty((len(self), CLIP_SAMPLES), np.float32)
        for i in range(len(self)):
            out[i] = self.clip(i)
        return out


def load_clips(clips: list[Clip], labels: list[str], store=None, progress=None) -> LoadedClips:
    """The clips with their labels: rows of the cache `store` (a `training.cache.ClipStore`
    holding them), else decoded now in parallel into one int16 array."""
    from training.cache import decode_in_memory

    index = {label: i for i, label in enumerate(labels)}
    class_of = np.array([index[c.label] for c in clips], dtype=np.int64)
    paths = [c.path for c in clips]
    if store is not None:
        rows = store.rows(paths)
        return LoadedClips(store.pcm, class_of, np.asarray(store.spans[rows], np.int64).reshape(-1, 2), paths,
                           rows=rows, store=store)
    pcm, spans = decode_in_memory(paths, progress)
    return LoadedClips(pcm, class_of, spans, paths)


class MergedClips(LoadedClips):
    """Clips from several folders, each read through its own cache: one set to the
    sequence maker, with no copy of the audio (clip `i` is read from its own part)."""

    def __init__(self, parts: list[LoadedClips]):
        super().__init__(pcm=np.zeros((0, CLIP_SAMPLES), np.int16), labels=np.concatenate([p.labels for p in parts]),
                         spans=np.concatenate([p.spans for p in parts]), paths=[x for p in parts for x in p.paths])
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def clip(self, i: int) -> np.ndarray:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[part].clip(i - int(self.starts[part]))


def merge_clips(parts: list[LoadedClips]) -> LoadedClips:
    """Clips from several folders as one set (the one part itself when there is one)."""
    return parts[0] if len(parts) == 1 else MergedClips(parts)


TEST_LIST = "testing_list.txt"
TEST_SEED = 0  # the canonical test set's subsample and silence: the same for every run
TEST_SILENCE_DBFS = (-55.0, -25.0)  # level of the silence clips made of background noise


def has_test_list(dataset: DataSet) -> bool:
    """Whether the data set carries its canonical split (`testing_list.txt` and `validation_list.txt`)."""
    return (dataset.root / TEST_LIST).is_file() and (dataset.root / "validation_list.txt").is_file()


@dataclass
class TestSplit:
    """The canonical test split as published results score it.

    12-class task (ten commands, unknown, silence; any task with an unknown class): every
    command clip of `testing_list.txt`; its unknown-word clips subsampled to the mean
    command count; as many silence clips (the list's own `_silence_` clips if it has any,
    else one-second cuts of background noise, made by `silence_clips`). Every class then
    weighs about the same, as in the released test set (about 400 clips a class for
    v0.02). 35-class task (`--words all`, no unknown class): every clip of the list.
    """

    clips: list[Clip]
    silence: int  # silence clips still to be made from background noise
    unknown_listed: int  # unknown-word clips in the list, before subsampling
    classes: int  # classes scored


def canonical_test_split(dataset: DataSet, seed: int = TEST_SEED) -> TestSplit:
    listed = dataset.clips("testing")
    rng = np.random.default_rng(seed)
    words = [c for c in listed if c.label not in (SILENCE, UNKNOWN)]
    unknown = [c for c in listed if c.label == UNKNOWN]
    silence = [c for c in listed if c.label == SILENCE]
    per_word: dict[str, int] = {}
    for clip in words:
        per_word[clip.label] = per_word.get(clip.label, 0) + 1
    target = int(round(np.mean(list(per_word.values())))) if per_word else 0
    chosen = list(words)
    if UNKNOWN in dataset.labels and unknown:
        picked = sorted(rng.choice(len(unknown), min(target, len(unknown)), replace=False))
        chosen += [unknown[i] for i in picked]
    made = 0
    if silence:
        chosen += silence
    elif UNKNOWN in dataset.labels and target:
        made = target
    classes = len({c.label for c in chosen} | ({SILENCE} if made else set()))
    return TestSplit(chosen, made, len(unknown), classes)


def silence_clips(noise: list[np.ndarray], n: int, seed: int = TEST_SEED) -> list[np.ndarray]:
    """`n` one-second cuts of the (unit-RMS) noise recordings at a level drawn from
    `TEST_SILENCE_DBFS`: the silence class of a test split that has no silence clips."""
    if not noise or not n:
        return [np.zeros(CLIP_SAMPLES, np.float32) for _ in range(n)]
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(n):
        source = noise[rng.integers(len(noise))]
        if len(source) < CLIP_SAMPLES:
            source = np.tile(source, CLIP_SAMPLES // len(source) + 1)
        start = int(rng.integers(0, len(source) - CLIP_SAMPLES + 1))
        level = 10 ** (rng.uniform(*TEST_SILENCE_DBFS) / 20)
        out.append((level * source[start : start + CLIP_SAMPLES]).astype(np.float32))
    return out


def load_noise(files: list[Path], part: str, held_out: float = 0.15) -> list[np.ndarray]:
    """Each noise recording normalised to unit RMS, cut in time: the first part for
    training, the last `held_out` fraction for validation, so that validation never
    hears the training noise."""
    pieces = []
    for path in files:
        audio = load_audio(path)
        cut = int(len(audio) * (1 - held_out))
        piece = audio[:cut] if part == "training" else audio[cut:]
        rms = float(np.sqrt(np.mean(piece**2))) or 1.0
        pieces.append((piece / rms).astype(np.float32))
    return pieces


def balanced_indices(labels: np.ndarray, label_names: list[str], rng: np.random.Generator,
                     unknown_ratio: float = 1.0) -> np.ndarray:
    """All command clips; unknown clips subsampled (or repeated) to `unknown_ratio` times
    the mean command count and silence to the mean command count, so that no class
    dominates an epoch by accident. Without silence clips, silence gets empty slots (-1)
    that hold only background noise."""
    commands = [i for i, name in enumerate(label_names) if name not in (SILENCE, UNKNOWN)]
    counts = [int(np.sum(labels == i)) for i in commands]
    target = int(np.mean(counts)) if counts else len(labels)
    chosen = [np.flatnonzero(labels == i) for i in commands]
    for name in (UNKNOWN, SILENCE):
        if name in label_names:
            pool = np.flatnonzero(labels == label_names.index(name))
            size = int(round(target * unknown_ratio)) if name == UNKNOWN else target
            if len(pool):
                chosen.append(rng.choice(pool, size=size, replace=len(pool) < size))
            elif name == SILENCE:
                chosen.append(np.full(target, -1))  # empty slots: background noise only
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
