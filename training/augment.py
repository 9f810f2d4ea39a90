"""Rooms and microphones for training audio: what a live microphone brings that the
data set's clips lack.

Each training sequence's audio goes through, in the order sound does:
1. a room: the words convolved with a simulated room impulse response
   (pyroomacoustics shoebox rooms, RT60 drawn from a range; a bank of rooms is made
   once per run, seeded), aligned on the direct path so the word timings hold;
2. (the background noise is added by training/sequences.py after the room);
3. a microphone channel: a telephone/8 kHz band (resampled to 8 kHz and back), a
   microphone-like colouring (audiomentations' seven-band parametric EQ), a
   high-pass of cheap microphones, and a gain over a wide range, clipped to [-1, 1]
   as a converter would.

Every draw comes from the caller's generator, so an epoch repeats exactly.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import soxr
from scipy.signal import fftconvolve

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class ChannelConfig:
    room_prob: float = 0.5
    rt60_low: float = 0.15
    rt60_high: float = 0.9
    rooms: int = 48  # impulse responses in the bank, made once per run
    narrow_band_prob: float = 0.2
    eq_prob: float = 0.4
    eq_db: float = 8.0
    highpass_prob: float = 0.3
    gain_db_low: float = -25.0
    gain_db_high: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A shoebox room of random size with the given RT60, source and microphone at random
    places in it; the response starts at its direct path and is scaled to a unit peak."""
    import pyroomacoustics as pra

    dims = rng.uniform([3.0, 3.0, 2.4], [9.0, 7.0, 3.5])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 60))
    source = rng.uniform(0.5, dims - 0.5)
    direction = rng.normal(size=3)
    distance = rng.uniform(0.3, 3.0)
    mic = np.clip(source + distance * direction / np.linalg.norm(direction), 0.3, dims - 0.3)
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    start = int(np.argmax(np.abs(rir)))
    rir = rir[start:]
    return (rir / np.abs(rir).max()).astype(np.float32)


class Channel:
    """Rooms and microphones, applied with a caller's generator."""

    def __init__(self, config: ChannelConfig = ChannelConfig(), seed: int = 0):
        self.config, self.seed = config, seed

    @cached_property
    def rooms(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, 424242])
        c = self.config
        return [room_impulse_response(float(rng.uniform(c.rt60_low, c.rt60_high)), rng) for _ in range(c.rooms)]

    @cached_property
    def _equaliser(self):
        from audiomentations import SevenBandParametricEQ

        return SevenBandParametricEQ(min_gain_db=-self.config.eq_db, max_gain_db=self.config.eq_db, p=1.0)

    @cached_property
    def _highpass(self):
        from audiomentations import HighPassFilter

        return HighPassFilter(min_cutoff_freq=60.0, max_cutoff_freq=300.0, p=1.0)

    def room(self, speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.config.room_prob:
            return speech
        rir = self.rooms[int(rng.integers(len(self.rooms)))]
        wet = fftconvolve(speech, rir)[: len(speech)]
        peak = np.abs(speech).max()
        return (wet * (peak / max(np.abs(wet).max(), 1e-9))).astype(np.float32)  # the room keeps the level

    def microphone(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        if rng.random() < c.narrow_band_prob:
            low = soxr.resample(audio, SAMPLE_RATE, 8000, quality="HQ")
            audio = soxr.resample(low, 8000, SAMPLE_RATE, quality="HQ")[: len(audio)].astype(np.float32)
        for transform, probability in ((self._equaliser, c.eq_prob), (self._highpass, c.highpass_prob)):
            if rng.random() < probability:
                seed = int(rng.integers(2**31))  # audiomentations draws from the global generators
                random.seed(seed)
                np.random.seed(seed)
                audio = transform(samples=np.ascontiguousarray(audio, np.float32), sample_rate=SAMPLE_RATE)
        gain = 10 ** (rng.uniform(c.gain_db_low, c.gain_db_high) / 20)
        return np.clip(audio * gain, -1.0, 1.0).astype(np.float32)
