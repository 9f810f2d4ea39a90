"""The classifiers in Keras (training and export only; the runtime never imports this).

A stack of GRU or LSTM layers over MFCC frames, a per-frame softmax.

Both architectures come out of `build_model`, so they share input, normalisation,
head and training loop; only the recurrent layer class differs. The per-coefficient
feature normalisation is a layer of the model, so callers feed raw MFCCs.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from kws.network import Network, network_from_config

ARCHITECTURES = ("gru", "lstm")


# What TensorFlow needs to run a layer on its fused cuDNN kernel on a GPU (Keras's GRU and
# LSTM docs; keras/src/backend/tensorflow/rnn.py `cudnn_ok`): stated here, not left to
# defaults, and checked by tests/test_train.py from the built layers. Dropout stays between
# layers (a Dropout layer), never inside the recurrence; the input is never masked.
CUDNN_ARGUMENTS = {"activation": "tanh", "recurrent_activation": "sigmoid", "recurrent_dropout": 0.0, "unroll": False,
                   "use_bias": True, "use_cudnn": "auto"}
CUDNN_GRU_ARGUMENTS = {**CUDNN_ARGUMENTS, "reset_after": True}


def recurrent_layer(arch: str, units: int, name: str, stateful: bool = False) -> keras.layers.Layer:
    if arch == "gru":
        return keras.layers.GRU(units, return_sequences=True, stateful=stateful, name=name, **CUDNN_GRU_ARGUMENTS)
    if arch == "lstm":
        return keras.layers.LSTM(units, return_sequences=True, stateful=stateful, name=name, **CUDNN_ARGUMENTS)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def build_model(
    arch: str,
    n_features: int,
    n_classes: int,
    units: int = 128,
    layers: int = 2,
    dropout: float = 0.1,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    batch_size: int | None = None,
    stateful: bool = False,
) -> keras.Model:
    """(batch, time, n_features) MFCCs -> (batch, time, n_classes) posteriors.

    `stateful=True` (with a fixed `batch_size`) builds the same network for
    chunk-by-chunk inference with Keras carrying the state between calls.
    """
    inputs = keras.Input(shape=(None, n_features), batch_size=batch_size, name="mfcc")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")(inputs)
    for i in range(layers):
        x = recurrent_layer(arch, units, f"{arch}_{i}", stateful)(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="posteriors")(x)
    return keras.Model(inputs, outputs, name=f"kws_{arch}_{layers}x{units}")


def stateful_copy(model: keras.Model, arch: str, units: int, layers: int) -> keras.Model:
    """The same trained network as a batch-1 stateful model (Keras keeps the state)."""
    n_features = model.input_shape[-1]
    n_classes = model.output_shape[-1]
    mean, variance = normalization_stats(model)
    twin = build_model(arch, n_features, n_classes, units, layers, dropout=0.0, batch_size=1, stateful=True,
                       mean=mean, variance=variance)
    by_name = {layer.name: layer for layer in model.layers}
    for layer in twin.layers:
        if layer.weights and layer.name in by_name:
            layer.set_weights(by_name[layer.name].get_weights())
    return twin


def network_of(model: keras.Model) -> Network:
    """The live Keras model as the runtime's `Network` (the same checks as a loaded file)."""
    return network_from_config(model.get_config(), {layer.name: layer.get_weights() for layer in model.layers})


def load_keras_model(name_or_path: str | os.PathLike) -> keras.Model:
    """A bundle's model as a Keras model (fine-tuning, Keras baselines), after the bundle's checks."""
    from kws.bundle import MODEL_FILE, BundleError, load_bundle

    bundle = load_bundle(name_or_path)
    try:
        return keras.saving.load_model(bundle.path / MODEL_FILE, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt archive; report it as one
        raise BundleError(f"{bundle.path / MODEL_FILE}: cannot load the Keras model ({type(error).__name__})") from None


def normalization_stats(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    layer = model.get_layer("normalize")
    return np.asarray(layer.mean, np.float64).reshape(-1), np.asarray(layer.variance, np.float64).reshape(-1)
