"""The exported LiteRT (TFLite) models against the engine, measured in one run.

    python -m benchmarks.bench_export [--models gru lstm] [--data DIR] [--seconds 20] [--runs 5]

For each model it exports the float, dynamic-range, int8 and int16x8 variants
(training/export.py; the integer ones calibrated on the bundle's training clips) and
reports for each, beside the engine (the numba fast path on the bundle's weights):
- the file's size;
- time per 10 ms hop, streaming speech-like audio hop by hop through `Engine`
  (frontend + network + detector; the LiteRT interpreter or the numba engine as the
  network), the median of `--runs` runs taken in turns; and the network step alone
  (one interpreter call with its tensors set and read, or one numba call);
- validation clip accuracy on the speakers held out by the bundle's split, and its
  change from the engine in points;
- hits, wrong words and false alarms on the same validation stream as training.compare
  (seed 100, `--stream-minutes`, the state never reset, the bundle's detector);
- the largest posterior difference from the engine over that stream.
Without the data set (../shared/data/speech_commands by default) the integer variants
are calibrated on speech-like audio instead and only size and speed are reported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, per_hop_fast, speechlike, table
from kws.bundle import load_bundle
from kws.engine import RecurrentNet, detector_config, make_net

VARIANTS = ("none", "dynamic", "int8", "int16x8")
STREAM_SEED = 100  # training.compare's validation stream


def step_seconds(net, features: np.ndarray) -> float:
    """Seconds per call of the network on one frame of one stream (the median of 3 passes)."""
    times = []
    for _ in range(3):
        state = net.zero_state(1)
        start = time.perf_counter()
        for t in range(len(features)):
            _, state = net.run(features[t : t + 1, None, :], state)
        times.append((time.perf_counter() - start) / len(features))
    return float(np.median(times))


def quality(bundle, net, material) -> dict:
    """Validation clip accuracy, stream score and the posteriors over the stream."""
    from kws.detector import Detector
    from kws.recognizer import clip_posteriors
    from kws.scoring import score_stream

    clip_features, labels, stream_features, truth, audio_s = material
    accuracy = float(np.mean(clip_posteriors(net, clip_features).argmax(1) == labels))
    posteriors, _ = net.run(stream_features[:, None, :], net.zero_state(1))
    detections = Detector(bundle.labels, detector_config(bundle)).run(posteriors[:, 0])
    return {"accuracy": accuracy, "stream": score_stream(detections, truth, audio_s).to_dict(), "posteriors": posteriors[:, 0]}


def validation_material(bundle, data: str, minutes: float):
    from kws.frontend import Mfcc
    from training.make_stream import build_stream
    from training.options import validation_set

    dataset, val, noise, _ = validation_set(data, bundle, {})
    mfcc = Mfcc(bundle.frontend)
    audio, truth = build_stream(val, dataset.labels, noise, minutes * 60, np.random.default_rng(STREAM_SEED))
    return [mfcc(a) for a in val.audio], val.labels, mfcc(audio), truth, len(audio) / bundle.frontend.sample_rate


def measure(model: str, data: str | None, out: Path, args) -> dict:
    from training.export import export, representative_samples, training_signals

    bundle = load_bundle(model)
    if data:
        signals, calibration = training_signals(bundle, data), f"{data}: training clips of the bundle's split"
    else:
        signals, calibration = [speechlike(1.0, seed) for seed in range(200)], "speech-like audio (no data set)"
    representative = representative_samples(bundle, signals)
    paths = {}
    for variant in VARIANTS:
        paths[variant] = out / f"{Path(model).name}_{variant}.tflite"
        export(bundle, paths[variant], variant, representative if variant in ("int8", "int16x8") else None, model)
    exported = {variant: load_bundle(path) for variant, path in paths.items()}

    audio = speechlike(args.seconds, 0)
    hop = bundle.frontend.hop
    contenders = {"engine": bundle, **exported}
    runs = {name: [] for name in contenders}
    for _ in range(args.runs):  # in turns, so that every contender meets the same machine
        for name, b in contenders.items():
            runs[name].append(per_hop_fast(b, audio, hop))
    from kws.frontend import Mfcc

    step_frames = Mfcc(bundle.frontend)(audio[: 16000 * 3])
    nets = {"engine": RecurrentNet(bundle.network), **{v: make_net(b) for v, b in exported.items()}}
    steps = {name: step_seconds(net, step_frames) for name, net in nets.items()}

    rows = {}
    for name in contenders:
        rows[name] = {"kib": round((bundle.path / "model.keras" if name == "engine" else paths[name]).stat().st_size / 1024),
                      "hop_us": round(float(np.median(runs[name])) * 1e6, 1), "step_us": round(steps[name] * 1e6, 1)}
    if data:
        material = validation_material(bundle, data, args.stream_minutes)
        reference = quality(bundle, nets["engine"], material)
        for name, net in nets.items():
            q = reference if name == "engine" else quality(bundle, net, material)
            rows[name].update(accuracy=round(q["accuracy"], 4),
                              change_points=round(100 * (q["accuracy"] - reference["accuracy"]), 2),
                              hits=q["stream"]["hits"], commands=q["stream"]["commands"], wrong=q["stream"]["wrong"],
                              false_alarms=q["stream"]["false_alarms"],
                              max_posterior_difference=float(np.abs(q["posteriors"] - reference["posteriors"]).max()))
        rows["_material"] = {"val_clips": len(material[1]), "stream_s": round(material[4], 1),
                             "calibration": calibration}
    return rows


def render(model: str, rows: dict) -> str:
    material = rows.get("_material")
    headers = ["variant", "file KiB", "hop µs (Engine)", "net step µs"]
    if material:
        headers += ["val clip acc", "Δ points", "stream hits", "wrong", "false alarms", "max |Δp|"]
    lines = []
    for name, r in rows.items():
        if name.startswith("_"):
            continue
        label = {"engine": "engine (numba, model.keras)", "none": "LiteRT float"}.get(name, f"LiteRT {name}")
        row = [label, r["kib"], r["hop_us"], r["step_us"]]
        if material:
            row += [f"{r['accuracy']:.4f}", f"{r['change_points']:+.2f}", f"{r['hits']}/{r['commands']}", r["wrong"],
                    r["false_alarms"], "-" if name == "engine" else f"{r['max_posterior_difference']:.2g}"]
        lines.append(row)
    text = table(headers, lines)
    if material:
        text += (f"\n\n{material['val_clips']} validation clips; validation stream {material['stream_s']:.0f} s "
                 f"(seed {STREAM_SEED}); integer variants calibrated on {material['calibration']}")
    return text


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--models", nargs="+", default=["gru", "lstm"])
    parser.add_argument("--data", default="../shared/data/speech_commands",
                        help="Speech Commands folder (accuracy and stream figures; skipped where absent)")
    parser.add_argument("--seconds", type=float, default=20.0, help="speech-like audio streamed for the hop time")
    parser.add_argument("--runs", type=int, default=5, help="timing runs per contender (median reported)")
    parser.add_argument("--stream-minutes", type=float, default=15.0)
    parser.add_argument("--out", help="keep the exported files in this folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = args.data if args.data and (Path(args.data) / "yes").is_dir() else None
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        out.mkdir(parents=True, exist_ok=True)
        for model in args.models:
            results[model] = measure(model, data, out, args)
            if not args.json:
                print(f"## {model}\n\n{render(model, results[model])}\n", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(f"machine: {machine()}")
    return results


if __name__ == "__main__":
    main()
