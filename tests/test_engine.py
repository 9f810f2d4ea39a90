"""(a) Keras offline over the whole sequence == (b) Keras stateful chunk by chunk ==
(c) the engine's NumPy fast path, for random chunkings and both architectures."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kws.bundle import Bundle
from kws.engine import Engine, RecurrentNet
from kws.frontend import Mfcc, MfccConfig
from kws.models import build_model, network_of, stateful_copy

LABELS = ["silence", "unknown", "yes", "no", "up"]


def random_model(arch: str, seed: int = 0, units: int = 24, layers: int = 2):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(arch, 40, len(LABELS), units, layers, dropout=0.0,
                        mean=rng.normal(size=40) * 20, variance=rng.uniform(10, 400, 40))
    # Larger recurrent weights than Keras's init, so the state matters and errors would show.
    for layer in model.layers:
        if type(layer).__name__ in ("GRU", "LSTM"):
            kernel, recurrent, bias = layer.get_weights()
            layer.set_weights([kernel * 2, recurrent * 2, bias + 0.1])
    return model


MODELS = {arch: random_model(arch) for arch in ("gru", "lstm")}
BUNDLES = {arch: Bundle(LABELS, MfccConfig(), arch, 24, 2, network=network_of(m)) for arch, m in MODELS.items()}
STATEFUL = {arch: stateful_copy(m, arch, 24, 2) for arch, m in MODELS.items()}


def audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (t % 0.7 < 0.4) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def chunked(signal: np.ndarray, sizes: list[int]):
    position, i = 0, 0
    while position < len(signal):
        yield signal[position : position + sizes[i % len(sizes)]]
        position += sizes[i % len(sizes)]
        i += 1


def stateful_keras(arch: str, features: np.ndarray, sizes: list[int]) -> np.ndarray:
    model = STATEFUL[arch]
    for layer in model.layers:
        if hasattr(layer, "reset_state") and getattr(layer, "stateful", False):
            layer.reset_state()
    out = [np.asarray(model(chunk[None], training=False))[0] for chunk in chunked(features, sizes)]
    return np.concatenate(out)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seconds=st.floats(0.05, 2.5),
    seed=st.integers(0, 1000),
    sample_sizes=st.lists(st.integers(1, 12_000), min_size=1, max_size=12),
    frame_sizes=st.lists(st.integers(1, 60), min_size=1, max_size=12),
)
def test_offline_stateful_and_fast_path_agree(arch, seconds, seed, sample_sizes, frame_sizes):
    bundle = BUNDLES[arch]
    signal = audio(seconds, seed)
    features = Mfcc(bundle.frontend)(signal)
    offline = np.asarray(MODELS[arch].predict_on_batch(features[None]))[0]  # (a)
    stateful = stateful_keras(arch, features, frame_sizes)  # (b)
    engine = Engine(bundle)
    results = [engine.process(chunk) for chunk in chunked(signal, sample_sizes)]  # (c)
    fast = np.concatenate([r.posteriors for r in results])
    assert offline.shape == stateful.shape == fast.shape == (len(features), len(LABELS))
    np.testing.assert_allclose(stateful, offline, atol=1e-5)
    np.testing.assert_allclose(fast, offline, atol=1e-5)
    assert [r.first_frame for r in results] == list(np.cumsum([0] + [len(r.posteriors) for r in results[:-1]]))


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_state_is_carried_not_reset(arch):
    """Feeding the second half after the first differs from feeding it to a fresh engine."""
    bundle = BUNDLES[arch]
    signal = audio(2.0, 1)
    carried = Engine(bundle)
    carried.process(signal[:16000])
    second_after_first = carried.process(signal[16000:]).posteriors
    fresh = Engine(bundle).process(signal[16000 - 320 :]).posteriors
    assert np.abs(second_after_first - fresh[: len(second_after_first)]).max() > 1e-3


def test_reset_starts_over():
    engine = Engine(BUNDLES["gru"])
    signal = audio(1.0, 2)
    first = engine.process(signal).posteriors
    engine.reset()
    np.testing.assert_allclose(engine.process(signal).posteriors, first, atol=1e-6)
    assert engine.frames_seen == 98


def test_int16_and_float_give_the_same_posteriors():
    signal = audio(0.7, 3)
    as_int = (signal * 32768).clip(-32768, 32767).astype(np.int16)
    a = Engine(BUNDLES["gru"]).process(as_int).posteriors
    b = Engine(BUNDLES["gru"]).process(as_int.astype(np.float32) / 32768).posteriors
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batched_streams_equal_single_streams():
    net = RecurrentNet(BUNDLES["lstm"].network)
    mfcc = Mfcc()
    features = np.stack([mfcc(audio(0.5, s)) for s in range(5)], axis=1)  # (T, 5, F)
    together, _ = net.run(features, net.zero_state(5))
    for s in range(5):
        alone, _ = net.run(features[:, s : s + 1], net.zero_state(1))
        np.testing.assert_allclose(together[:, s], alone[:, 0], atol=1e-6)


def test_stream_batch_equals_separate_engines():
    from kws.engine import StreamBatch

    bundle = BUNDLES["gru"]
    signals = np.stack([audio(1.5, s) for s in range(4)])
    batch = StreamBatch(bundle, 4)
    outputs = [batch.process(signals[:, i : i + 480]) for i in range(0, signals.shape[1], 480)]
    together = np.concatenate([p for p, _ in outputs])
    for s in range(4):
        alone = Engine(bundle).process(signals[s]).posteriors
        np.testing.assert_allclose(together[:, s], alone, atol=1e-5)


def test_stream_batch_scales_int16_as_the_engine_does():
    from kws.engine import StreamBatch

    signals = np.stack([audio(0.6, s) for s in range(2)])
    as_int = (signals * 32768).clip(-32768, 32767).astype(np.int16)
    together, _ = StreamBatch(BUNDLES["gru"], 2).process(as_int)
    for s in range(2):
        alone = Engine(BUNDLES["gru"]).process(as_int[s]).posteriors
        np.testing.assert_allclose(together[:, s], alone, atol=1e-5)
