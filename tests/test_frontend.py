import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kws.audio import load_audio
from kws.frontend import Mfcc, MfccConfig, StreamingMfcc

CONFIG = MfccConfig()
MFCC = Mfcc(CONFIG)


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (envelope * (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n))).astype(np.float32)


def test_one_second_gives_98_frames_of_40_coefficients():
    assert MFCC(np.zeros(16000, np.float32) + 1e-3).shape == (98, 40)
    assert CONFIG.n_frames(16000) == 98 and CONFIG.n_frames(479) == 0 and CONFIG.n_frames(480) == 1


def librosa_mfcc(y: np.ndarray) -> np.ndarray:
    c = CONFIG
    mel = librosa.feature.melspectrogram(
        y=y, sr=c.sample_rate, n_fft=c.window, hop_length=c.hop, win_length=c.window, window="hann",
        center=False, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, power=2.0,
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=c.n_mfcc, dct_type=2, norm="ortho").T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offline_mfcc_matches_librosa(seed):
    y = speechlike(1.3, seed)
    ours, theirs = MFCC(y), librosa_mfcc(y)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-3 * np.abs(theirs).max())


def test_matches_librosa_on_espeak_speech(spoken):
    y = load_audio(spoken["yes"])
    theirs = librosa_mfcc(y)
    np.testing.assert_allclose(MFCC(y), theirs, atol=2e-3 * np.abs(theirs).max())


def stream_in_chunks(signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    streaming = StreamingMfcc(CONFIG)
    out, position, i = [], 0, 0
    while position < len(signal):
        size = sizes[i % len(sizes)]
        out.append(streaming.push(signal[position : position + size]))
        position += size
        i += 1
    return np.concatenate(out) if out else np.zeros((0, CONFIG.n_mfcc), np.float32)


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
    sizes=st.lists(st.one_of(st.integers(1, 200), st.integers(1, 50_000)), min_size=1, max_size=30),
)
def test_streaming_equals_offline_for_any_chunking(seconds, seed, sizes):
    signal = speechlike(seconds, seed)
    offline = MFCC(signal)
    streamed = stream_in_chunks(signal, sizes)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-3)


def test_streaming_accepts_int16_like_offline():
    signal = (speechlike(1.0, 3) * 32767).astype(np.int16)
    np.testing.assert_allclose(stream_in_chunks(signal, [777]), MFCC(signal), atol=1e-3)


def test_one_sample_at_a_time():
    signal = speechlike(0.1, 4)
    np.testing.assert_allclose(stream_in_chunks(signal, [1]), MFCC(signal), atol=1e-3)


def test_streaming_reset_starts_a_new_stream():
    streaming = StreamingMfcc(CONFIG)
    streaming.push(speechlike(0.0123, 5))
    streaming.reset()
    signal = speechlike(0.5, 6)
    np.testing.assert_allclose(streaming.push(signal), MFCC(signal), atol=1e-3)
