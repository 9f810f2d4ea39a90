"""The real-time streaming engine.

Audio chunks of any length go in; each 10 ms hop costs one MFCC frame and one
recurrent cell step per layer, with the state (GRU: h; LSTM: h and c) carried over
for as long as the stream lives. The fast path is NumPy running the trained Keras
weights: a Keras call costs milliseconds, a NumPy cell step microseconds.

`RecurrentNet` steps N independent streams at once (their states are rows of one
matrix); `Engine` is one stream: frontend + network + detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from kws.bundle import Bundle
from kws.detector import Detection, Detector, DetectorConfig, frame_times
from kws.frontend import Mfcc, StreamingMfcc


def normalization_stats(model) -> tuple[np.ndarray, np.ndarray]:
    layer = model.get_layer("normalize")
    mean = np.asarray(layer.mean, np.float64).reshape(-1)
    variance = np.asarray(layer.variance, np.float64).reshape(-1)
    return mean, variance


@dataclass
class GruWeights:
    kernel: np.ndarray  # (in, 3u), gates z, r, h
    recurrent: np.ndarray  # (u, 3u)
    input_bias: np.ndarray  # (3u,)
    recurrent_bias: np.ndarray  # (3u,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def zero_state(self, n: int) -> tuple[np.ndarray, ...]:
        return (np.zeros((n, self.units), np.float32),)

    def project(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel + self.input_bias

    def step(self, projected: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        (h,) = state
        u = self.units
        recurrent = h @ self.recurrent + self.recurrent_bias
        gates = expit(projected[:, : 2 * u] + recurrent[:, : 2 * u])
        z, r = gates[:, :u], gates[:, u:]
        candidate = np.tanh(projected[:, 2 * u :] + r * recurrent[:, 2 * u :])
        h = candidate + z * (h - candidate)
        return h, (h,)


@dataclass
class LstmWeights:
    kernel: np.ndarray  # (in, 4u), gates i, f, c, o
    recurrent: np.ndarray  # (u, 4u)
    bias: np.ndarray  # (4u,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def zero_state(self, n: int) -> tuple[np.ndarray, ...]:
        return np.zeros((n, self.units), np.float32), np.zeros((n, self.units), np.float32)

    def project(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel + self.bias

    def step(self, projected: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        h, c = state
        u = self.units
        z = projected + h @ self.recurrent
        gates = expit(z[:, np.r_[0 : 2 * u, 3 * u : 4 * u]])
        i, f, o = gates[:, :u], gates[:, u : 2 * u], gates[:, 2 * u :]
        c = f * c + i * np.tanh(z[:, 2 * u : 3 * u])
        h = o * np.tanh(c)
        return h, (h, c)


def _f32(value) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value), dtype=np.float32)


def layer_weights(layer) -> GruWeights | LstmWeights:
    kind = type(layer).__name__
    weights = [_f32(w) for w in layer.get_weights()]
    if kind == "GRU":
        if not layer.cell.reset_after:
            raise ValueError("only GRU layers with reset_after=True (the Keras default) are supported")
        kernel, recurrent, bias = weights
        return GruWeights(kernel, recurrent, bias[0], bias[1])
    if kind == "LSTM":
        kernel, recurrent, bias = weights
        return LstmWeights(kernel, recurrent, bias)
    raise ValueError(f"unsupported recurrent layer {kind}")


class RecurrentNet:
    """NumPy twin of a bundle's Keras model, for N streams at once."""

    def __init__(self, model):
        mean, variance = normalization_stats(model)
        self.scale = _f32(1.0 / np.maximum(np.sqrt(variance), 1e-7))
        self.shift = _f32(-mean * self.scale)
        self.layers = [layer_weights(layer) for layer in model.layers if type(layer).__name__ in ("GRU", "LSTM")]
        dense = model.get_layer("posteriors")
        self.dense_kernel, self.dense_bias = (_f32(w) for w in dense.get_weights())
        # Fold the input normalisation into the first layer's input projection.
        first = self.layers[0]
        bias_name = "input_bias" if isinstance(first, GruWeights) else "bias"
        setattr(first, bias_name, _f32(getattr(first, bias_name) + self.shift @ first.kernel))
        first.kernel = _f32(self.scale[:, None] * first.kernel)

    def zero_state(self, n: int = 1) -> list[tuple[np.ndarray, ...]]:
        return [layer.zero_state(n) for layer in self.layers]

    def run(self, features: np.ndarray, state: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, list]:
        """features (T, N, F) -> posteriors (T, N, C). Layer by layer: each layer's input
        projection is one matrix product over all T frames; only the recurrence loops."""
        sequence = features.astype(np.float32, copy=False)
        new_state = []
        for layer, layer_state in zip(self.layers, state):
            projected = layer.project(sequence)
            outputs = np.empty(projected.shape[:2] + (layer.units,), np.float32)
            for t in range(len(projected)):
                outputs[t], layer_state = layer.step(projected[t], layer_state)
            new_state.append(layer_state)
            sequence = outputs
        logits = sequence @ self.dense_kernel + self.dense_bias
        logits -= logits.max(axis=-1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=-1, keepdims=True), new_state


@dataclass
class ChunkResult:
    posteriors: np.ndarray  # (frames, classes) for the frames this chunk completed
    detections: list[Detection] = field(default_factory=list)
    first_frame: int = 0  # stream index of posteriors[0]

    @property
    def times_ms(self) -> np.ndarray:
        return frame_times(self.first_frame, len(self.posteriors))


class Engine:
    """One audio stream: push chunks, get posteriors and detections. The state lives on."""

    def __init__(self, bundle: Bundle, detector: DetectorConfig | None = None):
        self.bundle = bundle
        self.labels = bundle.labels
        self.net = RecurrentNet(bundle.model)
        config = detector or DetectorConfig(frame_ms=bundle.frontend.hop_ms)
        self.detector = Detector(self.labels, config)
        self.frontend = StreamingMfcc(bundle.frontend, Mfcc(bundle.frontend))
        self.reset()

    def reset(self) -> None:
        self.state = self.net.zero_state(1)
        self.frontend.reset()
        self.detector.reset()
        self.frames_seen = 0

    def process(self, chunk: np.ndarray) -> ChunkResult:
        """A chunk of int16 or float samples at the model's sample rate (16 kHz)."""
        features = self.frontend.push(chunk)
        first = self.frames_seen
        if not len(features):
            return ChunkResult(np.zeros((0, len(self.labels)), np.float32), [], first)
        posteriors, self.state = self.net.run(features[:, None, :], self.state)
        posteriors = posteriors[:, 0, :]
        self.frames_seen += len(features)
        c = self.bundle.frontend
        detections = self.detector.run(posteriors, first, c.window_ms)
        return ChunkResult(posteriors, detections, first)

    @property
    def seconds_seen(self) -> float:
        c = self.bundle.frontend
        return (self.frames_seen * c.hop + max(0, c.window - c.hop)) / c.sample_rate if self.frames_seen else 0.0
