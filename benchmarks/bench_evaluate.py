"""Evaluation speed on a folder of one-second clips: batched inference vs one model call per clip.

    python -m benchmarks.bench_evaluate [--model gru] [--clips 1000]

Writes N one-second WAV files to a temporary folder, then times, in the same run,
`kws.evaluate.evaluate` (reads, MFCC, clips batched by length) and a baseline that
calls the Keras model once per clip. Reports clips per second for both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import machine, speechlike, table
from kws.audio import load_audio
from kws.bundle import load_bundle
from kws.evaluate import evaluate
from kws.frontend import Mfcc
from kws.models import load_keras_model


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", default="gru")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bundle = load_bundle(args.model)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(args.clips):
            paths.append(Path(folder) / f"clip{i:05d}.wav")
            sf.write(paths[-1], speechlike(1.0, i), 16000, subtype="PCM_16")
        evaluate(bundle, paths[:8])  # warm-up
        start = time.perf_counter()
        batched = evaluate(bundle, [folder])
        t_batched = time.perf_counter() - start
        assert len(batched.clips) == args.clips
        mfcc = Mfcc(bundle.frontend)
        model = load_keras_model(bundle.path)
        start = time.perf_counter()
        for path in paths:
            model.predict_on_batch(mfcc(load_audio(path))[None])
        t_single = time.perf_counter() - start
    result = {
        "model": str(args.model), "clips": args.clips,
        "batched_clips_per_s": round(args.clips / t_batched, 1),
        "one_call_per_clip_clips_per_s": round(args.clips / t_single, 1),
        "speedup": round(t_single / t_batched, 2), "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"evaluating {args.clips} one-second WAV clips with {args.model} on {result['machine']}\n")
        print(table(["path", "clips/s", "speed-up"], [
            ["kws evaluate (batched)", result["batched_clips_per_s"], f"{result['speedup']}x"],
            ["one predict_on_batch per clip", result["one_call_per_clip_clips_per_s"], "1x"],
        ]))
    return result


if __name__ == "__main__":
    main()
