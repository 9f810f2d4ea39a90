"""Negatives made from the real data (training/negatives.py), on the espeak-ng data set."""

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SMALL, run_cli
from kws.audio import fit_clip
from training.data import COMMANDS, UNKNOWN, DataError, extra_training_clips, speaker_of, word_span
from training.negatives import (MAX_SPLICE_GAIN, SOUNDS, build, command_clips, head, partial_clip, plan, spliced_clip,
                                tail)

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
    """The command clip a negative was made from: `<speaker>_nohash_<word>_<k>` comes from
    `<word>/<speaker>_nohash_<k>.wav`."""
    speaker, rest = negative.stem.split("_nohash_")
    word, take = rest.rsplit("_", 1)
    return data / word / f"{speaker}_nohash_{take}.wav"


def tone(hz, start, end, level):
    t = np.arange(RATE) / RATE
    return np.where((t > start) & (t < end), level * np.sin(2 * np.pi * hz * t), 0).astype(np.float32)


def pitch(x):
    return np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x)


def test_every_command_clip_gives_its_negatives_in_its_speakers_name(negatives, tiny_dataset):
    out, result = negatives
    sources = sorted(p for w in COMMANDS if (tiny_dataset / w).is_dir() for p in (tiny_dataset / w).glob("*.wav"))
    # yes, no and up: each reversed but `no` (`on` backwards), each partial, each spliced (no two share a sound)
    expected = {"reversed": [s for s in sources if s.parent.name != "no"], "partial": sources, "spliced": sources}
    assert result == {"planned": sum(map(len, expected.values())), "made": sum(map(len, expected.values())),
                      "already_there": 0, "unreadable": 0, "left_out": 0, "no_word": 0}
    for kind, want in expected.items():
        made = sorted((out / kind).glob("*.wav"))
        assert sorted(source_of(p, tiny_dataset) for p in made) == want
        assert all(speaker_of(p) == speaker_of(source_of(p, tiny_dataset)) for p in made)
    # kws-train reads every one as an unknown word, also with --extra-unknown-only
    clips = extra_training_clips(out, ["_silence_", UNKNOWN, "yes", "no", "up"], unknown_only=True)
    assert len(clips) == result["made"] and {c.label for c in clips} == {UNKNOWN}
    assert json.loads((out / "manifest.json").read_text())["clips"] == result["made"]


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


def test_no_splice_or_reversal_makes_a_command_again(tiny_dataset, tmp_path):
    by_speaker = {"s1": [tmp_path / w / "s1_nohash_0.wav" for w in COMMANDS]}
    jobs = plan(by_speaker, seed=0)
    assert {c.parent.name for kind, c, _ in jobs if kind == "reversed"} == set(COMMANDS) - {"no", "on"}
    splices = [(c.parent.name, o.parent.name) for kind, c, o in jobs if kind == "spliced"]
    assert len(splices) == len(COMMANDS) and all(a != b for a, b in splices)
    for first, second in splices:  # go + no would be heard as go; on + off as off; left + right ends as both
        assert SOUNDS[first][0] != SOUNDS[second][0] and SOUNDS[first][1] != SOUNDS[second][1]
    assert ("go", "no") not in splices and ("on", "off") not in splices
    # the first part of `go` or `no` is most of the word: only their last part is kept
    word = tone(200, 0.3, 0.5, 0.5) + tone(900, 0.5, 0.7, 0.5)
    for seed in range(8):
        assert abs(pitch(partial_clip(word, "no", np.random.default_rng(seed))) - 900) < 30


def test_a_splice_joins_the_start_of_one_word_to_the_end_of_another_at_one_level():
    first, second = tone(200, 0.3, 0.7, 0.5), tone(900, 0.2, 0.6, 0.05)
    spliced = spliced_clip(first, second, np.random.default_rng(0))
    kept = np.flatnonzero(spliced)
    joined = spliced[kept[0]: kept[-1] + 1]
    assert 0.6 * 6400 - 2 <= len(joined) <= 6400  # 30-50% of each 0.4-s word
    start, end = joined[:1900], joined[-1900:]  # no part is shorter than 30% of 6400 samples
    assert abs(pitch(start) - 200) < 20 and abs(pitch(end) - 900) < 20  # one word's start, the other's end
    assert np.sqrt(np.mean(end ** 2)) == pytest.approx(np.sqrt(np.mean(start ** 2)), rel=0.1)  # at one level
    assert abs(kept[0] + kept[-1] - RATE) <= 2  # centred
    part = head(first, 0.4)
    assert len(part) == int(0.4 * 6400) and len(tail(second, 0.3)) == int(0.3 * 6400)
    assert np.abs(part[[0, -1]]).max() < 1e-3 < np.abs(part).max()  # faded at the cuts: no click
    faint = spliced_clip(first, tone(900, 0.2, 0.6, 1e-3), np.random.default_rng(0))  # 54 dB down: background
    kept = np.flatnonzero(faint)
    assert np.abs(faint[kept[-1] - 1000: kept[-1]]).max() <= 1e-3 * MAX_SPLICE_GAIN * 1.01  # not raised to a word's level


def test_a_rerun_makes_only_what_is_missing_and_training_drops_held_out_speakers(negatives, tiny_dataset, tmp_path):
    from training.train import parse_args, prepare_data

    out, result = negatives
    gone = sorted((out / "spliced").glob("*.wav"))[0]
    before = read(gone)
    gone.unlink()
    again = build(tiny_dataset, out, seed=0)
    assert (again["made"], again["already_there"]) == (1, result["made"] - 1)
    np.testing.assert_array_equal(read(gone), before)  # drawn from its own name: the same clip again
    with pytest.raises(DataError, match="made with another seed than this run's"):
        build(tiny_dataset, out, seed=1)
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--test-percent", "20",
                       "--extra-data", str(out), "--extra-unknown-only"])
    data = prepare_data(args)
    held_out = {speaker_of(c.path) for c in data.dataset.clips("validation") + data.dataset.clips("testing")}
    added = [p for p in data.train_clips.paths if out in p.parents]
    assert data.dataset.clips("testing") and added
    assert not {speaker_of(p) for p in added} & held_out
    assert len(added) == sum(speaker_of(p) not in held_out for p in out.rglob("*.wav"))


def test_bad_input_is_one_line_and_an_unreadable_or_silent_clip_loses_only_its_own(tiny_dataset, tmp_path):
    missing = run_cli("training.negatives", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "no such data folder" in missing.stderr
    data = tmp_path / "data"
    for word in ("yes", "up"):
        (data / word).mkdir(parents=True)
        (data / word / "aaaa1111_nohash_0.wav").write_bytes(next((tiny_dataset / word).glob("*.wav")).read_bytes())
    (data / "up" / "bbbb2222_nohash_0.wav").write_bytes(b"not audio")
    sf.write(data / "yes" / "cccc3333_nohash_0.wav", np.zeros(RATE, np.float32), RATE, subtype="PCM_16")
    result = run_cli("training.negatives", "--data", str(data), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("bbbb2222_nohash_0.wav") == 1  # named once, though two negatives needed it
    assert "6 made now" in result.stdout and "1 unreadable clips (2 negatives left out), 2 without a word" in result.stdout
    assert sorted(p.parent.name for p in (tmp_path / "o").rglob("*.wav")) == ["partial"] * 2 + ["reversed"] * 2 + \
        ["spliced"] * 2
    assert not list((tmp_path / "o").rglob("*.partial"))
    assert command_clips(data)["aaaa1111"] == [data / "yes" / "aaaa1111_nohash_0.wav", data / "up" / "aaaa1111_nohash_0.wav"]
