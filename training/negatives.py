"""Negatives made from the real data: sounds of the commands' own speakers that are no command.

    python -m training.negatives --data ../shared/data/speech_commands --out runs/negatives

From every command clip of the data set, in its speaker's own voice and microphone:
- `reversed/`: the clip backwards (the voice's spectrum and the word's length, no word);
- `spliced/`: the first part of its word joined to the last part of another command said
  by the same speaker ("ye" + "op");
- `partial/`: only the first or only the last part of its word ("ye", "-op").

A part is 30-50% of the word's loud span. Each file keeps its speaker's name
(`<speaker>_nohash_<word>_<n>.wav`, from the speaker's n-th command clip), so `kws-train --extra-data` drops the negatives of its
validation speakers as it drops their clips, whatever the split. Every clip is 1 s,
16 kHz, 16-bit, as in Speech Commands; the folders are non-command words, so kws-train
reads them as `unknown`.

The output is a cache: rerunning the same command makes only what is missing, and
`manifest.json` records the settings. It is generated data: never commit it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kws.audio import load_audio
from kws.errors import InputFileError
from training.data import COMMANDS, CLIP_SAMPLES, DataError, fit_clip, speaker_of, word_span, write_clip
from training.options import make_parser, run_main

KINDS = ("reversed", "spliced", "partial")
PART_LOW, PART_HIGH = 0.30, 0.50  # share of the word's loud span that a part keeps
FADE = 80  # samples (5 ms) of fade at each cut, so no click marks a splice


def command_clips(data: Path) -> dict[str, list[Path]]:
    """Each speaker's command clips, in a fixed order."""
    if not data.is_dir():
        raise DataError(f"{data}: no such data folder")
    by_speaker: dict[str, list[Path]] = {}
    for word in COMMANDS:
        for path in sorted((data / word).glob("*.wav")):
            by_speaker.setdefault(speaker_of(path), []).append(path)
    if not by_speaker:
        raise DataError(f"{data}: no command word folders ({', '.join(COMMANDS)}) with .wav clips")
    return by_speaker


def faded(audio: np.ndarray) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, min(FADE, len(audio) // 2), dtype=np.float32)
    out = audio.astype(np.float32, copy=True)
    out[: len(ramp)] *= ramp
    out[len(out) - len(ramp):] *= ramp[::-1]
    return out


def head(audio: np.ndarray, share: float) -> np.ndarray:
    start, end = word_span(audio)
    return faded(audio[start: start + max(FADE * 2, int(share * (end - start)))])


def tail(audio: np.ndarray, share: float) -> np.ndarray:
    start, end = word_span(audio)
    return faded(audio[end - max(FADE * 2, int(share * (end - start))): end])


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-9)


def centred(sound: np.ndarray) -> np.ndarray:
    """`sound` in the middle of a 1-s clip."""
    sound = sound[:CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    start = (CLIP_SAMPLES - len(sound)) // 2
    clip[start: start + len(sound)] = sound
    return clip


def reversed_clip(audio: np.ndarray) -> np.ndarray:
    return audio[::-1].copy()


def spliced_clip(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The start of `first`'s word, then the end of `second`'s, at `first`'s level."""
    a, b = head(first, rng.uniform(PART_LOW, PART_HIGH)), tail(second, rng.uniform(PART_LOW, PART_HIGH))
    return centred(np.concatenate([a, b * (rms(a) / rms(b))]))


def partial_clip(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    share = rng.uniform(PART_LOW, PART_HIGH)
    return centred(head(audio, share) if rng.random() < 0.5 else tail(audio, share))


def plan(by_speaker: dict[str, list[Path]], seed: int) -> list[tuple[str, Path, Path | None, str]]:
    """(kind, clip, other clip of the same speaker for a splice, output name) for every negative."""
    rng = np.random.default_rng(seed)
    jobs = []
    for speaker in sorted(by_speaker):
        clips = by_speaker[speaker]
        for n, path in enumerate(clips):
            name = f"{speaker}_nohash_{path.parent.name}_{n}.wav"
            others = [c for c in clips if c.parent.name != path.parent.name]
            jobs.append(("reversed", path, None, name))
            jobs.append(("partial", path, None, name))
            if others:
                jobs.append(("spliced", path, others[int(rng.integers(len(others)))], name))
    return jobs


def make(kind: str, clip: Path, other: Path | None, rng: np.random.Generator) -> np.ndarray:
    audio = fit_clip(load_audio(clip))
    if kind == "reversed":
        return reversed_clip(audio)
    if kind == "partial":
        return partial_clip(audio, rng)
    return spliced_clip(audio, fit_clip(load_audio(other)), rng)


def build(data: Path, out: Path, seed: int = 0) -> dict:
    """Make every missing negative; returns counts. A clip that cannot be read is skipped and
    counted (its name is printed), the rest are made."""
    jobs = plan(command_clips(data), seed)
    made = skipped = 0
    for i, (kind, clip, other, name) in enumerate(jobs):
        target = out / kind / name
        if target.exists():
            continue
        try:
            audio = make(kind, clip, other, np.random.default_rng([seed, i]))
        except InputFileError as error:
            print(f"skipped: {error}", file=sys.stderr)
            skipped += 1
            continue
        write_clip(np.clip(audio, -1.0, 1.0), target)
        made += 1
    manifest = {"data": str(data.resolve()), "seed": seed, "kinds": list(KINDS), "part_share": [PART_LOW, PART_HIGH],
                "clips": len(jobs) - skipped}
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"planned": len(jobs), "made": made, "skipped": skipped, "already_there": len(jobs) - made - skipped}


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.negatives", __doc__)
    parser.add_argument("--data", default="../shared/data/speech_commands", help="Speech Commands folder")
    parser.add_argument("--out", required=True, help="folder to fill (Speech Commands layout)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def run() -> int:
        result = build(Path(args.data), Path(args.out), args.seed)
        print(f"{args.out}: {result['planned']} negatives planned, {result['made']} made now, "
              f"{result['already_there']} already there, {result['skipped']} skipped (unreadable clips)")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
