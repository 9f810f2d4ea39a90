"""Tune a bundle's detector to a false-alarm budget, and store its curve in the bundle.

    python -m training.tune_detector --model assets/gru --data DIR [--speech DIR] [--target-false-alarms-per-hour 10] [--plot det.png]

Two streams of the validation speakers of the data split recorded in the bundle (speakers
the model never heard in training), each run through the model once, state never reset:
  - a command stream of their commands and some unknown words (training.make_stream),
    for the miss rate: commands not detected as themselves (missed, or taken for another);
  - a non-command stream, for the false alarms per hour: their unknown words and, with
    --speech, recordings of other non-command speech (files WORD_SPEAKER_INDEX.wav, such
    as the Free Spoken Digit Dataset) of half of its speakers, each once, laid end to end
    with gaps as training.robustness lays out the other half to measure on; every
    detection there is a false alarm.
Every setting of the detector (threshold 0.20-0.995; averaging window, minimum time above
threshold, suppression time) is scored on both. For each combination of the other
settings, the threshold sweep gives a curve of misses against false alarms, kept where no
other threshold beats it (so false alarms fall and misses rise as the threshold rises).
The chosen setting has the lowest miss rate at no more than --target-false-alarms-per-hour
(if none gets there, the fewest false alarms); it is written to the bundle's bundle.json
with its curve (`detector.curve`), from which `kws stream|listen|evaluate
--false-alarms-per-hour N` picks another point. The chosen setting is scored again on a
second pair of streams (another seed: other order, gaps and noise). --plot draws the
curves (miss rate against false alarms per hour, log scale), one line per --model.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.audio import AudioError, load_audio
from kws.bundle import load_bundle, update_detector
from kws.detector import Detector, DetectorConfig
from kws.engine import RecurrentNet
from kws.errors import KwsError, non_negative_float, non_negative_int, positive_float
from kws.frontend import Mfcc
from kws.labels import UNKNOWN
from kws.scoring import score_stream
from training.data import DataError, LoadedClips, speech_files, speech_halves, speech_speaker
from training.make_stream import build_stream
from training.options import add_split_arguments, given_split, make_parser, run_main, validation_set
from training.robustness import SPEECH_GAP_S, SPEECH_NOISE_DBFS, speech_stream

THRESHOLDS = (*(round(0.20 + 0.01 * i, 2) for i in range(80)), 0.995)  # 0.20, 0.21, ..., 0.99, 0.995
GRID = {
    "average_window_ms": (100.0, 200.0, 400.0),
    "min_above_ms": (0.0, 50.0, 100.0),
    "suppression_ms": (500.0, 1000.0),
}
SETTINGS = ("threshold", *GRID)
DEFAULT_TARGET = 10.0


def posteriors_of(bundle, audio: np.ndarray) -> np.ndarray:
    features = Mfcc(bundle.frontend)(audio)
    net = RecurrentNet(bundle.network)
    return net.run(features[:, None, :], net.zero_state(1))[0][:, 0]


@dataclass
class Streams:
    """The model's posteriors on a command stream (with its truth) and on a non-command stream."""

    commands: np.ndarray
    truth: list
    commands_s: float
    non_commands: np.ndarray
    non_commands_s: float


def make_streams(bundle, clips: LoadedClips, labels, noise, non_commands: list[np.ndarray], minutes: float,
                 seed: int) -> Streams:
    rate = bundle.frontend.sample_rate
    audio, truth = build_stream(clips, labels, noise, minutes * 60, np.random.default_rng(seed))
    speech = speech_stream(non_commands, noise, np.random.default_rng(seed))
    return Streams(posteriors_of(bundle, audio), truth, len(audio) / rate, posteriors_of(bundle, speech),
                   len(speech) / rate)


def score(settings: dict, labels, streams: Streams, frame_ms: float) -> dict:
    """One detector setting: score_stream's figures on the command stream, and the budget's two."""
    config = DetectorConfig(frame_ms=frame_ms, **settings)
    s = score_stream(Detector(labels, config).run(streams.commands), streams.truth, streams.commands_s)
    false_alarms = len(Detector(labels, config).run(streams.non_commands))
    per_hour = false_alarms * 3600 / streams.non_commands_s if streams.non_commands_s else 0.0
    command_stream = s.to_dict()  # its false alarms: detections with no word in reach
    command_stream["no_word"] = command_stream.pop("false_alarms")
    command_stream["no_word_per_hour"] = command_stream.pop("false_alarms_per_hour")
    return {"miss_rate": round(1 - s.hit_rate, 4) if s.commands else 0.0, "false_alarms": false_alarms,
            "false_alarms_per_hour": round(per_hour, 2), "non_command_audio_s": round(streams.non_commands_s, 1),
            **command_stream}


def point(settings: dict, scored: dict) -> dict:
    """A curve point: the detector setting and what it scored."""
    keys = ("false_alarms_per_hour", "miss_rate", "false_alarms", "hits", "commands", "wrong")
    return {**settings, **{k: scored[k] for k in keys}, "latency_ms": scored["latency_ms"]["median"]}


def monotone_curve(points: list[dict]) -> list[dict]:
    """The points of a threshold sweep that no other point beats (no other has at most as many
    false alarms and misses, and fewer of one), one per distinct result (the middle
    threshold of those giving it), kept where they follow the threshold: as it rises, false
    alarms strictly fall and misses strictly rise."""
    def beaten(p):
        return any(q["false_alarms"] <= p["false_alarms"] and q["miss_rate"] <= p["miss_rate"]
                   and (q["false_alarms"], q["miss_rate"]) != (p["false_alarms"], p["miss_rate"]) for q in points)

    best = [p for p in points if not beaten(p)]
    groups: dict[tuple, list[dict]] = {}
    for p in sorted(best, key=lambda p: p["threshold"]):
        groups.setdefault((p["false_alarms"], p["miss_rate"]), []).append(p)
    middles = sorted((g[(len(g) - 1) // 2] for g in groups.values()), key=lambda p: p["threshold"])
    curve = []
    for p in middles:
        if not curve or (p["false_alarms"] < curve[-1]["false_alarms"] and p["miss_rate"] > curve[-1]["miss_rate"]):
            curve.append(p)
    return curve


def choose(curves: list[list[dict]], target: float) -> tuple[int, dict, bool]:
    """(which curve, which point, target met): the fewest misses within the target (then the
    fewest false alarms, the shortest median latency); else the fewest false alarms."""
    def latency(p):
        return np.inf if p["latency_ms"] is None else p["latency_ms"]

    candidates = [(i, p) for i, curve in enumerate(curves) for p in curve]
    within = [(i, p) for i, p in candidates if p["false_alarms_per_hour"] <= target]
    if within:
        i, p = min(within, key=lambda c: (c[1]["miss_rate"], c[1]["false_alarms"], latency(c[1])))
        return i, p, True
    i, p = min(candidates, key=lambda c: (c[1]["false_alarms"], c[1]["miss_rate"], latency(c[1])))
    return i, p, False


def non_command_speech(folder: str) -> tuple[list[np.ndarray], dict]:
    """The recordings of the tuning half of the speakers of a non-command speech folder, at 16 kHz."""
    files = speech_files(folder)
    tuning, held_out = speech_halves(files)
    chosen = [f for f in files if speech_speaker(f) in set(tuning)]
    try:
        signals = [load_audio(f) for f in chosen]
    except AudioError as error:
        raise DataError(f"{folder}: {error}") from None
    return signals, {"folder": folder, "speakers": tuning, "held_out_speakers": held_out, "recordings": len(chosen)}


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.tune_detector", __doc__)
    parser.add_argument("--model", required=True, nargs="+", help="bundle folder(s) to tune (written back)")
    parser.add_argument("--data", required=True, help="the Speech Commands folder the model was trained on")
    parser.add_argument("--speech", help="a folder of non-command speech recordings (WORD_SPEAKER_INDEX.wav), half of "
                                         "whose speakers join the non-command stream, e.g. "
                                         "../shared/data/spoken_digits/recordings")
    parser.add_argument("--target-false-alarms-per-hour", type=non_negative_float, default=DEFAULT_TARGET,
                        help="the operating point: the fewest misses at no more than this many false alarms per hour")
    add_split_arguments(parser)
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="length of each command stream")
    parser.add_argument("--seed", type=non_negative_int, default=1,
                        help="tuning streams' seed; the check streams use seed+1")
    parser.add_argument("--plot", metavar="PNG", help="draw the curves, one line per model")
    parser.add_argument("--dry-run", action="store_true", help="measure, print and plot, but leave the bundles as they are")
    args = parser.parse_args(argv)
    return run_main(lambda: tune_all(args, argv))


def tune_all(args, argv: list[str] | None) -> int:
    if args.speech:
        speech_files(args.speech)  # a missing folder is reported before any work
    bundles = [load_bundle(m) for m in args.model]  # every bundle checked before the first is tuned
    results = [(model, tune(bundle, args, argv)) for model, bundle in zip(args.model, bundles)]
    if args.plot:
        plot_curves(results, args.plot)
        print(f"curves drawn in {args.plot}")
    return 0


def tune(bundle, args, argv: list[str] | None) -> dict:
    data, clips, noise, split = validation_set(args.data, bundle, given_split(args))
    unknown = clips.labels == data.labels.index(UNKNOWN) if UNKNOWN in data.labels else np.zeros(len(clips.labels), bool)
    non_commands, speech = list(clips.audio[unknown]), None
    if args.speech:
        recordings, speech = non_command_speech(args.speech)
        non_commands += recordings
    if not non_commands:
        raise DataError(f"{args.data}: the validation speakers have no unknown words and no --speech is given: "
                        "nothing to count false alarms on")
    frame_ms = bundle.frontend.hop_ms
    material = (bundle, clips, data.labels, noise, non_commands, args.minutes)
    tuning, check = make_streams(*material, args.seed), make_streams(*material, args.seed + 1)
    curves = []
    for values in itertools.product(*GRID.values()):
        others = dict(zip(GRID, values))
        sweep = [{"threshold": t, **others} for t in THRESHOLDS]
        curves.append(monotone_curve([point(s, score(s, data.labels, tuning, frame_ms)) for s in sweep]))
    which, chosen, met = choose(curves, args.target_false_alarms_per_hour)
    best = {k: chosen[k] for k in SETTINGS}
    target = args.target_false_alarms_per_hour
    defaults = {k: getattr(DetectorConfig(), k) for k in SETTINGS}
    detector = {**best, "curve": curves[which], "tuned": {
        "command": "python -m training.tune_detector " + " ".join(sys.argv[1:] if argv is None else argv),
        "objective": f"the lowest miss rate at <= {target:g} false alarms per hour, else the fewest false alarms",
        "miss_rate": "commands of the command stream not detected as themselves",
        "false_alarms": "detections on the non-command stream (each non-command recording once, "
                        f"{SPEECH_GAP_S[0]}-{SPEECH_GAP_S[1]} s gaps, validation noise at {SPEECH_NOISE_DBFS:g} dBFS)",
        "target_false_alarms_per_hour": target, "target_met": met,
        "split": split, "val_clips": len(clips.labels),
        "streams": {"command_minutes": args.minutes, "seed": args.seed, "check_seed": args.seed + 1,
                    "non_command_recordings": len(non_commands), "validation_unknown_words": int(unknown.sum())},
        "speech": speech,
        "tuning_stream": score(best, data.labels, tuning, frame_ms),
        "check_stream": score(best, data.labels, check, frame_ms),
        "check_stream_with_defaults": score(defaults, data.labels, check, frame_ms),
    }}
    if not args.dry_run:
        update_detector(bundle.path, detector)
    print_result(bundle, detector, written=not args.dry_run)
    return detector


def print_result(bundle, detector: dict, written: bool) -> None:
    tuned = detector["tuned"]
    target = tuned["target_false_alarms_per_hour"]
    settings = ", ".join(f"{k} {detector[k]:g}" for k in SETTINGS)
    if tuned["target_met"]:
        print(f"{bundle.path}: the fewest misses at <= {target:g} false alarms per hour: {settings}")
    else:
        print(f"{bundle.path}: no setting reaches {target:g} false alarms per hour; the fewest: {settings}")
        print(f"warning: {bundle.path}: the target of {target:g} false alarms per hour is not met", file=sys.stderr)
    for name in ("tuning_stream", "check_stream", "check_stream_with_defaults"):
        s = tuned[name]
        print(f"  {name.replace('_', ' '):>26}: miss rate {s['miss_rate']:.3f}, false alarms {s['false_alarms']} in "
              f"{s['non_command_audio_s'] / 60:.1f} min of non-command speech ({s['false_alarms_per_hour']:g}/h); "
              f"command stream: hits {s['hits']}/{s['commands']}, wrong {s['wrong']}, no word in reach {s['no_word']}")
    curve = detector["curve"]
    print(f"  curve: {len(curve)} points, from {curve[0]['false_alarms_per_hour']:g} false alarms/h at miss rate "
          f"{curve[0]['miss_rate']:.3f} to {curve[-1]['false_alarms_per_hour']:g}/h at {curve[-1]['miss_rate']:.3f}")
    print(f"  {'written to ' + str(bundle.path / 'bundle.json') if written else 'not written (--dry-run)'}")


def plot_curves(models: list[tuple[str, dict]], path: str) -> None:
    """Miss rate against false alarms per hour (log scale; none at all drawn at the left edge)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [p["false_alarms_per_hour"] for _, d in models for p in d["curve"]]
    positive = [r for r in rates if r > 0]
    floor = min(positive) / 2 if positive else 0.1
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, detector in models:
        curve = detector["curve"]
        x = [max(p["false_alarms_per_hour"], floor) for p in curve]
        line, = ax.plot(x, [p["miss_rate"] for p in curve], marker=".", label=name)
        chosen = chosen_point(detector)
        ax.plot(max(chosen["false_alarms_per_hour"], floor), chosen["miss_rate"], marker="o", markersize=9,
                fillstyle="none", color=line.get_color())
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"false alarms per hour (log; none drawn at {floor:g})")
    ax.set_ylabel("miss rate")
    ax.set_title("Detector: misses against false alarms (circle: the tuned setting)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def chosen_point(detector: dict) -> dict:
    """The curve point of the detector's own settings."""
    for p in detector["curve"]:
        if all(p[k] == detector[k] for k in SETTINGS):
            return p
    raise KwsError("the detector's settings are not on its curve")


if __name__ == "__main__":
    sys.exit(main())
