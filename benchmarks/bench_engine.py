"""Per-hop cost of streaming: the engine's NumPy fast path vs calling Keras per hop.

    python -m benchmarks.bench_engine [--model gru|lstm|PATH] [--seconds 20]

One hop = 10 ms of audio = one MFCC frame + one cell step per layer + the detector.
Measured in one run, on one core's worth of work (single-threaded BLAS recommended:
OMP_NUM_THREADS=1), against a baseline measured in the same run:
- fast path: `Engine.process` on 160-sample chunks, `--runs` times over the same
  audio; the median run is the figure, and the fastest and slowest runs show the
  spread (on a shared VM, whole runs speed up and slow down with the host);
- Keras stateful model (batch 1, stateful=True) called per hop as `model(x)` and
  as `model.predict_on_batch(x)`, the MFCC frame computed the same way.
Then N independent streams in one process (`StreamBatch`): hops per second and the
largest N that stays real-time (a 10 ms tick for all N streams in under 10 ms).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import machine, per_hop_fast, speechlike, table
from kws.bundle import load_bundle
from kws.engine import Engine, StreamBatch
from kws.frontend import StreamingMfcc
from kws.models import load_keras_model, stateful_copy


def per_hop_keras(bundle, audio: np.ndarray, hop: int, how: str, hops: int) -> float:
    model = stateful_copy(load_keras_model(bundle.path), bundle.arch, bundle.units, bundle.layers)
    frontend = StreamingMfcc(bundle.frontend)
    call = (lambda x: model(x, training=False)) if how == "call" else model.predict_on_batch
    warm = frontend.push(audio[: bundle.frontend.window])
    for _ in range(3):
        np.asarray(call(warm[None]))
    start = time.perf_counter()
    for i in range(hops):
        frames = frontend.push(audio[bundle.frontend.window + i * hop : bundle.frontend.window + (i + 1) * hop])
        np.asarray(call(frames[None]))
    return (time.perf_counter() - start) / hops


def tick_seconds(bundle, n: int, ticks: int = 30) -> float:
    """Time for one 10 ms tick of N streams (MFCC + cells + N detectors), best of a few."""
    batch = StreamBatch(bundle, n)
    hop = bundle.frontend.hop
    rng = np.random.default_rng(n)
    blocks = (0.05 * rng.standard_normal((ticks + 3, n, hop))).astype(np.float32)
    batch.process(np.zeros((n, bundle.frontend.window - hop), np.float32))
    for b in blocks[:3]:
        batch.process(b)
    times = []
    for b in blocks[3:]:
        start = time.perf_counter()
        batch.process(b)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def largest_realtime(bundle, hop_s: float, low: int, high: int) -> int:
    """Bisection for the largest N whose tick takes less than one hop."""
    if tick_seconds(bundle, high, 10) < hop_s:
        return high
    while high - low > max(1, low // 20):
        mid = (low + high) // 2
        low, high = (mid, high) if tick_seconds(bundle, mid, 10) < hop_s else (low, mid)
    return low


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", default="gru")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio streamed through the fast path")
    parser.add_argument("--runs", type=int, default=9, help="fast-path runs over the audio (median reported)")
    parser.add_argument("--keras-hops", type=int, default=200)
    parser.add_argument("--streams", default="1,10,100,1000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bundle = load_bundle(args.model)
    hop = bundle.frontend.hop
    hop_s = hop / bundle.frontend.sample_rate
    audio = speechlike(args.seconds, 0)
    runs = sorted(per_hop_fast(bundle, audio, hop) for _ in range(args.runs))
    fast = float(np.median(runs))
    keras_call = per_hop_keras(bundle, audio, hop, "call", args.keras_hops)
    keras_predict = per_hop_keras(bundle, audio, hop, "predict_on_batch", args.keras_hops)
    scaling = []
    for n in [int(s) for s in args.streams.split(",")]:
        tick = tick_seconds(bundle, n)
        scaling.append({"streams": n, "tick_ms": round(tick * 1000, 3), "hops_per_s": round(n / tick),
                        "real_time_factor": round(tick / hop_s, 4)})
    biggest = largest_realtime(bundle, hop_s, 1, 20000)
    result = {
        "model": str(args.model), "arch": bundle.arch, "params": bundle.n_params,
        "fast_ms_per_hop": round(fast * 1000, 4),
        "fast_ms_per_hop_runs": [round(r * 1000, 4) for r in runs],
        "keras_call_ms_per_hop": round(keras_call * 1000, 3),
        "keras_predict_on_batch_ms_per_hop": round(keras_predict * 1000, 3),
        "speedup_vs_keras_call": round(keras_call / fast, 1),
        "speedup_vs_keras_predict_on_batch": round(keras_predict / fast, 1),
        "fast_real_time_factor": round(fast / hop_s, 4),
        "scaling": scaling, "largest_real_time_streams": biggest, "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(f"{bundle.arch} ({bundle.n_params} parameters), per 10 ms hop, on {result['machine']}\n")
    print(table(["path", "ms per hop", "real-time factor", "fast path is"], [
        ["fast path (Engine), median run", f"{fast * 1000:.4f}", f"{fast / hop_s:.4f}", "1x"],
        ["Keras stateful, model(x)", f"{keras_call * 1000:.3f}", f"{keras_call / hop_s:.3f}", f"{keras_call / fast:.0f}x faster"],
        ["Keras stateful, predict_on_batch", f"{keras_predict * 1000:.3f}", f"{keras_predict / hop_s:.3f}", f"{keras_predict / fast:.0f}x faster"],
    ]))
    print()
    print(f"fast path, {args.runs} runs of {args.seconds:g} s: fastest {runs[0] * 1000:.4f}, median {fast * 1000:.4f}, "
          f"slowest {runs[-1] * 1000:.4f} ms per hop; {sum(r <= 1e-4 for r in runs)} of {args.runs} runs at or under 0.1 ms")
    print()
    print(table(["streams", "ms per 10 ms tick", "hops/s", "real-time factor"],
                [[s["streams"], s["tick_ms"], s["hops_per_s"], s["real_time_factor"]] for s in scaling]))
    print(f"\nlargest number of streams kept in real time by one process: {biggest}")
    return result


if __name__ == "__main__":
    main()
