"""Synthetic speech at scale, in the Speech Commands layout: the commands and a large
English word list, spoken by the synthetic voices that Debian packages offer.

    python -m training.synth --out data/synth [--words 4000] [--voices-per-word 3] [--command-takes 4]

- Voices: espeak-ng (its English accents times its voice variants), flite (kal, kal16,
  awb, rms, slt) and festival (kal_diphone, cmu_us_slt_arctic_hts), each at several
  pitches and rates. A voice at one pitch and rate is one synthetic *speaker*: its id
  names every file it speaks (`<speaker>_nohash_<n>.wav`), so kws-train's split keeps
  a speaker on one side.
- Every voice says every command (`--command-takes` settings each), so that "synthetic
  voice" never means "unknown"; each non-command word is said by `--voices-per-word`
  voices drawn at random.
- Non-command words come from the Debian `wamerican` list (`--word-list`): lower-case
  letters only, 2-10 letters, the commands left out.
- Each clip is 16 kHz mono 16-bit, 1 s, the word centred, as in Speech Commands.

The output is a cache: rerunning the same command only makes what is missing, and
`manifest.json` records the settings. It is generated data: never commit it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.audio import SAMPLE_RATE, load_audio
from kws.errors import KwsError, non_negative_int, positive_int
from training.data import COMMANDS, DataError, centred, write_clip
from training.options import make_parser, run_main

WORD_LIST = "/usr/share/dict/american-english"
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "croak", "Andy", "Annie", "Alicia", "Michael", "Steph", "grandma", "grandpa")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
PITCHES = (0.85, 1.0, 1.2)  # relative to the voice's own
RATES = (0.85, 1.0, 1.2)  # speaking rate, relative


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak, flite or festival
    name: str
    pitch: float
    rate: float

    @property
    def speaker(self) -> str:
        return hashlib.sha1(f"{self.engine}/{self.name}/{self.pitch}/{self.rate}".encode()).hexdigest()[:8]


def available_voices() -> list[Voice]:
    """Every voice whose synthesiser is installed, at every pitch and rate."""
    names = []
    if shutil.which("espeak-ng"):
        names += [("espeak", f"{accent}+{variant}" if variant else accent) for accent in ESPEAK_ACCENTS
                  for variant in ESPEAK_VARIANTS]
    if shutil.which("flite"):
        names += [("flite", v) for v in FLITE_VOICES]
    if shutil.which("festival"):
        installed = {p.name for p in Path("/usr/share/festival/voices").glob("*/*")}
        names += [("festival", v) for v in FESTIVAL_VOICES if v in installed]
    if not names:
        raise KwsError("no speech synthesiser found: apt-get install espeak-ng flite festival festvox-kallpc16k")
    return [Voice(engine, name, pitch, rate) for engine, name in names for pitch in PITCHES for rate in RATES]


def _speak_command(voice: Voice, word: str, wav: Path) -> list[str] | None:
    """The command line that speaks `word` into `wav`, or None for festival (batched)."""
    if voice.engine == "espeak":
        return ["espeak-ng", "-v", voice.name, "-p", str(int(50 * voice.pitch)), "-s", str(int(160 * voice.rate)),
                "-w", str(wav), word]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / voice.rate:.3f}",
                "--setf", f"int_f0_target_mean={int(110 * voice.pitch)}", "-t", word, "-o", str(wav)]
    return None


def _festival_script(voice: Voice, jobs: list[tuple[str, Path]]) -> str:
    lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {1 / voice.rate:.3f})"]
    lines += [f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{wav}" \'riff)' for word, wav in jobs]
    return "\n".join(lines) + "\n"


def to_clip(raw: Path, voice: Voice, out: Path) -> bool:
    """Trim the synthesiser's silence, centre the word in 1 s at 16 kHz, write 16-bit PCM.
    False if the synthesiser made no sound."""
    audio, rate = sf.read(raw, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if voice.engine == "festival":
        # festival has no pitch setting here: declaring another rate moves pitch and
        # formants together, like a different vocal tract
        rate = int(round(rate * voice.pitch))
    tmp = raw.with_suffix(".rate.wav")
    sf.write(tmp, audio, rate, subtype="FLOAT")
    audio = load_audio(tmp)
    tmp.unlink()
    loud = np.flatnonzero(np.abs(audio) > 0.02 * max(np.abs(audio).max(), 1e-6))
    if not len(loud) or np.abs(audio).max() < 1e-4:
        return False
    word = audio[loud[0] : loud[-1] + 1][:SAMPLE_RATE]
    write_clip(centred(word * (0.5 / max(np.abs(word).max(), 1e-6))), out)
    return True


def clip_path(out: Path, word: str, voice: Voice, take: int = 0) -> Path:
    return out / word / f"{voice.speaker}_nohash_{take}.wav"


def speak(voice: Voice, jobs: list[tuple[str, Path]], scratch: Path) -> int:
    """Speak each (word, clip path) with one voice; returns the clips made."""
    made = 0
    raws = [(word, scratch / f"{voice.speaker}_{i}.wav", out) for i, (word, out) in enumerate(jobs)]
    if voice.engine == "festival":
        script = scratch / f"{voice.speaker}.scm"
        script.write_text(_festival_script(voice, [(word, raw) for word, raw, _ in raws]))
        subprocess.run(["festival", "-b", str(script)], capture_output=True, check=True, timeout=600)
    else:
        for word, raw, _ in raws:
            subprocess.run(_speak_command(voice, word, raw), capture_output=True, check=True, timeout=60)
    for word, raw, out in raws:
        if raw.exists() and to_clip(raw, voice, out):
            made += 1
        raw.unlink(missing_ok=True)
    return made


def read_words(path: str, count: int, seed: int) -> list[str]:
    try:
        words = {w.strip() for w in open(path, encoding="utf-8", errors="ignore")}
    except OSError as error:
        raise DataError(f"{path}: cannot read the word list ({error.strerror}); apt-get install wamerican") from None
    words = sorted(w for w in words if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 10)
    words = [w for w in words if w not in COMMANDS]
    chosen = np.random.default_rng(seed).permutation(len(words))[:count]
    return sorted(words[i] for i in chosen)


def plan(voices: list[Voice], words: list[str], commands: tuple[str, ...], voices_per_word: int,
         command_takes: int, seed: int, out: Path) -> dict[Voice, list[tuple[str, Path]]]:
    """Which voice says which word into which file: every voice, every command
    (`command_takes` of the voice's settings each); each other word by a few voices."""
    rng = np.random.default_rng(seed)
    jobs: dict[Voice, list[tuple[str, Path]]] = {v: [] for v in voices}
    by_name: dict[tuple[str, str], list[Voice]] = {}
    for v in voices:
        by_name.setdefault((v.engine, v.name), []).append(v)
    for settings in by_name.values():
        for word in commands:
            for i in rng.permutation(len(settings))[:command_takes]:
                jobs[settings[i]].append((word, clip_path(out, word, settings[i])))
    for word in words:
        for i in rng.permutation(len(voices))[:voices_per_word]:
            jobs[voices[i]].append((word, clip_path(out, word, voices[i])))
    return {v: j for v, j in jobs.items() if j}


def build(out: Path, words: list[str], commands: tuple[str, ...], voices_per_word: int, command_takes: int,
          seed: int, workers: int = os.cpu_count() or 1, voices: list[Voice] | None = None, progress=None) -> dict:
    """Make every missing clip; returns counts. Rerunning makes only what is missing."""
    voices = voices or available_voices()
    jobs = plan(voices, words, commands, voices_per_word, command_takes, seed, out)
    missing = {v: [(w, p) for w, p in j if not p.exists()] for v, j in jobs.items()}
    missing = {v: j for v, j in missing.items() if j}
    total = sum(len(j) for j in jobs.values())
    made = 0
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(speak, v, j, Path(scratch)) for v, j in missing.items()]
        for future in futures:
            made += future.result()
            if progress:
                progress(made)
    manifest = {"voices": [asdict(v) | {"speaker": v.speaker} for v in voices], "words": len(words),
                "commands": list(commands), "voices_per_word": voices_per_word, "command_takes": command_takes,
                "seed": seed, "clips": total}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"planned": total, "made": made, "already_there": total - sum(len(j) for j in missing.values()),
            "silent": sum(len(j) for j in missing.values()) - made}


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.synth", __doc__)
    parser.add_argument("--out", required=True, help="folder to fill (Speech Commands layout)")
    parser.add_argument("--word-list", default=WORD_LIST, help="one word per line")
    parser.add_argument("--words", type=positive_int, default=4000, help="non-command words to draw from the list")
    parser.add_argument("--voices-per-word", type=positive_int, default=3)
    parser.add_argument("--command-takes", type=positive_int, default=4,
                        help="pitch/rate settings of each voice that say each command")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args(argv)

    def run() -> int:
        out = Path(args.out)
        words = read_words(args.word_list, args.words, args.seed)
        result = build(out, words, COMMANDS, args.voices_per_word, args.command_takes, args.seed)
        print(f"{out}: {result['planned']} clips planned, {result['made']} made now, "
              f"{result['already_there']} already there, {result['silent']} silent (skipped)")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
