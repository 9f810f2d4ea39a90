"""Measuring the engine: the machine's description, a speech-like test signal and the
fast path's time per hop. Used by `training.compare` and by the benchmarks."""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    voiced = 0.3 * np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 2 * t)) * t) * (t % 0.9 < 0.5)
    return (voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


def per_hop_fast(bundle, audio: np.ndarray, hop: int) -> float:
    """Seconds per hop of the streaming engine fed one hop at a time."""
    from kws.engine import Engine

    engine = Engine(bundle)
    engine.process(audio[:hop * 10])
    engine.reset()
    start = time.perf_counter()
    for i in range(0, len(audio) - hop + 1, hop):
        engine.process(audio[i : i + hop])
    return (time.perf_counter() - start) / (len(audio) // hop)
