"""Offline inference with a bundle: whole clips in batches, whole sequences at once.

A clip's class is the posterior at its last frame, with the network started from a
zero state at the clip's first frame.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from kws.bundle import Bundle
from kws.frontend import Mfcc


def clip_posteriors(model, features: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Last-frame posteriors for each feature array; arrays of equal length share a batch."""
    if not features:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(features):
        by_length[len(f)].append(i)
    out = np.zeros((len(features), model.output_shape[-1]), np.float32)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = np.stack([features[i] for i in chunk])
            out[chunk] = np.asarray(model.predict_on_batch(batch))[:, -1, :]
    return out


def sequence_posteriors(model, features: np.ndarray) -> np.ndarray:
    """(T, F) -> (T, classes): the whole sequence in one call from a zero state."""
    if len(features) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.asarray(model.predict_on_batch(features[None]))[0]


def classify_audio(bundle: Bundle, signals: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    mfcc = Mfcc(bundle.frontend)
    return clip_posteriors(bundle.model, [mfcc(s) for s in signals], batch_size)


def top_k(posterior: np.ndarray, labels: list[str], k: int = 2) -> list[tuple[str, float]]:
    order = np.argsort(posterior)[::-1][:k]
    return [(labels[i], float(posterior[i])) for i in order]
