"""The real-time streaming engine.

Audio chunks of any length go in; each 10 ms hop costs one MFCC frame and one
recurrent cell step per layer, with the state (GRU: h; LSTM: h and c) carried over
for as long as the stream lives. The fast path runs the trained Keras weights in
code compiled by numba (no TensorFlow): per chunk, one call for the MFCC frames, one for the whole
network and one for the detector. A Keras call costs milliseconds; a hop here costs
tens of microseconds.

`RecurrentNet` steps N independent streams at once (their states are rows of one
matrix); `Engine` is one stream: frontend + network + detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from kws.audio import to_float32
from kws.bundle import Bundle
from kws.detector import BatchDetector, Detection, Detector, DetectorConfig, frame_time, frame_times
from kws.frontend import Mfcc, StreamingMfcc, frame_view
from kws.network import GruWeights, Network, as_f32


@njit(cache=True)
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@njit(cache=True)
def _project(x, kernel, bias):
    """(T, N, F) @ (F, K) + bias as one 2-D product -> (T, N, K)."""
    steps, n = x.shape[0], x.shape[1]
    flat = np.ascontiguousarray(x).reshape(steps * n, x.shape[2]) @ kernel
    return (flat + bias).reshape(steps, n, kernel.shape[1])


@njit(cache=True)
def _dense_softmax(x, kernel, bias):
    logits = _project(x, kernel, bias)
    for t in range(logits.shape[0]):
        for i in range(logits.shape[1]):
            row = logits[t, i]
            row -= row.max()
            np.exp(row, row)
            row /= row.sum()
    return logits


@njit(cache=True)
def _gru_scan(x, h, kernel, input_bias, recurrent, recurrent_bias):
    """x (T, N, F) layer input; h (N, u). Keras GRU, reset_after=True, gates z, r, h."""
    projected = _project(x, kernel, input_bias)
    steps, n, u = projected.shape[0], h.shape[0], h.shape[1]
    out = np.empty((steps, n, u), np.float32)
    h = h.copy()
    for t in range(steps):
        rec = h @ recurrent
        for i in range(n):
            for j in range(u):
                z = _sigmoid(projected[t, i, j] + rec[i, j] + recurrent_bias[j])
                r = _sigmoid(projected[t, i, u + j] + rec[i, u + j] + recurrent_bias[u + j])
                candidate = np.tanh(projected[t, i, 2 * u + j] + r * (rec[i, 2 * u + j] + recurrent_bias[2 * u + j]))
                h[i, j] = candidate + z * (h[i, j] - candidate)
        out[t] = h
    return out, h


@njit(cache=True)
def _lstm_scan(x, h, c, kernel, bias, recurrent):
    """x (T, N, F) layer input; h, c (N, u). Keras LSTM, gates i, f, c, o."""
    projected = _project(x, kernel, bias)
    steps, n, u = projected.shape[0], h.shape[0], h.shape[1]
    out = np.empty((steps, n, u), np.float32)
    h, c = h.copy(), c.copy()
    for t in range(steps):
        z = h @ recurrent
        for i in range(n):
            for j in range(u):
                gi = _sigmoid(projected[t, i, j] + z[i, j])
                gf = _sigmoid(projected[t, i, u + j] + z[i, u + j])
                gc = np.tanh(projected[t, i, 2 * u + j] + z[i, 2 * u + j])
                go = _sigmoid(projected[t, i, 3 * u + j] + z[i, 3 * u + j])
                c[i, j] = gf * c[i, j] + gi * gc
                h[i, j] = go * np.tanh(c[i, j])
        out[t] = h
    return out, h, c


@njit(cache=True)
def _gru_net(x, hs, kernels, input_biases, recurrents, recurrent_biases, dense_kernel, dense_bias):
    """All GRU layers and the softmax head in one compiled call (one dispatch per chunk)."""
    sequence = x
    new_hs = []
    for i in range(len(kernels)):
        sequence, h = _gru_scan(sequence, hs[i], kernels[i], input_biases[i], recurrents[i], recurrent_biases[i])
        new_hs.append(h)
    return _dense_softmax(sequence, dense_kernel, dense_bias), new_hs


@njit(cache=True)
def _lstm_net(x, hs, cs, kernels, biases, recurrents, dense_kernel, dense_bias):
    """All LSTM layers and the softmax head in one compiled call (one dispatch per chunk)."""
    sequence = x
    new_hs, new_cs = [], []
    for i in range(len(kernels)):
        sequence, h, c = _lstm_scan(sequence, hs[i], cs[i], kernels[i], biases[i], recurrents[i])
        new_hs.append(h)
        new_cs.append(c)
    return _dense_softmax(sequence, dense_kernel, dense_bias), new_hs, new_cs


class RecurrentNet:
    """The trained network compiled by numba, for N streams at once."""

    def __init__(self, network: Network):
        self.network = network
        scale = 1.0 / np.maximum(np.sqrt(network.variance), 1e-7)
        shift = -network.mean * scale
        self.dense_kernel, self.dense_bias = network.dense_kernel, network.dense_bias
        # Fold the input normalisation into the first layer's input projection (a copy:
        # the network itself stays as trained).
        first, *rest = network.layers
        kernel = as_f32(scale[:, None] * first.kernel)
        if isinstance(first, GruWeights):
            first = replace(first, kernel=kernel, input_bias=as_f32(first.input_bias + shift @ first.kernel))
        else:
            first = replace(first, kernel=kernel, bias=as_f32(first.bias + shift @ first.kernel))
        self.layers = [first, *rest]
        self._kernels = tuple(layer.kernel for layer in self.layers)
        self._recurrents = tuple(layer.recurrent for layer in self.layers)
        if isinstance(first, GruWeights):
            self._input_biases = tuple(layer.input_bias for layer in self.layers)
            self._recurrent_biases = tuple(layer.recurrent_bias for layer in self.layers)
        else:
            self._input_biases = tuple(layer.bias for layer in self.layers)

    def zero_state(self, n: int = 1) -> list[tuple[np.ndarray, ...]]:
        return [layer.zero_state(n) for layer in self.layers]

    def run(self, features: np.ndarray, state: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, list]:
        """features (T, N, F) -> posteriors (T, N, C). Layer by layer: each layer's input
        projection is one matrix product over all T frames; only the recurrence loops.
        The whole network is one call compiled by numba."""
        x = np.ascontiguousarray(features, np.float32)
        hs = tuple(layer_state[0] for layer_state in state)
        if isinstance(self.layers[0], GruWeights):
            posteriors, new_hs = _gru_net(x, hs, self._kernels, self._input_biases, self._recurrents,
                                          self._recurrent_biases, self.dense_kernel, self.dense_bias)
            return posteriors, [(h,) for h in new_hs]
        cs = tuple(layer_state[1] for layer_state in state)
        posteriors, new_hs, new_cs = _lstm_net(x, hs, cs, self._kernels, self._input_biases, self._recurrents,
                                               self.dense_kernel, self.dense_bias)
        return posteriors, list(zip(new_hs, new_cs))


def make_net(bundle: Bundle):
    """The bundle's network runner: the numba engine, or for a model exported by `kws export`
    (a .tflite file) the LiteRT interpreter (kws/litert.py), with the same interface."""
    if isinstance(bundle.network, Network):
        return RecurrentNet(bundle.network)
    from kws.litert import LiteRtNet

    return LiteRtNet(bundle.network)


@dataclass
class ChunkResult:
    posteriors: np.ndarray  # (frames, classes) for the frames this chunk completed
    detections: list[Detection] = field(default_factory=list)
    first_frame: int = 0  # stream index of posteriors[0]

    @property
    def times_ms(self) -> np.ndarray:
        return frame_times(self.first_frame, len(self.posteriors))


def detector_config(bundle: Bundle, false_alarms_per_hour: float | None = None, **overrides) -> DetectorConfig:
    """The bundle's tuned detector settings (or the defaults), with overrides that are not None.

    With `false_alarms_per_hour` N, the settings are instead those of the point of the curve
    stored in the bundle (training.tune_detector) with the fewest misses at no more than N
    false alarms per hour; a bundle without a curve, or an N below the curve, is refused."""
    from kws.errors import KwsError

    known = set(DetectorConfig.__dataclass_fields__)
    chosen = bundle.detector or {}
    if false_alarms_per_hour is not None:
        curve = chosen.get("curve")
        if not curve:
            raise KwsError(f"{bundle.path}: the model stores no false-alarm curve to pick a detector setting from "
                           "(python -m training.tune_detector measures one); give --threshold instead")
        within = [point for point in curve if point["false_alarms_per_hour"] <= false_alarms_per_hour]
        if not within:
            lowest = min(point["false_alarms_per_hour"] for point in curve)
            raise KwsError(f"{bundle.path}: {false_alarms_per_hour:g} false alarms per hour is below the model's curve, "
                           f"whose fewest are {lowest:g} per hour")
        chosen = min(within, key=lambda point: (point["miss_rate"], point["false_alarms_per_hour"]))
    settings = {k: v for k, v in chosen.items() if k in known}
    settings["frame_ms"] = bundle.frontend.hop_ms
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return DetectorConfig(**settings)


class Engine:
    """One audio stream: push chunks, get posteriors and detections. The state lives on."""

    def __init__(self, bundle: Bundle, detector: DetectorConfig | None = None):
        self.bundle = bundle
        self.labels = bundle.labels
        self.net = make_net(bundle)
        config = detector or detector_config(bundle)
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


class StreamBatch:
    """N independent streams served together: their audio arrives in lockstep blocks
    (N, samples); one batched MFCC and one matrix step per layer serve them all."""

    def __init__(self, bundle: Bundle, n_streams: int, detector: DetectorConfig | None = None):
        if n_streams < 1:
            raise ValueError(f"n_streams must be >= 1, got {n_streams}")
        self.bundle, self.n = bundle, n_streams
        self.net = make_net(bundle)
        self.mfcc = Mfcc(bundle.frontend)
        self.detector = BatchDetector(bundle.labels, n_streams, detector or detector_config(bundle))
        self.state = self.net.zero_state(n_streams)
        self.pending = np.zeros((n_streams, 0), np.float32)
        self.frames_seen = 0

    def process(self, block: np.ndarray) -> tuple[np.ndarray, list[list[Detection]]]:
        """block (N, samples) of int16 or float samples -> posteriors (frames, N, classes) and
        each stream's detections."""
        c = self.bundle.frontend
        buffer = np.concatenate([self.pending, to_float32(block)], axis=1)
        n_frames = c.n_frames(buffer.shape[1])
        self.pending = buffer[:, n_frames * c.hop :]
        if not n_frames:
            return np.zeros((0, self.n, len(self.bundle.labels)), np.float32), [[] for _ in range(self.n)]
        frames = frame_view(buffer, n_frames, c.window, c.hop)  # (N, T, window)
        features = self.mfcc.frames_to_mfcc(frames.transpose(1, 0, 2))  # (T, N, F)
        posteriors, self.state = self.net.run(features, self.state)
        found: list[list[Detection]] = [[] for _ in range(self.n)]
        first_ms = frame_time(self.frames_seen, c.hop_ms, c.window_ms)
        for _, stream, detection in self.detector.run_frames(posteriors, first_ms):
            found[stream].append(detection)
        self.frames_seen += n_frames
        return posteriors, found
