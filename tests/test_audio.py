import numpy as np
import pytest
import soundfile as sf

from kws.audio import AudioError, audio_duration_s, iter_blocks, load_audio

SR = 16000


def tone(seconds=0.5, rate=SR, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_reads_any_wav_sample_format(tmp_path, subtype):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, tone(), SR, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and len(audio) == 8000
    assert np.allclose(audio, tone(), atol=0.02)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_reads_flac_and_ogg(tmp_path, fmt):
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, tone(), SR, format=fmt)
    audio = load_audio(path)
    assert abs(len(audio) - 8000) < 50 and np.abs(audio).max() > 0.3


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resamples_to_16k(tmp_path, rate):
    path = tmp_path / "r.wav"
    sf.write(path, tone(1.0, rate, 1000.0), rate)
    audio = load_audio(path)
    assert abs(len(audio) - SR) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / len(audio) - 1000.0) < 5


def test_mixes_stereo_to_mono(tmp_path):
    left, right = tone(), np.zeros(8000, np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    assert np.allclose(load_audio(path), left / 2, atol=1e-6)


def write_float(path, samples):
    sf.write(path, samples, SR, subtype="FLOAT")
    return path


def truncated_wav(tmp_path):
    path = tmp_path / "truncated.wav"
    sf.write(path, tone(), SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])
    return path


def header_only_wav(tmp_path):
    path = tmp_path / "header_only.wav"
    sf.write(path, tone(), SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44])
    return path


def cut_wav(tmp_path, keep: float):
    """A 1 s 16-bit WAV cut after `keep` of its samples and one byte more (mid-sample)."""
    path = tmp_path / "cut.wav"
    sf.write(path, tone(1.0), SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + int(keep * 32000) + 1])
    return path


def test_truncated_wav_is_refused_by_every_reader(tmp_path):
    path = cut_wav(tmp_path, 0.5)
    for read in (load_audio, audio_duration_s, lambda p: list(iter_blocks(p))):
        with pytest.raises(AudioError, match="truncated"):
            read(path)


def written(path, data):
    path.write_bytes(data)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "nope.wav", "no such file"),
    "empty": (lambda d: written(d / "empty.wav", b""), "empty file"),
    "not audio": (lambda d: written(d / "notes.wav", b"hello, not audio\n" * 20), "not a readable audio file"),
    "truncated header": (truncated_wav, "not a readable audio file"),
    "no data": (header_only_wav, "truncated: the header promises 16000 bytes of samples, the file holds 0"),
    "cut mid-sample": (lambda d: cut_wav(d, 0.5), "truncated: the header promises 32000 bytes of samples, the file holds 16001"),
    "empty data chunk": (lambda d: write_float(d / "nothing.wav", np.zeros(0, np.float32)), "no audio samples"),
    "nan": (lambda d: write_float(d / "nan.wav", np.r_[tone(), np.nan].astype(np.float32)), "NaN or infinite"),
    "inf": (lambda d: write_float(d / "inf.wav", np.r_[np.inf, tone()].astype(np.float32)), "NaN or infinite"),
    "shorter than a frame": (lambda d: write_float(d / "short.wav", tone(0.01)), "too short"),
    "directory": (lambda d: (d / "adir").mkdir() or d / "adir", "is a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_gives_one_clear_error(tmp_path, case):
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_iter_blocks_matches_whole_file(tmp_path):
    rate = 44100
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(rate * 3)).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, signal, rate, subtype="FLOAT")
    blocks = np.concatenate(list(iter_blocks(path, block_s=0.37)))
    whole = load_audio(path)
    assert abs(len(blocks) - len(whole)) <= 2
    n = min(len(blocks), len(whole))
    assert np.max(np.abs(blocks[1000 : n - 1000] - whole[1000 : n - 1000])) < 1e-3
