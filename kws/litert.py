"""An exported LiteRT (TFLite) streaming model, run by the `ai-edge-litert` interpreter.

`kws export` (training/export.py) writes `X.tflite` and `X.json` beside it. One call of
the model is one 10 ms hop: it takes one standardised MFCC frame and the recurrent
state, and returns the posteriors and the new state (the state lives outside the
model, with the caller). The JSON holds what a caller on any platform needs besides
the file: labels, the frontend to the last matrix, the tensors' names, indices, shapes
and quantisation, the state's order and the detector settings.

Here the JSON is read back into a `Bundle` (`load_exported`), and `LiteRtNet` has the
interface of `kws.engine.RecurrentNet` (`run`, `zero_state`), so `Engine` streams an
exported file with the same frontend and detector as a bundle:
`kws stream FILE --model X.tflite`, `kws listen --model X.tflite`.

Nothing here imports TensorFlow; the interpreter is imported when a model is opened.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.bundle import Bundle, BundleError, sha256_file
from kws.errors import KwsError, stderr_discarded
from kws.frontend import MfccConfig

FORMAT = "kws-litert-stream"
FORMAT_VERSION = 1
SUFFIX = ".tflite"
SIGNATURE = "serving_default"
INPUT = "mfcc"  # one standardised MFCC frame, (1, n_mfcc)
OUTPUT = "posteriors"  # softmax over the labels, (1, classes)
LITERT_MISSING = "running a .tflite model needs the LiteRT interpreter: pip install ai-edge-litert"


def state_names(arch: str, n_layers: int) -> list[str]:
    """The state inputs in the engine's order: per layer h (GRU) or h, c (LSTM)."""
    kinds = ("h", "c") if arch == "lstm" else ("h",)
    return [f"{kind}{layer}" for layer in range(n_layers) for kind in kinds]


def next_name(state: str) -> str:
    """The output that carries a state input's value for the next hop."""
    return f"next_{state}"


def is_exported(name_or_path) -> bool:
    return str(name_or_path).endswith(SUFFIX)


def spec_path(model: str | os.PathLike) -> Path:
    return Path(model).with_suffix(".json")


@dataclass
class ExportedNetwork:
    """What the runtime needs of an exported model: its file and the JSON's shapes and standardisation."""

    path: Path
    arch: str
    units: list[int]
    n_features: int
    n_classes: int
    n_params: int
    mean: np.ndarray  # (features,) float32: the input is (mfcc - mean) * scale
    scale: np.ndarray
    quantization: str
    states: list[str] = field(default_factory=list)


def load_exported(path: str | os.PathLike) -> Bundle:
    """`X.tflite` and the `X.json` beside it -> a Bundle whose `network` is an `ExportedNetwork`."""
    path = Path(path)
    meta_path = spec_path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    if not meta_path.is_file():
        raise BundleError(f"{path}: {meta_path.name} is missing beside it (kws export writes both)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{meta_path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a kws export (format {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{meta_path}: format version {meta['format_version']} is newer than this kws reads ({FORMAT_VERSION})")
    if meta.get("tflite_sha256") != sha256_file(path):
        raise BundleError(f"{path}: does not match {meta_path.name} (checksum differs)")
    try:
        model, frontend = meta["model"], meta["frontend"]
        config = MfccConfig.from_dict({key: frontend[key] for key in MfccConfig.__dataclass_fields__})
        network = ExportedNetwork(
            path=path, arch=model["arch"], units=[int(u) for u in model["units"]], n_features=int(model["n_features"]),
            n_classes=len(meta["labels"]), n_params=int(model["n_params"]),
            mean=np.asarray(frontend["mean"], np.float32), scale=np.asarray(frontend["scale"], np.float32),
            quantization=meta["quantization"]["mode"], states=[s["name"] for s in meta["states"]])
    except (KeyError, TypeError) as error:
        raise BundleError(f"{meta_path}: missing or bad field ({error})") from None
    return Bundle(labels=list(meta["labels"]), frontend=config, arch=network.arch, units=network.units[0],
                  layers=len(network.units), path=path, metadata=meta.get("training", {}), detector=meta.get("detector"),
                  network=network)


def open_interpreter(model: str | os.PathLike | bytes, threads: int = 1):
    """The LiteRT interpreter on a model file (or its bytes), tensors allocated; a KwsError without ai-edge-litert."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise KwsError(LITERT_MISSING) from None
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    with stderr_discarded():
        interpreter = Interpreter(**source, num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def tensor_details(interpreter) -> tuple[dict, dict]:
    """The serving signature's inputs and outputs, each name -> the interpreter's tensor details."""
    runner = interpreter.get_signature_runner(SIGNATURE)
    return runner.get_input_details(), runner.get_output_details()


class _Port:
    """One tensor of the model: its index and, for an integer tensor, its quantisation."""

    def __init__(self, details: dict):
        self.index = details["index"]
        self.dtype = details["dtype"]
        scale, zero_point = details["quantization"]
        self.quantized = np.issubdtype(self.dtype, np.integer)
        self.scale, self.zero_point = np.float32(scale or 1.0), int(zero_point)
        info = np.iinfo(self.dtype) if self.quantized else None
        self.low, self.high = (info.min, info.max) if info else (0, 0)

    def encode(self, value: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return value
        return np.clip(np.round(value / self.scale) + self.zero_point, self.low, self.high).astype(self.dtype)

    def decode(self, value: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return value
        return ((value.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


class LiteRtNet:
    """An exported model in the LiteRT interpreter, with the interface of `kws.engine.RecurrentNet`:
    `run(features (T, N, F), state) -> (posteriors (T, N, C), new state)`. The model takes one
    frame of one stream per call; N streams are run one after another, each with its own state.
    States are float32 (N, units) arrays as the engine's; for an int8 model they are quantised
    on the way in and dequantised on the way out, as a caller on a board would requantise them."""

    def __init__(self, network: ExportedNetwork, threads: int = 1):
        self.network = network
        self.interpreter = open_interpreter(network.path, threads)
        inputs, outputs = tensor_details(self.interpreter)
        expected_in, expected_out = {INPUT, *network.states}, {OUTPUT, *map(next_name, network.states)}
        if set(inputs) != expected_in or set(outputs) != expected_out:
            raise BundleError(f"{network.path}: its tensors ({', '.join(sorted(inputs))} -> {', '.join(sorted(outputs))}) "
                              f"are not those its JSON describes")
        self._input = _Port(inputs[INPUT])
        self._output = _Port(outputs[OUTPUT])
        self._states = [(_Port(inputs[name]), _Port(outputs[next_name(name)])) for name in network.states]
        self._mean, self._scale = network.mean, network.scale
        self._per_layer = 2 if network.arch == "lstm" else 1

    def zero_state(self, n: int = 1) -> list[tuple[np.ndarray, ...]]:
        return [tuple(np.zeros((n, units), np.float32) for _ in range(self._per_layer)) for units in self.network.units]

    def step(self, frame: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One hop of one stream: a standardised frame (1, F) and the flat state list -> ((1, C), new flat state)."""
        interpreter = self.interpreter
        interpreter.set_tensor(self._input.index, self._input.encode(frame))
        for (port, _), value in zip(self._states, state):
            interpreter.set_tensor(port.index, port.encode(value))
        interpreter.invoke()
        new_state = [out.decode(interpreter.get_tensor(out.index)) for _, out in self._states]
        return self._output.decode(interpreter.get_tensor(self._output.index)), new_state

    def run(self, features: np.ndarray, state: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, list]:
        x = (np.asarray(features, np.float32) - self._mean) * self._scale
        steps, n = x.shape[0], x.shape[1]
        posteriors = np.empty((steps, n, self.network.n_classes), np.float32)
        flat = [np.array(a, np.float32) for layer in state for a in layer]  # each (N, units), a copy
        for i in range(n):
            stream = [a[i : i + 1] for a in flat]
            for t in range(steps):
                posteriors[t, i : i + 1], stream = self.step(x[t, i : i + 1], stream)
            for a, value in zip(flat, stream):
                a[i : i + 1] = value
        k = self._per_layer
        return posteriors, [tuple(flat[j : j + k]) for j in range(0, len(flat), k)]
