"""Training examples for a recogniser that runs on an endless stream.

An RNN trained on isolated 1 s clips from a zero state learns to rely on that
state and falls apart when it is never reset. So every training example here is
a multi-second sequence of several clips laid end to end with random gaps and
background noise, with a target for every frame:

- while a word is being spoken: no target (weight 0) -- it cannot be known yet;
  with `unknown_while_spoken`, a non-command word's frames are `unknown` already: the
  model may not guess a command in the middle of a word that is none (a guess there
  fires the detector as surely as one after the word);
- from the word's end for `hold_ms`: the word's class (or `unknown`);
- everywhere else: `silence`.

Augmentation: random placement (time shift), random gain, speed perturbation,
background-noise mixing at a random level, optionally rooms and microphones
(training/augment.py's `Channel`: reverberation, narrow band, EQ, high-pass and a
wide gain range), and SpecAugment-style time and coefficient masks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr

from kws.frontend import Mfcc
from kws.labels import SILENCE, UNKNOWN
from training.augment import Channel
from training.data import CLIP_SAMPLES, LoadedClips


@dataclass(frozen=True)
class AugmentConfig:
    seq_seconds: float = 4.0
    first_offset_ms: float = 100.0
    max_gap_ms: float = 500.0
    hold_ms: float = 800.0
    gain_db: float = 6.0
    noise_prob: float = 0.8
    noise_dbfs_low: float = -55.0
    noise_dbfs_high: float = -25.0
    time_masks_per_s: float = 1.0
    time_mask_frames: int = 8
    freq_masks: int = 2
    freq_mask_coeffs: int = 4
    single_clip_share: float = 0.0  # share of sequences holding one clip, then background only
    speed: float = 0.0  # speed perturbation: each clip resampled by a factor in [1 - speed, 1 + speed]
    unknown_while_spoken: bool = False  # unknown words: `unknown` targets while spoken too, not only after

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Word:
    label: int
    start: int  # sample where the spoken word starts in the sequence
    end: int


def noise_cut(noise: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of a random (unit-RMS) noise recording, `length` samples long."""
    source = noise[rng.integers(len(noise))]
    if len(source) <= length:
        source = np.tile(source, length // len(source) + 1)
    start = rng.integers(0, len(source) - length + 1)
    return source[start : start + length]


Placement = tuple[int, int]  # (clip index or -1 for an empty slot, first sample in the sequence)


def plan_sequence(slots, length: int, rng: np.random.Generator, config: AugmentConfig) -> list[Placement]:
    """Where the clips of `slots` (taken from the front) go in one sequence of `length`
    samples: one after another, after a random first offset, with random gaps. Needs no
    audio, so a whole epoch is planned up front and its audio made batch by batch."""
    sr = CLIP_SAMPLES
    cursor = int(rng.integers(0, int(config.first_offset_ms * sr / 1000) + 1))
    placed: list[Placement] = []
    while cursor < length and len(placed) < len(slots):
        placed.append((int(slots[len(placed)]), cursor))
        cursor += CLIP_SAMPLES + int(rng.integers(0, int(config.max_gap_ms * sr / 1000) + 1))
    return placed


def lay_out(
    clips: LoadedClips, placed: list[Placement], length: int, rng: np.random.Generator, config: AugmentConfig,
    silence: int
) -> tuple[np.ndarray, list[Word]]:
    """The audio of a planned sequence: each clip (int16 in the store, float32 from here on)
    at its place with a random gain and speed. Returns the audio and the spoken words placed
    (silence clips are not words)."""
    audio = np.zeros(length, np.float32)
    words: list[Word] = []
    for index, cursor in placed:
        if index < 0:
            continue
        gain = 10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20)
        clip, (start, end) = perturb_speed(clips.clip(index), clips.spans[index], config.speed, rng)
        piece = clip[: length - cursor] * gain
        audio[cursor : cursor + len(piece)] += piece
        if clips.labels[index] != silence:
            words.append(Word(int(clips.labels[index]), cursor + int(start), cursor + int(end)))
    return audio, words


def perturb_speed(clip: np.ndarray, span, speed: float, rng: np.random.Generator):
    """Play the clip `factor` times faster (tempo and pitch together, like another speaker)."""
    if not speed:
        return clip, span
    factor = rng.uniform(1 - speed, 1 + speed)
    faster = soxr.resample(clip, CLIP_SAMPLES * factor, CLIP_SAMPLES, quality="LQ").astype(np.float32)
    return faster, (int(span[0] / factor), int(span[1] / factor))


def frame_targets(
    words: list[Word], n_frames: int, silence: int, hop: int, window: int, hold: int, unknown: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame class and weight. A frame's time is the end of its window. With `unknown`
    (that class's index), the frames of an unknown word being spoken have that target."""
    frame_end = np.arange(n_frames) * hop + window
    targets = np.full(n_frames, silence, np.int64)
    weights = np.ones(n_frames, np.float32)
    for word in words:
        speaking = (frame_end > word.start) & (frame_end < word.end)
        if unknown is not None and word.label == unknown:
            targets[speaking] = unknown
        else:
            weights[speaking] = 0.0
        holding = (frame_end >= word.end) & (frame_end < word.end + hold)
        targets[holding] = word.label
        weights[holding] = 1.0
    return targets, weights


def spec_augment(features: np.ndarray, fill: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    features = features.copy()
    n_frames, n_coeffs = features.shape
    for _ in range(int(round(config.time_masks_per_s * n_frames / 100))):
        width = int(rng.integers(0, config.time_mask_frames + 1))
        start = int(rng.integers(0, max(1, n_frames - width)))
        features[start : start + width] = fill
    for _ in range(config.freq_masks):
        width = int(rng.integers(0, config.freq_mask_coeffs + 1))
        start = int(rng.integers(0, max(1, n_coeffs - width)))
        features[:, start : start + width] = fill[start : start + width]
    return features


def add_noise(audio: np.ndarray, noise: list[np.ndarray], rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    if not noise or rng.random() >= config.noise_prob:
        return audio
    level = 10 ** (rng.uniform(config.noise_dbfs_low, config.noise_dbfs_high) / 20)
    return audio + level * noise_cut(noise, len(audio), rng)


class SequenceMaker:
    """Turns a list of clip slots into batches of (features, targets, weights)."""

    def __init__(
        self,
        clips: LoadedClips,
        noise: list[np.ndarray],
        labels: list[str],
        mfcc: Mfcc,
        config: AugmentConfig = AugmentConfig(),
        feature_fill: np.ndarray | None = None,
        channel: Channel | None = None,
    ):
        self.clips, self.noise, self.labels, self.mfcc, self.config = clips, noise, labels, mfcc, config
        self.channel = channel
        self.silence = labels.index(SILENCE)
        self.unknown = labels.index(UNKNOWN) if UNKNOWN in labels else None
        self.length = int(config.seq_seconds * CLIP_SAMPLES)
        self.feature_fill = feature_fill

    def plan(self, slots: np.ndarray, rng: np.random.Generator) -> list[list[Placement]]:
        """All slots (shuffled) packed into sequences: the placements of each (no audio yet)."""
        order = rng.permutation(np.asarray(slots))
        sequences, taken = [], 0
        while taken < len(order):
            rest = order[taken : taken + 1] if rng.random() < self.config.single_clip_share else order[taken:]
            placed = plan_sequence(rest, self.length, rng, self.config)
            sequences.append(placed)
            taken += len(placed)
        return sequences

    def render(self, placed: list[Placement], rng: np.random.Generator, augment: bool = True):
        """One planned sequence as (features, targets, weights)."""
        audio, words = lay_out(self.clips, placed, self.length, rng, self.config, self.silence)
        if augment:
            audio = self.heard(audio, rng)
        features = self.mfcc(audio)
        c = self.mfcc.config
        targets, weights = frame_targets(
            words, len(features), self.silence, c.hop, c.window, int(self.config.hold_ms * c.sample_rate / 1000),
            self.unknown if self.config.unknown_while_spoken else None,
        )
        if augment and self.feature_fill is not None:
            features = spec_augment(features, self.feature_fill, rng, self.config)
        return features, targets, weights

    def heard(self, speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The sequence as a microphone hears it: through a room, over background noise,
        through the microphone's channel (the room and the microphone only with a `Channel`)."""
        if self.channel is None:
            return add_noise(speech, self.noise, rng, self.config)
        audio = add_noise(self.channel.room(speech, rng), self.noise, rng, self.config)
        return self.channel.microphone(audio, rng)

    def batch(self, plan: list[list[Placement]], which, seed, augment: bool = True):
        """Sequences `which` (indices into `plan`) as arrays (n, T, F), (n, T), (n, T). Each
        sequence's augmentation is seeded by (`seed`, its index): the same whatever the
        batching or the order the batches are asked for."""
        made = [self.render(plan[j], np.random.default_rng([*np.atleast_1d(seed), int(j)]), augment) for j in which]
        return tuple(np.stack(parts) for parts in zip(*made))

    def epoch(self, slots: np.ndarray, rng: np.random.Generator, augment: bool = True):
        """All slots (shuffled) packed into sequences: arrays (n, T, F), (n, T), (n, T).
        Holds the whole epoch in memory (tests, small sets); training asks for `batch`es."""
        plan = self.plan(slots, rng)
        return self.batch(plan, range(len(plan)), int(rng.integers(2**62)), augment)
