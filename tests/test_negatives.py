"""Negatives made from the real data (training/negatives.py), on the espeak-ng data set."""

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli
from training.data import COMMANDS, UNKNOWN, extra_training_clips, fit_clip, speaker_of, word_span
from training.negatives import build, command_clips, head, spliced_clip, tail

RATE = 16000


@pytest.fixture(scope="module")
def negatives(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("negatives")
    return out, build(tiny_dataset, out, seed=0)


def read(path):
    audio, rate = sf.read(path, dtype="float32")
    info = sf.info(path)
    assert (rate, info.channels, info.subtype, len(audio)) == (RATE, 1, "PCM_16", RATE), path
    return audio


def source_of(negative, data):
    """The command clip a negative was made from: its name holds the speaker, the word and
    the clip's place among the speaker's command clips."""
    speaker, rest = negative.stem.split("_nohash_")
    word, n = rest.rsplit("_", 1)
    source = command_clips(data)[speaker][int(n)]
    assert source.parent.name == word
    return source


def test_every_command_clip_gives_a_negative_of_each_kind_in_its_speakers_name(negatives, tiny_dataset):
    out, result = negatives
    sources = sorted(p for w in COMMANDS if (tiny_dataset / w).is_dir() for p in (tiny_dataset / w).glob("*.wav"))
    assert result == {"planned": 3 * len(sources), "made": 3 * len(sources), "skipped": 0, "already_there": 0}
    for kind in ("reversed", "partial", "spliced"):
        made = sorted((out / kind).glob("*.wav"))
        assert sorted(source_of(p, tiny_dataset) for p in made) == sources
        assert all(speaker_of(p) == speaker_of(source_of(p, tiny_dataset)) for p in made)
    # kws-train reads every one as an unknown word, also with --extra-unknown-only
    clips = extra_training_clips(out, ["_silence_", UNKNOWN, "yes", "no", "up"], unknown_only=True)
    assert len(clips) == 3 * len(sources) and {c.label for c in clips} == {UNKNOWN}


def test_reversed_is_the_clip_backwards_and_partial_keeps_a_part_of_the_word(negatives, tiny_dataset):
    out, _ = negatives
    for path in sorted((out / "reversed").glob("*.wav")):
        source = fit_clip(sf.read(source_of(path, tiny_dataset), dtype="float32")[0])  # padded to 1 s first
        np.testing.assert_allclose(read(path), source[::-1], atol=1.5 / 32768)
    for path in sorted((out / "partial").glob("*.wav")):
        source, part = fit_clip(sf.read(source_of(path, tiny_dataset), dtype="float32")[0]), read(path)
        start, end = word_span(source)
        kept = np.flatnonzero(part)  # the clip is zeros around the part
        assert 0.29 * (end - start) <= kept[-1] - kept[0] + 1 <= 0.51 * (end - start), path
        assert abs((kept[0] + kept[-1]) / 2 - RATE / 2) < 0.2 * (end - start), f"{path}: not centred"


def test_a_splice_joins_the_start_of_one_word_to_the_end_of_another_at_one_level():
    t = np.arange(RATE) / RATE
    first = np.where((t > 0.3) & (t < 0.7), 0.5 * np.sin(2 * np.pi * 200 * t), 0).astype(np.float32)
    second = np.where((t > 0.2) & (t < 0.6), 0.05 * np.sin(2 * np.pi * 900 * t), 0).astype(np.float32)
    spliced = spliced_clip(first, second, np.random.default_rng(0))
    kept = np.flatnonzero(spliced)
    joined = spliced[kept[0]: kept[-1] + 1]
    assert 0.6 * 6400 - 2 <= len(joined) <= 6400  # 30-50% of each 0.4-s word
    start, end = joined[:1900], joined[-1900:]  # no part is shorter than 30% of 6400 samples

    def pitch(x):
        return np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x)

    assert abs(pitch(start) - 200) < 20 and abs(pitch(end) - 900) < 20  # one word's start, the other's end
    assert np.sqrt(np.mean(end ** 2)) == pytest.approx(np.sqrt(np.mean(start ** 2)), rel=0.1)  # at one level
    assert abs(kept[0] + kept[-1] - RATE) <= 2  # centred
    part = head(first, 0.4)
    assert len(part) == int(0.4 * 6400) and len(tail(second, 0.3)) == int(0.3 * 6400)
    assert np.abs(part[[0, -1]]).max() < 1e-3 < np.abs(part).max()  # faded at the cuts: no click


def test_a_rerun_makes_only_what_is_missing_and_training_drops_validation_speakers(negatives, tiny_dataset, tmp_path):
    from tests.test_train import SMALL
    from training.train import parse_args, prepare_data

    out, result = negatives
    gone = sorted((out / "spliced").glob("*.wav"))[0]
    gone.unlink()
    again = build(tiny_dataset, out, seed=0)
    assert (again["made"], again["already_there"]) == (1, result["planned"] - 1) and gone.exists()
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--extra-data", str(out),
                       "--extra-unknown-only"])
    data = prepare_data(args)
    validation = {speaker_of(p) for p in data.val_clips.paths}
    added = [p for p in data.train_clips.paths if out in p.parents]
    assert validation and added
    assert not {speaker_of(p) for p in added} & validation
    assert len(added) == sum(speaker_of(p) not in validation for p in out.rglob("*.wav"))


def test_bad_input_is_one_line_and_an_unreadable_clip_loses_only_itself(tiny_dataset, tmp_path):
    missing = run_cli("training.negatives", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "no such data folder" in missing.stderr
    data = tmp_path / "data"
    (data / "yes").mkdir(parents=True)
    (data / "no").mkdir()
    for word in ("yes", "no"):
        (data / word / "aaaa1111_nohash_0.wav").write_bytes((tiny_dataset / word).glob("*.wav").__next__().read_bytes())
    (data / "no" / "bbbb2222_nohash_0.wav").write_bytes(b"not audio")
    result = run_cli("training.negatives", "--data", str(data), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "bbbb2222_nohash_0.wav" in result.stderr and "6 made now" in result.stdout and "2 skipped" in result.stdout
    assert len(list((tmp_path / "o").rglob("*.wav"))) == 6
