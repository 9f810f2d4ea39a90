"""A trained network as plain NumPy arrays, read from a Keras 3 `.keras` file without Keras.

A `.keras` file is a zip holding `config.json` (the layer graph) and
`model.weights.h5` (the weights). The runtime reads both with `zipfile`, `json` and
h5py, so it never imports TensorFlow. The architecture it finds is checked against
the one network kws runs (input -> Normalization -> GRU or LSTM layers, optional
Dropout -> Dense softmax per frame); anything else is refused with one line.

Training builds the same `Network` from a live Keras model (`kws.models.network_of`),
through the same `network_from_config`, so the architecture checks and the gate
order live here only.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECURRENT = ("GRU", "LSTM")


class NetworkError(ValueError):
    """A model file that is not a network kws can run; the message says what differs."""


@dataclass
class GruWeights:
    kernel: np.ndarray  # (in, 3u), gates z, r, h
    recurrent: np.ndarray  # (u, 3u)
    input_bias: np.ndarray  # (3u,)
    recurrent_bias: np.ndarray  # (3u,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    @property
    def n_params(self) -> int:
        return sum(a.size for a in (self.kernel, self.recurrent, self.input_bias, self.recurrent_bias))

    def zero_state(self, n: int) -> tuple[np.ndarray, ...]:
        return (np.zeros((n, self.units), np.float32),)


@dataclass
class LstmWeights:
    kernel: np.ndarray  # (in, 4u), gates i, f, c, o
    recurrent: np.ndarray  # (u, 4u)
    bias: np.ndarray  # (4u,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    @property
    def n_params(self) -> int:
        return sum(a.size for a in (self.kernel, self.recurrent, self.bias))

    def zero_state(self, n: int) -> tuple[np.ndarray, ...]:
        return np.zeros((n, self.units), np.float32), np.zeros((n, self.units), np.float32)


@dataclass
class Network:
    """Feature normalisation, the recurrent layers and the per-frame softmax head."""

    arch: str  # "gru" or "lstm"
    mean: np.ndarray  # (features,)
    variance: np.ndarray  # (features,)
    layers: list  # GruWeights or LstmWeights, input first
    dense_kernel: np.ndarray  # (units, classes)
    dense_bias: np.ndarray  # (classes,)

    @property
    def n_features(self) -> int:
        return self.layers[0].kernel.shape[0]

    @property
    def n_classes(self) -> int:
        return self.dense_kernel.shape[1]

    @property
    def n_params(self) -> int:
        """Trainable weights, as Keras counts them (the normalisation constants are not weights)."""
        return sum(layer.n_params for layer in self.layers) + self.dense_kernel.size + self.dense_bias.size


def as_f32(value) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(value), dtype=np.float32)


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise NetworkError(problem)


def _recurrent_weights(kind: str, config: dict, weights: list[np.ndarray]) -> GruWeights | LstmWeights:
    name = config.get("name")
    _require(config.get("activation") == "tanh" and config.get("recurrent_activation") == "sigmoid",
             f"layer {name}: only tanh/sigmoid activations are supported")
    _require(config.get("use_bias", True), f"layer {name}: layers without bias are not supported")
    _require(not config.get("go_backwards", False), f"layer {name}: backwards layers are not supported")
    _require(config.get("return_sequences", False), f"layer {name}: must return sequences (one output per frame)")
    _require(len(weights) == 3, f"layer {name}: expected 3 weight arrays, found {len(weights)}")
    kernel, recurrent, bias = (as_f32(w) for w in weights)
    units = int(config["units"])
    gates = 3 if kind == "GRU" else 4
    _require(recurrent.shape == (units, gates * units), f"layer {name}: recurrent weights of shape {recurrent.shape}")
    if kind == "GRU":
        _require(config.get("reset_after", True), f"layer {name}: only GRU reset_after=True (the Keras default) is supported")
        _require(bias.shape == (2, 3 * units), f"layer {name}: bias of shape {bias.shape}")
        return GruWeights(kernel, recurrent, as_f32(bias[0]), as_f32(bias[1]))
    _require(bias.shape == (4 * units,), f"layer {name}: bias of shape {bias.shape}")
    return LstmWeights(kernel, recurrent, bias)


def network_from_config(config: dict, weights: dict[str, list[np.ndarray]]) -> Network:
    """`config`: a Keras functional model's config (its "config" part); `weights`: each
    layer's weight arrays by layer name, in Keras's own order."""
    layers = config.get("layers") or []
    kinds = [layer.get("class_name") for layer in layers]
    _require(kinds[:2] == ["InputLayer", "Normalization"],
             f"expected an input and a Normalization layer first, found {', '.join(map(str, kinds[:2])) or 'nothing'}")
    _require(len(kinds) > 3 and kinds[-1] == "Dense", "expected a Dense softmax head last")
    body = [layer for layer in layers[2:-1] if layer["class_name"] != "Dropout"]
    body_kinds = {layer["class_name"] for layer in body}
    _require(len(body_kinds) == 1 and body_kinds <= set(RECURRENT),
             f"expected GRU or LSTM layers (one kind), found {', '.join(sorted(map(str, body_kinds))) or 'none'}")
    kind = body_kinds.pop()
    norm = layers[1]["config"]
    _require(norm.get("mean") is not None and norm.get("variance") is not None and not norm.get("invert", False),
             "the Normalization layer must hold its mean and variance as constants")
    recurrent = [_recurrent_weights(kind, layer["config"], weights.get(layer["config"]["name"], [])) for layer in body]
    head = layers[-1]["config"]
    _require(head.get("activation") == "softmax" and head.get("use_bias", True),
             "the Dense head must be a softmax with bias")
    dense = weights.get(head["name"], [])
    _require(len(dense) == 2, f"layer {head['name']}: expected kernel and bias")
    network = Network(kind.lower(), np.asarray(norm["mean"], np.float64).reshape(-1),
                      np.asarray(norm["variance"], np.float64).reshape(-1), recurrent, as_f32(dense[0]), as_f32(dense[1]))
    sizes = [network.mean.size] + [layer.units for layer in recurrent]
    for layer, n_in in zip(recurrent, sizes):
        _require(layer.kernel.shape[0] == n_in, f"a {kind} layer takes {layer.kernel.shape[0]} inputs, expected {n_in}")
    _require(network.dense_kernel.shape[0] == sizes[-1], "the Dense head does not match the last layer's units")
    return network


def _snake_case(name: str) -> str:
    """Keras's own rule: `InputLayer` -> `input_layer`, `GRU` -> `gru`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _h5_layer_paths(layers: list[dict]) -> dict[str, str]:
    """Where each layer's weights sit in model.weights.h5. The .keras format names them by
    class (`gru`, `gru_1`, `dense`, ...) in layer order, not by the layers' own names."""
    counts: dict[str, int] = {}
    paths = {}
    for layer in layers:
        base = _snake_case(layer["class_name"])
        count = counts.get(base, 0)
        counts[base] = count + 1
        paths[layer["config"]["name"]] = f"layers/{base}" + (f"_{count}" if count else "")
    return paths


def _h5_weights(h5, path: str) -> list[np.ndarray]:
    for group in (f"{path}/cell/vars", f"{path}/vars"):
        if group in h5 and len(h5[group]):
            return [np.asarray(h5[group][str(i)]) for i in range(len(h5[group]))]
    return []


def read_keras_file(path: str | Path) -> Network:
    """A `.keras` file -> Network, with zipfile, json and h5py only."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_bytes = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise NetworkError(f"not a Keras 3 model file ({error})") from None
    model_config = config.get("config", {})
    layers = model_config.get("layers") or []
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            weights = {name: _h5_weights(h5, where) for name, where in _h5_layer_paths(layers).items()}
    except (OSError, KeyError, TypeError) as error:
        raise NetworkError(f"unreadable weights ({error})") from None
    return network_from_config(model_config, weights)
