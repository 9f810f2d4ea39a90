"""Tune a bundle's detector settings on a validation stream, and store them in the bundle.

    python -m training.tune_detector --model assets/gru --data DIR

Builds a long stream from the validation speakers' clips (training.make_stream) of the
data split recorded in the bundle (the speakers the model never heard in training),
runs the model over it once without ever resetting its state, then grid-searches
the detector (threshold, averaging window, minimum time above threshold,
suppression time) for the most hits minus errors (wrong words + false alarms).
The chosen settings are scored again on a second stream (another seed: other order,
gaps and noise) and written to the bundle's bundle.json with both scores.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from kws.bundle import load_bundle, update_detector
from kws.detector import Detector, DetectorConfig
from kws.engine import RecurrentNet
from kws.errors import non_negative_int, positive_float
from kws.frontend import Mfcc
from kws.scoring import score_stream
from training.make_stream import build_stream
from training.options import add_split_arguments, given_split, make_parser, run_main, validation_set

GRID = {
    "threshold": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "average_window_ms": (100.0, 200.0, 400.0),
    "min_above_ms": (0.0, 50.0, 100.0),
    "suppression_ms": (500.0, 1000.0),
}


def stream_posteriors(bundle, clips, labels, noise, minutes: float, seed: int):
    audio, truth = build_stream(clips, labels, noise, minutes * 60, np.random.default_rng(seed))
    features = Mfcc(bundle.frontend)(audio)
    net = RecurrentNet(bundle.network)
    posteriors, _ = net.run(features[:, None, :], net.zero_state(1))
    return posteriors[:, 0], truth, len(audio) / bundle.frontend.sample_rate


def score(settings: dict, labels, posteriors, truth, audio_s, frame_ms: float):
    config = DetectorConfig(frame_ms=frame_ms, **settings)
    return score_stream(Detector(labels, config).run(posteriors), truth, audio_s)


def objective(s) -> tuple:
    latency = np.median(s.latencies_ms) if s.latencies_ms else np.inf
    return (s.hits - s.wrong - s.false_alarms, -latency)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.tune_detector", __doc__)
    parser.add_argument("--model", required=True, help="bundle folder to tune (written back)")
    parser.add_argument("--data", required=True, help="the Speech Commands folder the model was trained on")
    add_split_arguments(parser)
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="length of each stream")
    parser.add_argument("--seed", type=non_negative_int, default=1, help="tuning stream seed; the check stream uses seed+1")
    args = parser.parse_args(argv)
    return run_main(lambda: tune(args, argv))


def tune(args, argv: list[str] | None) -> int:
    bundle = load_bundle(args.model)
    data, clips, noise, split = validation_set(args.data, bundle, given_split(args))
    frame_ms = bundle.frontend.hop_ms
    tuning = stream_posteriors(bundle, clips, data.labels, noise, args.minutes, args.seed)
    check = stream_posteriors(bundle, clips, data.labels, noise, args.minutes, args.seed + 1)
    candidates = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    scored = [(objective(score(c, data.labels, *tuning, frame_ms)), i) for i, c in enumerate(candidates)]
    best = candidates[max(scored)[1]]
    tuned = score(best, data.labels, *tuning, frame_ms).to_dict()
    checked = score(best, data.labels, *check, frame_ms).to_dict()
    default = score({k: getattr(DetectorConfig(), k) for k in GRID}, data.labels, *check, frame_ms).to_dict()
    update_detector(bundle.path, {**best, "tuned": {
        "command": "python -m training.tune_detector " + " ".join(sys.argv[1:] if argv is None else argv),
        "objective": "hits - wrong - false_alarms on the tuning stream, then lower median latency",
        "split": split, "val_clips": len(clips.labels),
        "tuning_stream": tuned, "check_stream": checked, "check_stream_with_defaults": default,
    }})
    print(f"best settings: {best}")
    for name, s in (("tuning stream", tuned), ("check stream", checked), ("check stream, default settings", default)):
        print(f"{name:>32}: hits {s['hits']}/{s['commands']}, wrong {s['wrong']}, false alarms {s['false_alarms']} "
              f"({s['false_alarms_per_hour']}/h), median latency {s['latency_ms']['median']} ms")
    print(f"written to {bundle.path}/bundle.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
