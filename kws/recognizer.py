"""Offline inference on the engine's network: whole clips in batches, whole sequences at once.

A clip's class is the posterior at its last frame, with the network started from a
zero state at the clip's first frame. Clips of the same length run together as the
streams of one batch, so a folder of 1 s clips costs a few compiled calls.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from kws.bundle import Bundle
from kws.engine import RecurrentNet, make_net
from kws.frontend import Mfcc


def clip_posteriors(net: RecurrentNet, features: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Last-frame posteriors for each feature array; arrays of equal length share a batch."""
    n_classes = net.network.n_classes
    out = np.zeros((len(features), n_classes), np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(features):
        by_length[len(f)].append(i)
    for length, indices in by_length.items():
        if length == 0:
            continue  # no frame: no evidence (the reader refuses clips this short)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = np.stack([features[i] for i in chunk], axis=1)  # (T, N, F)
            posteriors, _ = net.run(batch, net.zero_state(len(chunk)))
            out[chunk] = posteriors[-1]
    return out


def sequence_posteriors(net: RecurrentNet, features: np.ndarray) -> np.ndarray:
    """(T, F) -> (T, classes): the whole sequence in one call from a zero state."""
    if len(features) == 0:
        return np.zeros((0, net.network.n_classes), np.float32)
    return net.run(features[:, None, :], net.zero_state(1))[0][:, 0]


def classify_audio(bundle: Bundle, signals: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    mfcc = Mfcc(bundle.frontend)
    return clip_posteriors(make_net(bundle), [mfcc(s) for s in signals], batch_size)


def recording_posterior(engine, blocks) -> np.ndarray:
    """The last frame's posterior of a recording fed block by block from a zero state:
    what `clip_posteriors` gives for the whole file, in memory bounded by one block."""
    engine.reset()
    last = np.zeros(len(engine.labels), np.float32)
    for block in blocks:
        posteriors = engine.process(block).posteriors
        if len(posteriors):
            last = posteriors[-1]
    return last


def top_k(posterior: np.ndarray, labels: list[str], k: int = 2) -> list[tuple[str, float]]:
    order = np.argsort(posterior)[::-1][:k]
    return [(labels[i], float(posterior[i])) for i in order]
