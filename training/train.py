"""Train a GRU or LSTM command recogniser and write a model bundle.

    kws-train --data DIR --arch gru --out assets/gru

Trains on multi-second sequences with per-frame targets (see training/sequences.py)
so the model survives an endless stream with its state never reset. Validates
every epoch on the clip accuracy of held-out speakers, keeps the best weights,
stops early, and resumes an interrupted run from `<out>.work/`.

The clips are decoded once into an int16 cache (training/cache.py; `--cache`) that
later runs and resumes reuse, and made into float32 sequences batch by batch. Where
the data set has its `testing_list.txt`, the run ends by scoring the canonical test
split (see training.data.canonical_test_split) into bundle.json and the final line.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import resource
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws import interrupt
from kws.bundle import Bundle, load_bundle
from kws.detector import DetectorConfig
from kws.errors import KwsError, non_negative_float, non_negative_int, positive_float, positive_int, stderr_discarded
from kws.frontend import Mfcc, MfccConfig
from kws.labels import SILENCE
from training.cache import LoadDisplay, describe, is_off, open_cache
from training.augment import Channel
from training.data import (COMMANDS, TEST_LIST, DataError, DataSet, LoadedClips, balanced_indices, canonical_test_split,
                           check_training_split, extra_training_clips, has_test_list, load_clips, load_noise, merge_clips,
                           scan_split, silence_clips, speaker_of, speech_training_clips)
from training.make_stream import build_stream
from training.options import (TRAIN_SPLIT, add_split_arguments, chosen_split, fraction, given_split, make_parser, run_main,
                              share)
from training.progress import TrainingDisplay
from training.sequences import AugmentConfig, SequenceMaker

# TensorFlow and Keras are imported only once a run starts (`import_quietly`), so that
# `kws-train --help` and the data checks work without them (they are the `kws[train]` extra).
TENSORFLOW_MISSING = "training needs TensorFlow: pip install 'kws[train]'"
MONITORS = {"clip": "val_clip_accuracy", "stream": "val_stream_score", "both": "val_clip_plus_stream",
            "world": "val_world_score"}
HEARD_CONDITIONS = ("reverberant", "narrow-band")  # training.robustness's conditions, heard by --monitor world
MONITOR_ROOM_SEED = 1_000_003  # rooms other than the robustness table's (its --seed, 0 by default)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("kws-train", __doc__)
    parser.add_argument("--data", required=True, help="Speech Commands folder (or your own words, one folder each)")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--arch", choices=("gru", "lstm"), default="gru", help="recurrent layer type")
    parser.add_argument("--units", type=positive_int, default=128, help="units per recurrent layer")
    parser.add_argument("--layers", type=positive_int, default=2, help="recurrent layers")
    parser.add_argument("--dropout", type=fraction, default=0.1, help="dropout after each recurrent layer, in [0, 1)")
    parser.add_argument("--words", default=",".join(COMMANDS), help="comma-separated words, or 'all' for every folder")
    parser.add_argument("--epochs", type=positive_int, default=60, help="most epochs to train")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="sequences per training step")
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate (cosine decay)")
    parser.add_argument("--warmup-epochs", type=non_negative_float, default=0.0,
                        help="rise linearly to --lr over this many epochs first (fine-tuning: avoids a shock "
                        "to the initial weights while the optimizer's moments are still empty)")
    parser.add_argument("--monitor", choices=tuple(MONITORS), default="clip",
                        help="keep the epoch with the best validation clip accuracy ('clip'), the best score on a "
                        "validation stream, (hits - wrong - false alarms) / commands ('stream'), or the best sum "
                        "of the two ('both'; for fine-tuning on streams); 'world': the mean clip accuracy clean, "
                        "reverberant and narrow-band (training.robustness's conditions, other rooms) plus the stream "
                        "score (for training with --channel)")
    parser.add_argument("--patience", type=positive_int, default=15, help="epochs without improvement before stopping")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the weights, the augmentation and --max-clips")
    add_split_arguments(parser, TRAIN_SPLIT)
    parser.add_argument("--seq-seconds", type=positive_float, default=AugmentConfig.seq_seconds,
                        help="length of a training sequence")
    parser.add_argument("--speed", type=fraction, default=0.1, help="speed perturbation: clips resampled by up to ±this")
    parser.add_argument("--single-clip-share", type=share, default=0.0,
                        help="share of training sequences that hold a single clip (then background only)")
    parser.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                        help="another folder in the Speech Commands layout (e.g. training.synth's synthetic speech, "
                        "training.negatives' negatives) whose clips join training, but for those of the data set's "
                        "validation and test speakers; repeatable")
    parser.add_argument("--extra-unknown-only", action="store_true",
                        help="take only the non-command words of the --extra-data folders (measured on real speakers: "
                        "synthetic commands cost accuracy; README, 'Outside the data set')")
    parser.add_argument("--speech", metavar="DIR",
                        help="a folder of non-command speech (WORD_SPEAKER_INDEX.wav, e.g. "
                        "../shared/data/spoken_digits/recordings): its detector-tuning half of speakers joins training "
                        "as unknown; the other half stays unheard for training.robustness")
    parser.add_argument("--unknown-ratio", type=positive_float, default=1.0,
                        help="unknown-word clips per epoch, as a multiple of the mean command's clips")
    parser.add_argument("--unknown-while-spoken", action="store_true",
                        help="unknown words have `unknown` targets while they are spoken too (not only after): no "
                        "command guesses in the middle of a non-command word")
    parser.add_argument("--channel", action="store_true",
                        help="rooms and microphones on the training audio (training/augment.py: reverberation, "
                        "narrow band, EQ, high-pass, wide gain)")
    parser.add_argument("--stream-minutes", type=positive_float, default=15.0, help="length of the validation stream")
    parser.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                        help="tf.distribute strategy; 'mirrored' spreads each batch over the GPUs (or the --cpu-devices)")
    parser.add_argument("--cpu-devices", type=non_negative_int, default=0,
                        help="split the CPU into N logical devices (0 or 1: one)")
    parser.add_argument("--init", help="start from this bundle's weights and feature statistics (fine-tuning)")
    parser.add_argument("--repeat", type=positive_int, default=1,
                        help="passes over the training clips per epoch (small data sets)")
    parser.add_argument("--max-clips", type=non_negative_int, default=0, help="use at most N training clips (0: all)")
    parser.add_argument("--cache", metavar="DIR",
                        help="where the decoded clips are kept (int16, memory-mapped, one folder per data folder, "
                        "rebuilt when the data change, reused by later runs and resumes); default $KWS_CACHE, else "
                        "~/.cache/kws/clips; 'off': decode into memory every run and write nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress display: only the final line")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.extra_unknown_only and not args.extra_data:
        parser.error("--extra-unknown-only takes words from --extra-data folders: give one")
    return args


def require_tensorflow() -> None:
    """Refuse a run at once, in one line, where TensorFlow or Keras is not installed."""
    for name in ("tensorflow", "keras"):
        if importlib.util.find_spec(name) is None:
            raise KwsError(TENSORFLOW_MISSING)


def import_quietly(name: str):
    """Import `tensorflow` or `keras` without TensorFlow's start-up noise on the terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with stderr_discarded():
            module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name in ("tensorflow", "keras"):
            raise KwsError(TENSORFLOW_MISSING) from None
        raise
    if name == "tensorflow":
        module.get_logger().setLevel("ERROR")
    return module


def configure_devices(n_cpu_devices: int) -> None:
    import tensorflow as tf

    if n_cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n_cpu_devices)


def make_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


STATS_SEQUENCES = 512  # feature statistics from at most this many training sequences (~200k frames)


def feature_stats(maker: SequenceMaker, slots: np.ndarray, seed: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and variance over augmented training sequences (at most
    `STATS_SEQUENCES`), accumulated batch by batch in float64."""
    rng = np.random.default_rng([seed, 999_999])
    plan = maker.plan(slots, rng)[:STATS_SEQUENCES]
    total = total_sq = None
    count = 0
    for first in range(0, len(plan), batch):
        x, _, _ = maker.batch(plan, range(first, min(first + batch, len(plan))), [seed, 999_999])
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        total = flat.sum(axis=0) if total is None else total + flat.sum(axis=0)
        total_sq = (flat**2).sum(axis=0) if total_sq is None else total_sq + (flat**2).sum(axis=0)
        count += len(flat)
    mean = total / count
    return mean, np.maximum(total_sq / count - mean**2, 0.0) + 1e-6


class ResumeError(KwsError):
    """A work folder left by an interrupted run with other settings than this one."""


# The settings a resumed run must share with the interrupted one: the checkpoint fixes the
# network (arch, units, layers, dropout, words); the best epoch so far was chosen by --monitor
# on the validation speakers of the split and the validation stream (--stream-minutes); and
# the epochs done were drawn from the data and the seed given (--data, --seed, --init, the
# extra data and the unknown words' settings, --channel). The optimiser's schedule is in the
# checkpoint: a resume carries on with the interrupted run's --lr and --epochs.
RESUME_SETTINGS = ("monitor", "arch", "units", "layers", "dropout", "words", "val_percent", "test_percent", "split_salt",
                   "data", "seed", "init", "extra_data", "extra_unknown_only", "speech", "unknown_ratio",
                   "unknown_while_spoken", "channel", "stream_minutes")


def run_settings(args: argparse.Namespace) -> dict:
    """The settings of `args` that a resume must keep (`RESUME_SETTINGS`), as given."""
    return {key: getattr(args, key) for key in RESUME_SETTINGS}


def resume_conflicts(recorded: dict, settings: dict) -> list[str]:
    """`--flag recorded (this run: value)` for each setting that differs."""
    def shown(value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, list):
            return " ".join(map(str, value)) or "none"
        return "none" if value is None else str(value)

    return [f"--{key.replace('_', '-')} {shown(recorded[key])} (this run: {shown(settings[key])})"
            for key in RESUME_SETTINGS if key in recorded and key in settings and recorded[key] != settings[key]]


class Progress:
    """The state of a run, written atomically after each epoch: epochs done, the score
    history, the best epoch, the files to resume from and the run's settings
    (`RESUME_SETTINGS`). It is the single source of truth for resuming: files it does
    not name are leftovers of an interrupted epoch. A run with other settings than the
    recorded ones is refused (`ResumeError`) rather than mixed into the interrupted one."""

    def __init__(self, work: Path, monitor: str = "val_clip_accuracy", settings: dict | None = None):
        self.work, self.path, self.monitor = work, work / "progress.json", monitor
        empty = {"epochs_done": 0, "best": None, "history": [], "checkpoint": None, "settings": settings or {}}
        self.state = json.loads(self.path.read_text()) if self.path.exists() else empty
        conflicts = resume_conflicts(self.state.get("settings") or {}, settings or {})
        best = self.state["best"]
        if not conflicts and best is not None and monitor not in best:  # a work folder without recorded settings
            chosen = [name for name, key in MONITORS.items() if key == monitor]
            conflicts = [f"--monitor other than {chosen[0] if chosen else monitor}"]
        if conflicts:
            raise ResumeError(f"{work}/ holds an interrupted run with {', '.join(conflicts)}: give the same settings "
                              f"to resume it, or delete {work}/ to start afresh")

    def is_best(self, logs: dict) -> bool:
        best = self.state["best"]
        return best is None or logs[self.monitor] > best[self.monitor]

    def record(self, epoch: int, logs: dict, checkpoint: str, best_weights: str | None) -> None:
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        self.state["history"] = [h for h in self.state["history"] if h["epoch"] <= epoch] + [entry]
        self.state["epochs_done"] = epoch + 1
        self.state["checkpoint"] = checkpoint
        if best_weights:
            self.state["best"] = {**entry, "weights": best_weights}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path)
        keep = {self.path.name, checkpoint, self.state["best"]["weights"]}
        for leftover in self.work.iterdir():
            if leftover.name not in keep:
                leftover.unlink()


def build_callbacks(work: Path, progress: Progress, evaluator, val_features, val_labels, patience: int,
                    display: TrainingDisplay, val_stream=None, val_heard: dict | None = None):
    """`evaluator`: the same network built outside any distribution strategy; the trained
    weights are copied into it each epoch, so validation never depends on the strategy.
    `display`: told of each epoch's start, each batch and each epoch's figures.
    `val_stream`: (features, truth, audio_s, labels) of a validation stream, scored each epoch.
    `val_heard`: {condition: features} of the validation clips under other listening
    conditions, scored each epoch (--monitor world)."""
    import keras

    from kws.engine import RecurrentNet
    from kws.models import network_of

    class Validation(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            display.epoch_started(epoch)

        def on_train_batch_end(self, batch, logs=None):
            if interrupt.requested():
                self.model.stop_training = True
            else:
                display.batch_done(batch, (logs or {}).get("loss"))

        def on_epoch_end(self, epoch, logs=None):
            if interrupt.requested():
                return  # a partial epoch: not recorded; a resumed run repeats it
            evaluator.set_weights(self.model.get_weights())
            net = RecurrentNet(network_of(evaluator))  # validated on the runtime's own engine
            logs.update(validation_scores(net, val_features, val_labels, val_stream, val_heard))
            checkpoint = f"resume-{epoch + 1:04d}.keras"
            self.model.save(work / checkpoint)  # weights and optimizer state
            best_weights = None
            if progress.is_best(logs):
                best_weights = f"best-{epoch + 1:04d}.weights.h5"
                evaluator.save_weights(work / best_weights)
            progress.record(epoch, logs, checkpoint, best_weights)
            best = progress.state["best"]
            display.epoch_done(epoch, logs, best)
            if epoch + 1 - best["epoch"] >= patience:
                display.note(f"early stop: no improvement for {patience} epochs")
                self.model.stop_training = True

    return [Validation()]


def validation_scores(net, val_features, val_labels, val_stream=None, val_heard: dict | None = None) -> dict:
    """What every --monitor chooses from (MONITORS): clip accuracy; with a validation stream,
    its score and their sum; with `val_heard`, each condition's clip accuracy and the world
    score (the mean clip accuracy over clean and those conditions, plus the stream score)."""
    scores = {"val_clip_accuracy": clip_accuracy(net, val_features, val_labels)}
    if val_stream is not None:
        scores["val_stream_score"] = stream_score(net, *val_stream)
        scores["val_clip_plus_stream"] = scores["val_clip_accuracy"] + scores["val_stream_score"]
    if val_heard and val_stream is not None:
        heard = [clip_accuracy(net, features, val_labels) for features in val_heard.values()]
        scores.update({f"val_clip_accuracy_{name}": a for name, a in zip(val_heard, heard)})
        scores["val_world_score"] = float(np.mean([scores["val_clip_accuracy"], *heard])) + scores["val_stream_score"]
    return scores


def clip_accuracy(net, features: list[np.ndarray], labels: np.ndarray) -> float:
    from kws.recognizer import clip_posteriors

    return float(np.mean(clip_posteriors(net, features).argmax(axis=1) == labels))


def stream_score(net, features, truth, audio_s, labels) -> float:
    """(hits - wrong - false alarms) / commands on a validation stream, state never reset."""
    from kws.detector import Detector
    from kws.recognizer import sequence_posteriors
    from kws.scoring import score_stream

    s = score_stream(Detector(labels, DetectorConfig()).run(sequence_posteriors(net, features)), truth, audio_s)
    return (s.hits - s.wrong - s.false_alarms) / max(1, s.commands)


def make_dataset(maker: SequenceMaker, train_labels, label_names, batch_size: int, seed: int, first_epoch: int,
                 repeat: int = 1, unknown_ratio: float = 1.0):
    import keras

    class EpochSequences(keras.utils.PyDataset):
        """Fresh augmentation every epoch, seeded by (seed, epoch) so runs repeat. The epoch
        is planned up front (which clips go where: no audio) and each batch's audio and
        features made when Keras asks for it: memory holds one batch, not the epoch."""

        def __init__(self):
            super().__init__()
            self.epoch = first_epoch
            self._plan()
            self.n_batches = max(1, len(self.plan) // batch_size)

        def _plan(self):
            rng = np.random.default_rng([seed, self.epoch])
            slots = np.concatenate([balanced_indices(train_labels, label_names, rng, unknown_ratio)
                                    for _ in range(repeat)])
            self.plan = maker.plan(slots, rng)

        def __len__(self):
            return self.n_batches

        def __getitem__(self, i):
            which = np.arange(i * batch_size, (i + 1) * batch_size) % len(self.plan)
            return maker.batch(self.plan, which, [seed, self.epoch], augment=True)

        def on_epoch_end(self):
            self.epoch += 1
            self._plan()

    return EpochSequences()


def stream_figures(net, labels, clips, noise, minutes: float, seed: int, mfcc: Mfcc) -> dict:
    """Run the model over a long validation stream, never resetting its state."""
    from kws.detector import Detector
    from kws.recognizer import sequence_posteriors
    from kws.scoring import score_stream

    audio, truth = build_stream(clips, labels, noise, minutes * 60, np.random.default_rng(seed))
    posteriors = sequence_posteriors(net, mfcc(audio))
    config = DetectorConfig()
    detections = Detector(labels, config).run(posteriors)
    score = score_stream(detections, truth, len(audio) / mfcc.config.sample_rate)
    return {"stream_minutes": minutes, "detector": config.to_dict(), **score.to_dict()}


def load_initial(args: argparse.Namespace, labels: list[str]) -> Bundle:
    initial = load_bundle(args.init)
    wanted = (args.arch, args.units, args.layers, labels)
    found = (initial.arch, initial.units, initial.layers, initial.labels)
    if wanted != found:
        raise DataError(f"{args.init}: cannot start from this bundle: it is {found[:3]} with labels {found[3]}, "
                        f"this run is {wanted[:3]} with labels {wanted[3]}")
    return initial


@dataclass
class TrainingData:
    """What the data stage gives the later stages: the clips, the sequence maker, the
    feature statistics and the validation material (all without TensorFlow)."""

    dataset: DataSet
    train_clips: LoadedClips
    val_clips: LoadedClips
    mfcc: Mfcc
    augment: AugmentConfig
    maker: SequenceMaker
    mean: np.ndarray
    variance: np.ndarray
    val_features: list[np.ndarray]
    val_noise: list[np.ndarray]
    val_stream: tuple | None  # (features, truth, audio_s, labels) with --monitor stream, both or world
    initial: Bundle | None  # the --init bundle
    store: object | None = None  # the clip cache (training.cache.ClipStore), None with --cache off
    loading: dict = field(default_factory=dict)  # how the clips were loaded: seconds, cache path, built or reused
    sources: dict = field(default_factory=dict)  # the training clips each folder gave
    channel: Channel | None = None  # rooms and microphones (--channel)
    val_heard: dict = field(default_factory=dict)  # HEARD_CONDITIONS' validation features, with --monitor world

    @property
    def labels(self) -> list[str]:
        return self.dataset.labels


def prepare_data(args: argparse.Namespace) -> TrainingData:
    """Data stage: scan and split the folder, load the clips, make the sequence maker, take
    the feature statistics (from the --init bundle when fine-tuning) and the validation set."""
    words = None if args.words == "all" else tuple(w for w in args.words.split(",") if w)
    dataset = scan_split(args.data, words, chosen_split(given_split(args)))
    check_training_split(dataset, args.val_percent, args.test_percent)
    train_list = dataset.clips("training")
    if args.max_clips:
        train_list = [train_list[i] for i in np.random.default_rng(args.seed).permutation(len(train_list))[: args.max_clips]]
    started = time.monotonic()
    store, loading = load_store(args, dataset.root, all_clips(dataset))
    val_clips = load_clips(dataset.clips("validation"), dataset.labels, store)
    train_clips, sources = load_training_clips(args, dataset, train_list, store)
    loading["seconds"] = round(time.monotonic() - started, 2)
    if not len(val_clips.labels):
        raise DataError(f"{args.data}: the validation split is empty (raise --val-percent)")
    mfcc = Mfcc(MfccConfig())
    augment = AugmentConfig(seq_seconds=args.seq_seconds, single_clip_share=args.single_clip_share, speed=args.speed,
                            unknown_while_spoken=args.unknown_while_spoken)
    channel = Channel(seed=args.seed) if args.channel else None
    maker = SequenceMaker(train_clips, load_noise(dataset.noise_files, "training"), dataset.labels, mfcc, augment,
                          channel=channel)
    initial = load_initial(args, dataset.labels) if args.init else None
    if initial is not None:
        mean, variance = initial.network.mean, initial.network.variance
    else:
        stats_slots = balanced_indices(train_clips.labels, dataset.labels, np.random.default_rng(args.seed),
                                       args.unknown_ratio)
        mean, variance = feature_stats(maker, stats_slots, args.seed)
    maker.feature_fill = mean.astype(np.float32)
    val_noise = load_noise(dataset.noise_files, "validation")
    val_features, val_stream, val_heard = monitor_material(val_clips, dataset.labels, val_noise, mfcc, args.seed,
                                                           args.monitor)
    return TrainingData(dataset, train_clips, val_clips, mfcc, augment, maker, mean, variance,
                        val_features, val_noise, val_stream, initial, store, loading, sources, channel, val_heard)


def monitor_material(clips: LoadedClips, labels: list[str], noise: list[np.ndarray], mfcc: Mfcc, seed: int,
                     monitor: str) -> tuple[list[np.ndarray], tuple | None, dict]:
    """What `monitor` scores (validation_scores): the clips' features; with stream, both or
    world, the 8-min validation stream (features, truth, seconds, labels); with world, the
    clips' features under HEARD_CONDITIONS (rooms other than the robustness table's)."""
    features = [mfcc(clips.clip(i)) for i in range(len(clips))]
    stream = None
    if monitor in ("stream", "both", "world"):
        audio, truth = build_stream(clips, labels, noise, 480, np.random.default_rng([seed, 7]))
        stream = mfcc(audio), truth, len(audio) / mfcc.config.sample_rate, labels
    heard = heard_features(clips, mfcc, MONITOR_ROOM_SEED + seed) if monitor == "world" else {}
    return features, stream, heard


def heard_features(clips: LoadedClips, mfcc: Mfcc, seed: int, chunk: int = 256) -> dict[str, list[np.ndarray]]:
    """The clips' features under each of HEARD_CONDITIONS, as training.robustness makes them
    (its rooms drawn with `seed`), `chunk` clips at a time: no float32 copy of the whole set,
    and the same rooms as in one call."""
    from training.robustness import conditions

    heard, rooms = {name: [] for name in HEARD_CONDITIONS}, np.random.default_rng(seed)
    for first in range(0, len(clips), chunk):
        audio = np.stack([clips.clip(i) for i in range(first, min(first + chunk, len(clips)))])
        for name, _, condition in conditions(rooms):
            if name in heard:
                heard[name] += [mfcc(a) for a in condition(audio)]
    return heard


def all_clips(dataset: DataSet) -> list:
    return [clip for clips in dataset.splits.values() for clip in clips]


def load_training_clips(args: argparse.Namespace, dataset: DataSet, train_list: list, store):
    """The training clips of the data set, of each --extra-data folder and of the --speech
    folder's training half, as one set (each folder read through its own cache); and what
    each source gave."""
    parts = [load_clips(train_list, dataset.labels, store)]
    sources = {"data": {"folder": str(Path(args.data).resolve()), "clips": len(train_list)}}
    for folder in args.extra_data:
        if Path(folder).resolve() == dataset.root.resolve():
            raise DataError(f"--extra-data {folder}: this is the --data folder itself; its validation speakers "
                            "would be trained on")
    held_out = {speaker_of(c.path) for c in dataset.clips("validation") + dataset.clips("testing")}
    extra = [(folder, [c for c in extra_training_clips(folder, dataset.labels, args.extra_unknown_only)
                       if speaker_of(c.path) not in held_out], None) for folder in args.extra_data]
    if args.speech:
        clips, speakers = speech_training_clips(args.speech, dataset.labels)
        extra.append((args.speech, clips, speakers))
    for folder, clips, speakers in extra:
        folder_store, _ = load_store(args, Path(folder), clips)
        parts.append(load_clips(clips, dataset.labels, folder_store))
        words = sorted({c.label for c in clips})
        sources[str(Path(folder).resolve())] = {"clips": len(clips), "labels": words,
                                                **({"speakers": speakers} if speakers else {})}
    return merge_clips(parts), sources


def load_store(args: argparse.Namespace, root: Path, clips: list):
    """(the folder's clip cache, opened or built now; how it went) or (None, ...) with
    --cache off, where `load_clips` decodes what it is asked for into memory."""
    if is_off(args.cache):
        return None, {"cache": None}
    display = LoadDisplay("off" if args.quiet else None)
    with display:
        result = open_cache(root, [c.path for c in clips], args.cache, display)
    display.note(describe(result, len(result.store)))
    return result.store, {"cache": str(result.store.path), "cache_built": result.built, "clips_decoded": result.decoded}


def work_folder(out: str) -> Path:
    """Where an unfinished run keeps its checkpoints and progress (`OUT.work/`)."""
    return Path(str(out).rstrip("/") + ".work")


def prepare_model(args: argparse.Namespace, data: TrainingData, progress: Progress, steps_per_epoch: int):
    """Model stage: (model, inference, strategy). The model to fit is resumed from the work
    folder's checkpoint, or built (with the --init bundle's weights when fine-tuning) and
    compiled, inside the strategy; `inference` is the same network without dropout, outside
    any strategy, for validation and the bundle."""
    import keras

    from kws.models import build_model, load_keras_model

    strategy = make_strategy(args.strategy)
    shape = (args.arch, data.mfcc.config.n_mfcc, len(data.labels), args.units, args.layers)
    with strategy.scope():
        if progress.state["checkpoint"]:
            model = keras.saving.load_model(progress.work / progress.state["checkpoint"])
        else:
            model = build_model(*shape, args.dropout, data.mean, data.variance)
            if data.initial is not None:
                model.set_weights(load_keras_model(args.init).get_weights())
            warmup = int(args.warmup_epochs * steps_per_epoch)
            schedule = keras.optimizers.schedules.CosineDecay(
                args.lr / 100 if warmup else args.lr, decay_steps=args.epochs * steps_per_epoch - warmup, alpha=0.02,
                warmup_target=args.lr if warmup else None, warmup_steps=warmup)
            model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0), loss="sparse_categorical_crossentropy")
    inference = build_model(*shape, 0.0, data.mean, data.variance)
    return model, inference, strategy


def fit(args: argparse.Namespace, data: TrainingData, batches, model, inference, progress: Progress,
        display: TrainingDisplay | None = None) -> float:
    """Fit stage: Keras fit from the epoch the work folder reached, validating, checkpointing
    and stopping early after each epoch, shown on our own display (Keras's bar is off); the
    seconds it took. Ctrl-C: KeyboardInterrupt, once the display is taken down and the
    input pipeline finalized."""
    first_epoch = progress.state["epochs_done"]
    display = display or TrainingDisplay(args.epochs, first_epoch, len(batches), progress.monitor,
                                         mode="off" if args.quiet else None)
    callbacks = build_callbacks(progress.work, progress, inference, data.val_features, data.val_clips.labels,
                                args.patience, display, data.val_stream, data.val_heard)
    fit_started = time.time()
    with display:
        model.fit(batches, epochs=args.epochs, initial_epoch=first_epoch, callbacks=callbacks, verbose=0)
    if interrupt.requested():
        # A generator stopped mid-epoch is finalized by TensorFlow when collected; left to the
        # interpreter's exit, that warns "Error occurred when finalizing GeneratorDataset iterator".
        gc.collect()
        raise KeyboardInterrupt
    return time.time() - fit_started


def record(args: argparse.Namespace, data: TrainingData, inference, progress: Progress, replicas: int,
           fit_seconds: float, started: float) -> dict:
    """Record stage: score the best epoch's weights on the validation clips and stream, write
    the bundle with the run's metadata, and remove the work folder."""
    from kws.bundle import save_bundle
    from kws.engine import RecurrentNet
    from kws.models import network_of

    inference.load_weights(progress.work / progress.state["best"]["weights"])
    net = RecurrentNet(network_of(inference))
    accuracy = clip_accuracy(net, data.val_features, data.val_clips.labels)
    stream = stream_figures(net, data.labels, data.val_clips, data.val_noise, args.stream_minutes, args.seed, data.mfcc)
    test = test_figures(net, data) if has_test_list(data.dataset) else None
    best = progress.state["best"]
    initial = data.initial
    metadata = {
        "command": "kws-train " + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
        "data": str(Path(args.data).resolve()),
        "words": list(data.labels),
        "train_clips": len(data.train_clips.labels),
        "sources": data.sources,
        "val_clips": len(data.val_clips.labels),
        "val_percent": args.val_percent,
        "split_salt": args.split_salt,
        "test_percent": args.test_percent,
        "epochs_run": progress.state["epochs_done"],
        "best_epoch": best["epoch"],
        "val_clip_accuracy": accuracy,
        "test": test,
        "stream": stream,
        "seed": args.seed,
        "init_from": None if initial is None else {"path": str(args.init), **{k: initial.metadata.get(k) for k in (
            "command", "epochs_run", "best_epoch", "val_clip_accuracy", "fit_seconds", "augment", "history", "sources",
            "init_from")}},
        "strategy": args.strategy,
        "replicas": replicas,
        "augment": data.augment.to_dict(),
        "channel": None if data.channel is None else data.channel.config.to_dict(),
        "unknown_ratio": args.unknown_ratio,
        "hyperparameters": {k: getattr(args, k) for k in ("units", "layers", "dropout", "batch_size", "lr", "warmup_epochs",
                                                            "epochs", "patience", "repeat")},
        "monitor": progress.monitor,
        "fit_seconds": round(fit_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loading": data.loading,
        "seconds_per_epoch": round(fit_seconds / max(1, progress.state["epochs_done"]), 2),
        "wall_seconds": round(time.time() - started, 1),
        "history": progress.state["history"],
        "machine": machine_description(),
    }
    bundle = Bundle(data.labels, data.mfcc.config, args.arch, args.units, args.layers, metadata=metadata)
    save_bundle(bundle, inference, args.out)
    shutil.rmtree(progress.work)
    return metadata


def test_figures(net, data: TrainingData) -> dict:
    """Accuracy of `net` on the data set's canonical test split (`testing_list.txt`),
    composed as published results score it (training.data.canonical_test_split)."""
    from kws.recognizer import clip_posteriors

    split = canonical_test_split(data.dataset)
    clips = load_clips(split.clips, data.labels, data.store)
    features = [data.mfcc(clips.clip(i)) for i in range(len(clips))]
    features += [data.mfcc(a) for a in silence_clips(data.val_noise, split.silence)]
    truth = np.concatenate([clips.labels, np.full(split.silence, data.labels.index(SILENCE), np.int64)])
    accuracy = float(np.mean(clip_posteriors(net, features).argmax(axis=1) == truth)) if len(truth) else 0.0
    return {"split": TEST_LIST, "classes": split.classes, "clips": int(len(truth)), "accuracy": round(accuracy, 4),
            "unknown_listed": split.unknown_listed, "silence_made_from_noise": split.silence}


def train(args: argparse.Namespace) -> dict:
    """The four stages: data, model, fit, record. Resumes from `OUT.work/` when it exists."""
    require_tensorflow()
    started = time.time()
    work = work_folder(args.out)
    progress = Progress(work, MONITORS[args.monitor], run_settings(args))  # a resume's settings checked first
    data = prepare_data(args)
    import_quietly("tensorflow")
    configure_devices(args.cpu_devices)
    keras = import_quietly("keras")
    keras.utils.set_random_seed(args.seed)

    work.mkdir(parents=True, exist_ok=True)
    if progress.state["epochs_done"]:
        print(f"resuming from {work} after epoch {progress.state['epochs_done']}")
    batches = make_dataset(data.maker, data.train_clips.labels, data.labels, args.batch_size, args.seed,
                           progress.state["epochs_done"], args.repeat, args.unknown_ratio)
    model, inference, strategy = prepare_model(args, data, progress, len(batches))
    fit_seconds = fit(args, data, batches, model, inference, progress)
    return record(args, data, inference, progress, int(strategy.num_replicas_in_sync), fit_seconds, started)


def machine_description() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def test_text(test: dict | None) -> str:
    """`; test accuracy 0.9712 (12-class, 4890 clips of testing_list.txt)`, or nothing."""
    if not test:
        return ""
    return f"; test accuracy {test['accuracy']:.4f} ({test['classes']}-class, {test['clips']} clips of {test['split']})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv
    interrupt.install()

    def run() -> int:
        metadata = train(args)
        stream = metadata["stream"]
        print(
            f"wrote {args.out}: val clip accuracy {metadata['val_clip_accuracy']:.4f} "
            f"(best epoch {metadata['best_epoch']} of {metadata['epochs_run']}"
            f"{', stopped early' if metadata['epochs_run'] < args.epochs else ''}); "
            f"stream hits {stream['hits']}/{stream['commands']}, false alarms/h {stream['false_alarms_per_hour']}"
            + test_text(metadata.get("test"))
        )
        return 0

    return run_main(run, f"interrupted: run the same command again to resume from {work_folder(args.out)}")


if __name__ == "__main__":
    sys.exit(main())
