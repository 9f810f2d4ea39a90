"""Negatives made from the real data: sounds of the commands' own speakers that are no command.

    python -m training.negatives --data ../shared/data/speech_commands --out runs/negatives

From the command clips of the data set, in each speaker's own voice and microphone:
- `reversed/`: the clip backwards (the voice's spectrum and the word's length, no word);
  not for `no` and `on`, each the other backwards;
- `spliced/`: the first part of its word joined to the last part of another command said
  by the same speaker ("ye" + "op"), never two commands that share their vowel or their
  last sound (`go` + `no` would be `go` again, `on` + `off` would be `off`);
- `partial/`: only the first or only the last part of its word ("ye", "-op"); only the
  last part of `go` and `no`, whose first part already holds most of the word.

A part is 30-50% of the word's loud span. A clip with no word in it (near silence) is
left out. Each file is named after its source, `<speaker>_nohash_<word>_<k>.wav` from
`<word>/<speaker>_nohash_<k>.wav`, and drawn with a generator seeded by that name, so
`kws-train --extra-data` drops the negatives of its held-out speakers as it drops their
clips, and a data set that grows keeps the negatives already made. Every clip is 1 s,
16 kHz, 16-bit, as in Speech Commands; the folders are non-command words, so kws-train
reads them as `unknown`.

The output is a cache: rerunning the same command makes only what is missing;
`manifest.json` records the settings, and a rerun with other ones is refused. It is
generated data: never commit it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from kws.audio import fit_clip, load_audio
from kws.errors import InputFileError, non_negative_int
from training.data import COMMANDS, DataError, centred, rms, speaker_of, word_span, write_clip
from training.options import make_parser, run_main

KINDS = ("reversed", "spliced", "partial")
PART_LOW, PART_HIGH = 0.30, 0.50  # share of the word's loud span that a part keeps
FADE = 80  # samples (5 ms) of fade at each cut, so no click marks a splice
MAX_SPLICE_GAIN = 10.0  # 20 dB: a second word quieter than that is background, not a word
MIN_WORD_RMS = 1e-3  # -60 dBFS over the word: a clip quieter than this holds no word
# the vowel and the last sound of each command: a splice of two that share either is heard as a command
SOUNDS = {"yes": ("e", "s"), "no": ("ou", "ou"), "up": ("u", "p"), "down": ("au", "n"), "left": ("e", "t"),
          "right": ("ai", "t"), "on": ("o", "n"), "off": ("o", "f"), "stop": ("o", "p"), "go": ("ou", "ou")}
REVERSED_IS_A_COMMAND = {"no", "on"}
HEAD_IS_THE_WORD = {"go", "no"}


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


def reversed_clip(audio: np.ndarray) -> np.ndarray:
    return audio[::-1].copy()


def spliced_clip(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The start of `first`'s word, then the end of `second`'s, at `first`'s level (raised by
    at most MAX_SPLICE_GAIN)."""
    a, b = head(first, rng.uniform(PART_LOW, PART_HIGH)), tail(second, rng.uniform(PART_LOW, PART_HIGH))
    return centred(np.concatenate([a, b * min((rms(a) + 1e-9) / (rms(b) + 1e-9), MAX_SPLICE_GAIN)]))


def partial_clip(audio: np.ndarray, word: str, rng: np.random.Generator) -> np.ndarray:
    share = rng.uniform(PART_LOW, PART_HIGH)
    first = rng.random() < 0.5 and word not in HEAD_IS_THE_WORD
    return centred(head(audio, share) if first else tail(audio, share))


def spliceable(first: str, second: str) -> bool:
    return all(a != b for a, b in zip(SOUNDS[first], SOUNDS[second]))


def output_name(clip: Path) -> str:
    speaker, take = clip.stem.split("_nohash_", 1) if "_nohash_" in clip.stem else (clip.stem, "0")
    return f"{speaker}_nohash_{clip.parent.name}_{take}.wav"


def job_rng(seed: int, kind: str, clip: Path) -> np.random.Generator:
    key = f"{kind}/{clip.parent.name}/{clip.name}".encode()
    return np.random.default_rng([seed, int(hashlib.sha1(key).hexdigest()[:12], 16)])


def plan(by_speaker: dict[str, list[Path]], seed: int) -> list[tuple[str, Path, Path | None]]:
    """(kind, clip, the other clip of a splice) for every negative: each depends only on
    its own clip, the speaker's clips and the seed."""
    jobs = []
    for speaker in sorted(by_speaker):
        clips = by_speaker[speaker]
        for clip in clips:
            word = clip.parent.name
            if word not in REVERSED_IS_A_COMMAND:
                jobs.append(("reversed", clip, None))
            jobs.append(("partial", clip, None))
            partners = [c for c in clips if spliceable(word, c.parent.name)]
            if partners:
                jobs.append(("spliced", clip, partners[int(job_rng(seed, "partner", clip).integers(len(partners)))]))
    return jobs


def has_word(audio: np.ndarray) -> bool:
    start, end = word_span(audio)
    return rms(audio[start:end]) >= MIN_WORD_RMS


def make(kind: str, clip: Path, other: Path | None, rng: np.random.Generator) -> np.ndarray | None:
    """The negative, or None where a clip holds no word."""
    audio = fit_clip(load_audio(clip))
    if not has_word(audio):
        return None
    if kind == "reversed":
        return reversed_clip(audio)
    if kind == "partial":
        return partial_clip(audio, clip.parent.name, rng)
    second = fit_clip(load_audio(other))
    return spliced_clip(audio, second, rng) if has_word(second) else None


def check_manifest(out: Path, manifest: dict) -> None:
    """Refuse to add to a folder made with other settings: the two sets would mix."""
    path = out / "manifest.json"
    if not path.exists():
        return
    recorded = {k: v for k, v in json.loads(path.read_text()).items() if k != "clips"}
    if recorded != {k: v for k, v in manifest.items() if k != "clips"}:
        differ = sorted(k for k in manifest if k != "clips" and recorded.get(k) != manifest[k])
        raise DataError(f"{out}: made with another {', '.join(differ)} than this run's; give another --out or delete it")


def write_manifest(out: Path, manifest: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(partial, out / "manifest.json")


def build(data: Path, out: Path, seed: int = 0) -> dict:
    """Make every missing negative; returns counts. A clip that cannot be read is named on
    stderr once and left out with its negatives; the rest are made."""
    jobs = plan(command_clips(data), seed)
    settings = {"data": str(data.resolve()), "seed": seed, "kinds": list(KINDS), "part_share": [PART_LOW, PART_HIGH],
                "fade": FADE, "max_splice_gain": MAX_SPLICE_GAIN, "min_word_rms": MIN_WORD_RMS}
    check_manifest(out, settings)
    made = already = wordless = 0
    unreadable: set[Path] = set()
    for kind, clip, other in jobs:
        target = out / kind / output_name(clip)
        if target.exists():
            already += 1
            continue
        if unreadable & {clip, other}:
            continue
        try:
            audio = make(kind, clip, other, job_rng(seed, kind, clip))
        except InputFileError as error:
            print(f"skipped: {error}", file=sys.stderr)
            unreadable.add(Path(getattr(error, "path", clip)))
            continue
        if audio is None:
            wordless += 1
            continue
        try:
            write_clip(np.clip(audio, -1.0, 1.0), target)
        except OSError as error:
            raise DataError(f"{target}: cannot write ({error.strerror})") from None
        made += 1
    write_manifest(out, settings | {"clips": made + already})
    return {"planned": len(jobs), "made": made, "already_there": already, "unreadable": len(unreadable),
            "no_word": wordless, "left_out": len(jobs) - made - already - wordless}


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.negatives", __doc__)
    parser.add_argument("--data", default="../shared/data/speech_commands", help="Speech Commands folder")
    parser.add_argument("--out", required=True, help="folder to fill (Speech Commands layout)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)

    def run() -> int:
        result = build(Path(args.data), Path(args.out), args.seed)
        print(f"{args.out}: {result['planned']} negatives planned, {result['made']} made now, "
              f"{result['already_there']} already there; {result['unreadable']} unreadable clips "
              f"({result['left_out']} negatives left out), {result['no_word']} without a word")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
