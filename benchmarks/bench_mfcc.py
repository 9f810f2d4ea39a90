"""MFCC extraction speed: kws's frontend vs librosa.feature.mfcc called per clip, same run.

    python -m benchmarks.bench_mfcc [--clips 500]

Both compute 40 MFCCs of 1 s clips with the same settings (30 ms window, 10 ms hop,
40 mel bands 20-7600 Hz, not centred), one call per clip.
"""

from __future__ import annotations

import argparse
import json

import librosa

from benchmarks.common import best_of, machine, speechlike, table
from kws.frontend import Mfcc, MfccConfig


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    clips = [speechlike(1.0, seed) for seed in range(args.clips)]
    c = MfccConfig()
    mfcc = Mfcc(c)
    mfcc(clips[0])

    def ours_per_clip():
        for clip in clips:
            mfcc(clip)

    def theirs():
        for clip in clips:
            librosa.feature.mfcc(y=clip, sr=c.sample_rate, n_mfcc=c.n_mfcc, n_fft=c.window, hop_length=c.hop,
                                 win_length=c.window, center=False, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)

    t_librosa = best_of(theirs, 3)
    t_ours = best_of(ours_per_clip, 3)
    n = len(clips)
    result = {
        "clips": n,
        "librosa_clips_per_s": round(n / t_librosa),
        "kws_clips_per_s": round(n / t_ours),
        "speedup_per_clip": round(t_librosa / t_ours, 2),
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"MFCC of {n} one-second clips on {result['machine']}\n")
        print(table(["implementation", "clips/s", "vs librosa"], [
            ["librosa.feature.mfcc per clip", result["librosa_clips_per_s"], "1.00x"],
            ["kws Mfcc per clip", result["kws_clips_per_s"], f"{result['speedup_per_clip']:.2f}x"],
        ]))
    return result


if __name__ == "__main__":
    main()
