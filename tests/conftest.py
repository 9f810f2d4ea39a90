"""Fixtures: real audio made on the spot with espeak-ng and numpy, never ../shared (except
where a test says it needs the shared clips and skips without them)."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.audio import resample

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The clip caches of the tests' training runs go to a folder of this session, removed at
# the end, not to the user's ~/.cache (every subprocess inherits this).
_CACHE = tempfile.mkdtemp(prefix="kws-test-cache-")
os.environ["KWS_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "speech_commands"
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en"]
VARIANTS = ["", "+m3", "+f2", "+f4"]
SR = 16000


def espeak(word: str, path: Path, voice: str = "en-us", pitch: int = 50, speed: int = 150) -> Path:
    """Speak `word` into a 16 kHz mono 16-bit WAV."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), word], check=True)
    audio, rate = sf.read(raw, dtype="float32")
    raw.unlink()
    from kws.audio import resample

    sf.write(path, resample(audio, rate), SR, subtype="PCM_16")
    return path


def speaker_id(voice: str, variant: str, pitch: int) -> str:
    return hashlib.md5(f"{voice}{variant}{pitch}".encode()).hexdigest()[:8]


def noise(seconds: float, level: float, seed: int, colour: str = "white") -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * SR))
    signal = np.cumsum(white) if colour == "brown" else white
    signal = signal - np.convolve(signal, np.ones(400) / 400, mode="same") if colour == "brown" else signal
    return (level * signal / np.sqrt(np.mean(signal**2))).astype(np.float32)


def make_dataset(root: Path, commands=("yes", "no", "up"), unknown=("cat", "dog"), speakers: int = 16) -> Path:
    """A miniature Speech Commands folder spoken by espeak-ng voice variants."""
    combos = [(v, var, p) for p in (40, 60) for var in VARIANTS for v in VOICES][:speakers]
    for word in (*commands, *unknown):
        (root / word).mkdir(parents=True, exist_ok=True)
        for voice, variant, pitch in combos:
            espeak(word, root / word / f"{speaker_id(voice, variant, pitch)}_nohash_0.wav", voice + variant, pitch)
    (root / "_background_noise_").mkdir(exist_ok=True)
    sf.write(root / "_background_noise_" / "white_noise.wav", noise(20, 0.01, 1), SR, subtype="PCM_16")
    sf.write(root / "_background_noise_" / "brown_noise.wav", noise(20, 0.01, 2, "brown"), SR, subtype="PCM_16")
    (root / "_silence_").mkdir(exist_ok=True)
    for i in range(12):
        sf.write(root / "_silence_" / f"{i}.wav", noise(1, 0.003 * (1 + i % 4), 100 + i), SR, subtype="PCM_16")
    return root


NON_COMMANDS = ("seven", "house", "water", "table")
SPEECH_VOICES = [("en-us", ""), ("en-gb", "+m3"), ("en-gb-scotland", "+f2"), ("en-029", "+f4")]

@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """Non-command words at 8 kHz, named WORD_SPEAKER_INDEX.wav as the Free Spoken Digit Dataset."""
    folder = tmp_path_factory.mktemp("speech") / "recordings"
    folder.mkdir()
    for voice, variant in SPEECH_VOICES:
        speaker = speaker_id(voice, variant, 55)
        for index, word in enumerate(NON_COMMANDS):
            path = espeak(word, folder / f"{word}_{speaker}_{index}.16k.wav", voice + variant, 55)
            audio, _ = sf.read(path, dtype="float32")
            sf.write(folder / f"{word}_{speaker}_{index}.wav", resample(audio, 16000, 8000), 8000,
                     subtype="PCM_16")
            path.unlink()
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("speech") / "speech_commands")


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict[str, Path]:
    """A few espeak-ng words as WAV files."""
    folder = tmp_path_factory.mktemp("spoken")
    return {w: espeak(w, folder / f"{w}.wav") for w in ("yes", "no", "stop", "go")}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "yes").is_dir():
        pytest.skip(f"the Speech Commands clips are not at {SHARED_DATA} (they sit beside the repo in CI)")
    return SHARED_DATA


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` as a user would run the console script."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def run_code(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -c code` from the repository root (for what `-m` cannot set up first)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


SMALL = ["--words", "yes,no,up", "--units", "32", "--layers", "1", "--val-percent", "30", "--test-percent", "0",
         "--seq-seconds", "3", "--stream-minutes", "0.5", "--quiet", "--batch-size", "8", "--repeat", "6", "--speed", "0"]


@pytest.fixture(scope="session")
def trained(tiny_dataset, tmp_path_factory):
    """A small GRU trained on the espeak-ng data set (yes/no/up), and the training run's output."""
    out = tmp_path_factory.mktemp("trained") / "bundle"
    result = run_cli("training.train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "15",
                     "--lr", "5e-3", "--seed", "1", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result
