"""MFCC frontend: one implementation, used offline (whole signal) and streaming (chunks).

Settings: 16 kHz, 30 ms Hann window (480 samples, FFT of 480 points), 10 ms hop,
40 mel bands 20-7600 Hz (Slaney mel filters, as librosa's), log-mel in dB
(10*log10(max(mel, 1e-10))), DCT-II (orthonormal) keeping 40 coefficients.
Frames are not centred, so one second of audio gives 98 frames. Nothing depends
on the signal as a whole (no top_db clipping, no mean removal): that is what lets
the streaming path give the same frames as the offline one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
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
def _spectrum_to_mfcc(spectrum, mel_t, dct_t):
    """rFFT rows (n, bins) -> power -> mel -> dB (floor 1e-10) -> DCT, one compiled call."""
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


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window("hann", n))."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II (scipy.fft.dct(..., type=2, norm="ortho"))."""
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    matrix = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def _hz_to_mel(hz):
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    hz = np.asarray(hz, np.float64)
    linear = hz * 3.0 / 200.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney-normalised: librosa.filters.mel with
    its defaults. Written out here because importing librosa costs about 2 s at start-up;
    tests/test_frontend.py checks it against librosa."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class Mfcc:
    """Frames of samples -> MFCC rows. Holds the precomputed window, mel and DCT matrices."""

    def __init__(self, config: MfccConfig = MfccConfig()):
        self.config = config

    @cached_property
    def _window(self) -> np.ndarray:
        return hann_window(self.config.window).astype(np.float32)

    @cached_property
    def _mel_t(self) -> np.ndarray:
        c = self.config
        mel = mel_filterbank(c.sample_rate, c.window, c.n_mels, c.fmin, c.fmax)
        return np.ascontiguousarray(mel.T, dtype=np.float32)

    @cached_property
    def _dct_t(self) -> np.ndarray:
        dct = dct_matrix(self.config.n_mels, self.config.n_mfcc)
        return np.ascontiguousarray(dct.T, dtype=np.float32)

    def frames_to_mfcc(self, frames: np.ndarray) -> np.ndarray:
        """(..., window) float32 -> (..., n_mfcc) float32."""
        flat = frames if frames.ndim == 2 else frames.reshape(-1, frames.shape[-1])
        # NumPy's FFT (pocketfft): an FFT inside numba would cost ~1 s of start-up per process.
        mfcc = _spectrum_to_mfcc(np.fft.rfft(flat * self._window), self._mel_t, self._dct_t)
        return mfcc if frames.ndim == 2 else mfcc.reshape(*frames.shape[:-1], -1)

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
