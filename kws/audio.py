"""Reading audio files into 16 kHz mono float32, with one clear error per bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kws.errors import InputFileError

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # a clip is 1 s, as in Speech Commands


class AudioError(InputFileError):
    """A file that cannot be used as audio. The message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 (or other integer PCM) to float32 in [-1, 1); float input passes through as float32."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(2 ** (8 * samples.dtype.itemsize - 1))
        return (samples.astype(np.float32) / scale).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32)


SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _missing_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header promises for its samples, bytes present), if the file is a
    RIFF/WAVE whose data chunk is cut short; None otherwise. libsndfile would quietly
    read the shorter part, so a truncated recording would pass for a shorter one."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(12)[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(8)
            chunk, length = header[:4], int.from_bytes(header[4:8], "little")
            if chunk == b"data":
                present = size - offset - 8
                unknown = length in (0, 0xFFFFFFFF)  # streaming writers leave the size open
                return (length, present) if not unknown and present < length else None
            offset += 8 + length + (length & 1)
    return None


def _check_complete(path: Path) -> None:
    missing = _missing_wav_bytes(path)
    if missing:
        promised, present = missing
        raise AudioError(path, f"truncated: the header promises {promised} bytes of samples, the file holds {present}")


def _unreadable(path: Path, error: Exception) -> AudioError:
    reason = str(error).split(":")[-1].strip() or "unreadable"
    return AudioError(path, f"not a readable audio file ({reason})")


def _read_raw(path: Path) -> tuple[np.ndarray, int]:
    _check_file(path)
    _check_complete(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except SOUNDFILE_ERRORS as error:
        raise _unreadable(path, error) from None
    return data, rate


def load_audio(path: str | os.PathLike, min_samples: int = 480) -> np.ndarray:
    """Any soundfile-readable file -> mono float32 at 16 kHz.

    Raises AudioError for a missing, empty, truncated or non-audio file, for
    NaN/inf samples, and for audio shorter than `min_samples` at 16 kHz.
    """
    path = Path(path)
    data, rate = _read_raw(path)
    if data.shape[0] == 0:
        raise AudioError(path, "contains no audio samples (truncated or empty data chunk)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or infinite samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    audio = resample(mono, rate)
    if len(audio) < min_samples:
        ms = 1000 * len(audio) / SAMPLE_RATE
        raise AudioError(
            path, f"too short: {ms:.1f} ms of audio, need at least {1000 * min_samples / SAMPLE_RATE:.0f} ms (one frame)"
        )
    return audio


def fit_clip(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Pad with zeros (after) or cut to exactly `length` samples."""
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))


def load_clip(path: str | os.PathLike) -> np.ndarray:
    """A clip file as the models were trained on clips: `load_audio`, then silence after it
    up to 1 s (a longer file keeps its length)."""
    audio = load_audio(path)
    return fit_clip(audio, max(len(audio), CLIP_SAMPLES))


def _info(path: Path):
    _check_file(path)
    _check_complete(path)
    try:
        return sf.info(str(path))
    except SOUNDFILE_ERRORS as error:
        raise _unreadable(path, error) from None


def audio_duration_s(path: str | os.PathLike) -> float:
    """Duration from the header alone (no decoding); AudioError if unreadable."""
    info = _info(Path(path))
    return info.frames / info.samplerate


def check_readable(path: str | os.PathLike):
    """Cheap checks from the header (no decoding): exists, is complete audio, holds samples.
    Returns soundfile's header info (samplerate, frames, duration)."""
    path = Path(path)
    info = _info(path)
    if info.frames == 0:
        raise AudioError(path, "contains no audio samples (truncated or empty data chunk)")
    return info


def narrow_band_warning(path, source_rate: int, fmax: float) -> str | None:
    """A one-line warning when the recording cannot carry the model's top mel bands
    (an 8 kHz file holds nothing above 4 kHz; the model listens up to `fmax`)."""
    if source_rate >= 2 * fmax:
        return None
    return (f"{path}: recorded at {source_rate} Hz, so it holds nothing above {source_rate / 2:.0f} Hz; the model "
            f"listens up to {fmax:.0f} Hz and is less accurate on such audio")


def iter_blocks(path: str | os.PathLike, block_s: float = 1.0):
    """Yield (16 kHz mono float32 block) from a long file, reading a block at a time.

    Memory does not grow with the file's length. Resampling is done per block with
    a streaming resampler so that block edges leave no artefacts.
    """
    path = Path(path)
    _check_file(path)
    _check_complete(path)
    try:
        handle = sf.SoundFile(str(path))
    except SOUNDFILE_ERRORS as error:
        raise _unreadable(path, error) from None
    with handle:
        rate = handle.samplerate
        stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        frames = max(1, int(block_s * rate))
        while True:
            data = handle.read(frames, dtype="float32", always_2d=True)
            last = len(data) < frames
            if len(data) and not np.all(np.isfinite(data)):
                raise AudioError(path, "contains NaN or infinite samples")
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            if stream is not None:
                mono = stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)
            if len(mono):
                yield mono.astype(np.float32, copy=False)
            if last:
                break
