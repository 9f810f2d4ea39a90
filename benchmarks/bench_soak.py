"""Soak: one hour of noise-only audio through the streaming engine, state never reset.

    python -m benchmarks.bench_soak [--model gru] [--minutes 60] [--data DIR]

Reports resident memory after warm-up and at the end (it must stay flat) and the
detections per hour on audio that holds no speech (false alarms). The noise is the
data set's `_background_noise_` recordings when --data is given (each at a random
level, in random order, concatenated), otherwise synthetic white, pink and brown noise.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import machine
from kws.bundle import load_bundle
from kws.engine import Engine


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def noise_sources(data: str | None, rng: np.random.Generator) -> list[np.ndarray]:
    if data:
        from training.data import load_noise, scan

        return load_noise(scan(data, validation_percentage=0, testing_percentage=0).noise_files, "training", 0.0)
    white = rng.standard_normal(16000 * 60)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.arange(1, len(white) // 2 + 2)))
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(400) / 400, mode="same")
    return [(x / np.sqrt(np.mean(x**2))).astype(np.float32) for x in (white, pink, brown)]


def noise_minutes(sources, minutes: float, rng: np.random.Generator):
    """Yield one-second blocks of noise, switching source and level every 10-30 s."""
    total = int(minutes * 60)
    done = 0
    while done < total:
        source = sources[rng.integers(len(sources))]
        level = 10 ** (rng.uniform(-50, -20) / 20)
        for _ in range(int(rng.integers(10, 31))):
            start = rng.integers(0, len(source) - 16000)
            yield (level * source[start : start + 16000]).astype(np.float32)
            done += 1
            if done >= total:
                return


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", default="gru")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--data", help="Speech Commands folder whose _background_noise_ to use")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    engine = Engine(load_bundle(args.model))
    sources = noise_sources(args.data, rng)
    blocks = noise_minutes(sources, args.minutes, rng)
    for _ in range(10):  # warm-up: compile, allocate
        engine.process(next(blocks))
    start_rss, start = rss_mb(), time.perf_counter()
    samples = detections = 0
    checkpoints = []
    for i, block in enumerate(blocks):
        detections += len(engine.process(block).detections)
        samples += len(block)
        if i % 600 == 0:
            checkpoints.append(round(rss_mb(), 1))
    seconds = time.perf_counter() - start
    hours = samples / 16000 / 3600
    result = {
        "model": str(args.model), "audio_minutes": round(samples / 16000 / 60, 1),
        "noise": "data set _background_noise_" if args.data else "synthetic white/pink/brown",
        "rss_mb_start": round(start_rss, 1), "rss_mb_end": round(rss_mb(), 1),
        "rss_mb_every_10_min": checkpoints,
        "false_detections": detections, "false_detections_per_hour": round(detections / hours, 2) if hours else None,
        "real_time_factor": round(seconds / (samples / 16000), 4), "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['audio_minutes']} min of noise-only audio ({result['noise']}) through {args.model}:")
        print(f"  resident memory: {result['rss_mb_start']} MB after warm-up, {result['rss_mb_end']} MB at the end "
              f"(every 10 min: {checkpoints})")
        print(f"  detections (all false): {detections}, {result['false_detections_per_hour']} per hour")
        print(f"  real-time factor {result['real_time_factor']} on {result['machine']}")
    return result


if __name__ == "__main__":
    main()
