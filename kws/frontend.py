"""MFCC frontend: one implementation, used offline (whole signal) and streaming (chunks).

Settings: 16 kHz, 30 ms Hann window (480 samples, FFT of 480 points), 10 ms hop,
40 mel bands 20-7600 Hz (librosa's Slaney mel filters), log-mel in dB
(10*log10(max(mel, 1e-10))), DCT-II (orthonormal) keeping 40 coefficients.
Frames are not centred, so one second of audio gives 98 frames. Nothing depends
on the signal as a whole (no top_db clipping, no mean removal): that is what lets
the streaming path give the same frames as the offline one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import librosa
import numpy as np
import scipy.fft
import scipy.signal
from numba import njit

from kws.audio import to_float32


@dataclass(frozen=True)
class MfccConfig:
    sample_rate: int = 16000
    window_ms: float = 30.0
    hop_ms: float = 10.0
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    n_mfcc: int = 40

    @property
    def window(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def n_frames(self, n_samples: int) -> int:
        return 0 if n_samples < self.window else (n_samples - self.window) // self.hop + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MfccConfig":
        return cls(**values)


@njit(cache=True)
def _frames_to_mfcc(frames, window, mel_t, dct_t):
    """Frames (n, window) -> windowed rFFT -> power -> mel -> dB (floor 1e-10) -> DCT, one
    compiled call (np.fft inside numba comes from rocket-fft: pocketfft, as in scipy)."""
    spectrum = np.fft.rfft(frames * window)
    n, bins = spectrum.shape
    power = np.empty((n, bins), np.float32)
    for i in range(n):
        for j in range(bins):
            value = spectrum[i, j]
            power[i, j] = value.real * value.real + value.imag * value.imag
    log_mel = power @ mel_t
    for i in range(n):
        for j in range(log_mel.shape[1]):
            log_mel[i, j] = 10.0 * np.log10(max(log_mel[i, j], 1e-10))
    return log_mel @ dct_t


def frame_view(signal: np.ndarray, n: int, window: int, hop: int) -> np.ndarray:
    """(..., samples) -> (..., n, window) overlapping frames, a read-only view (no copy)."""
    signal = np.ascontiguousarray(signal)
    step = signal.strides[-1]
    shape = signal.shape[:-1] + (n, window)
    strides = signal.strides[:-1] + (hop * step, step)
    return np.lib.stride_tricks.as_strided(signal, shape, strides, writeable=False)


class Mfcc:
    """Frames of samples -> MFCC rows. Holds the precomputed window, mel and DCT matrices."""

    def __init__(self, config: MfccConfig = MfccConfig()):
        self.config = config

    @cached_property
    def _window(self) -> np.ndarray:
        return scipy.signal.get_window("hann", self.config.window, fftbins=True).astype(np.float32)

    @cached_property
    def _mel_t(self) -> np.ndarray:
        c = self.config
        mel = librosa.filters.mel(sr=c.sample_rate, n_fft=c.window, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        return np.ascontiguousarray(mel.T, dtype=np.float32)

    @cached_property
    def _dct_t(self) -> np.ndarray:
        dct = scipy.fft.dct(np.eye(self.config.n_mels), type=2, norm="ortho", axis=0)[: self.config.n_mfcc]
        return np.ascontiguousarray(dct.T, dtype=np.float32)

    def frames_to_mfcc(self, frames: np.ndarray) -> np.ndarray:
        """(..., window) float32 -> (..., n_mfcc) float32."""
        if frames.ndim == 2:
            return _frames_to_mfcc(frames, self._window, self._mel_t, self._dct_t)
        flat = frames.reshape(-1, frames.shape[-1])
        return _frames_to_mfcc(flat, self._window, self._mel_t, self._dct_t).reshape(*frames.shape[:-1], -1)

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        """Offline: a whole signal -> (n_frames, n_mfcc)."""
        signal = to_float32(signal)
        c = self.config
        n = c.n_frames(len(signal))
        if n == 0:
            return np.zeros((0, c.n_mfcc), np.float32)
        return self.frames_to_mfcc(frame_view(signal, n, c.window, c.hop))


class StreamingMfcc:
    """Push chunks of any length, get the frames they complete. Same numbers as offline."""

    def __init__(self, config: MfccConfig = MfccConfig(), mfcc: Mfcc | None = None):
        self.config = config
        self.mfcc = mfcc or Mfcc(config)
        self._window, self._hop = config.window, config.hop  # read on every push: plain ints
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        chunk = chunk if chunk.dtype == np.float32 and chunk.ndim == 1 else to_float32(np.ravel(chunk))
        buffer = np.concatenate((self._pending, chunk)) if len(self._pending) else chunk
        window, hop = self._window, self._hop
        n = 0 if len(buffer) < window else (len(buffer) - window) // hop + 1
        self._pending = buffer[n * hop :].copy()
        if n == 0:
            return np.zeros((0, self.config.n_mfcc), np.float32)
        frames = buffer[None, :window] if n == 1 else frame_view(buffer, n, window, hop)
        return self.mfcc.frames_to_mfcc(frames)
