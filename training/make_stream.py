"""Long test recordings with ground truth: clips of a data set laid end to end with
background noise and random gaps. Deterministic for a seed.

    python -m training.make_stream --data DIR --minutes 10 --seed 0 --out stream.wav

writes stream.wav (16 kHz, 16-bit) and stream.csv (`label,time_ms` per spoken word,
the time being where the word's sound starts). With `--model BUNDLE` the words and the
data split are the model's (as recorded in its bundle), so that a validation stream
holds only speakers the model never heard in training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.audio import SAMPLE_RATE
from kws.bundle import load_bundle
from kws.errors import non_negative_int, positive_float
from kws.labels import SILENCE, UNKNOWN, command_words
from kws.scoring import TruthWord, write_truth
from training.data import COMMANDS, DataError, LoadedClips, load_clips, load_noise, scan_split
from training.options import add_split_arguments, chosen_split, given_split, make_parser, run_main
from training.sequences import noise_cut

# the split without --model (the shipped models' percentages; their salt is `kws`)
STREAM_SPLIT = {"val_percent": 15.0, "test_percent": 0.0, "split_salt": ""}


def build_stream(
    clips: LoadedClips,
    labels: list[str],
    noise: list[np.ndarray],
    seconds: float,
    rng: np.random.Generator,
    gap_s: tuple[float, float] = (0.3, 1.5),
    noise_dbfs: float = -40.0,
    unknown_share: float = 1 / 11,
) -> tuple[np.ndarray, list[TruthWord]]:
    """Commands and (about `unknown_share` of them) unknown words in random order,
    each once before any repeats, over continuous background noise."""
    silence, unknown = labels.index(SILENCE), labels.index(UNKNOWN) if UNKNOWN in labels else -1
    commands = np.flatnonzero((clips.labels != silence) & (clips.labels != unknown))
    unknowns = np.flatnonzero(clips.labels == unknown)
    n_unknown = min(len(unknowns), int(round(len(commands) * unknown_share / (1 - unknown_share))))
    pool = np.concatenate([commands, rng.choice(unknowns, n_unknown, replace=False)]) if n_unknown else commands
    if not len(pool):
        raise DataError("no spoken clips to build a stream from")
    total = int(seconds * SAMPLE_RATE)
    audio = np.zeros(total, np.float32)
    truth = []
    cursor = int(rng.uniform(*gap_s) * SAMPLE_RATE)
    order = rng.permutation(pool)
    while cursor + SAMPLE_RATE <= total:
        if not len(order):
            order = rng.permutation(pool)
        index, order = order[0], order[1:]
        audio[cursor : cursor + SAMPLE_RATE] += clips.clip(index)
        start = cursor + int(clips.spans[index][0])
        truth.append(TruthWord(labels[clips.labels[index]], 1000.0 * start / SAMPLE_RATE))
        cursor += SAMPLE_RATE + int(rng.uniform(*gap_s) * SAMPLE_RATE)
    if noise:
        audio += 10 ** (noise_dbfs / 20) * noise_cut(noise, total, rng)
    return np.clip(audio, -1.0, 1.0), truth


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.make_stream", __doc__)
    parser.add_argument("--data", required=True, help="Speech Commands folder")
    parser.add_argument("--model", help="a bundle whose command words and recorded data split are the defaults")
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="length of the stream")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the order, gaps and noise")
    parser.add_argument("--out", required=True, help="output WAV; the truth CSV is written beside it")
    parser.add_argument("--split", default="validation", choices=("training", "validation", "testing", "all"),
                        help="whose clips: the speakers of this part of the data split")
    parser.add_argument("--words", default=argparse.SUPPRESS,
                        help=f"comma-separated command words (default: the --model's, else {','.join(COMMANDS)})")
    add_split_arguments(parser, fallback=STREAM_SPLIT, source="the --model bundle")
    parser.add_argument("--noise-dbfs", type=float, default=-40.0, help="background noise level (RMS, dBFS)")
    args = parser.parse_args(argv)
    return run_main(lambda: make(args))


def make(args) -> int:
    bundle = load_bundle(args.model) if args.model else None
    if hasattr(args, "words"):
        words = tuple(args.words.split(","))
    else:
        words = command_words(bundle.labels) if bundle else COMMANDS
    dataset = scan_split(args.data, words, chosen_split(given_split(args), bundle, None if bundle else STREAM_SPLIT))
    chosen = [c for s in dataset.splits for c in dataset.clips(s)] if args.split == "all" else dataset.clips(args.split)
    clips = load_clips(chosen, dataset.labels)
    noise = load_noise(dataset.noise_files, "training" if args.split == "training" else "validation")
    rng = np.random.default_rng(args.seed)
    audio, truth = build_stream(clips, dataset.labels, noise, args.minutes * 60, rng, noise_dbfs=args.noise_dbfs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, audio, SAMPLE_RATE, subtype="PCM_16")
    write_truth(out.with_suffix(".csv"), truth)
    print(f"wrote {out} ({len(audio) / SAMPLE_RATE:.0f} s, {len(truth)} words) and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
