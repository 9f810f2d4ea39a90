"""Synthetic speech in the Speech Commands layout (training/synth.py), on a few words."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from training.data import scan
from training.synth import Voice, available_voices, build, read_words

ENGINES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}


@pytest.fixture(scope="module")
def voices():
    missing = [tool for tool in ENGINES.values() if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install.sh installs them)")
    every = available_voices()
    chosen = []
    for engine in ENGINES:  # two voices of each engine, one of them pitched and slowed
        ours = [v for v in every if v.engine == engine]
        chosen += [next(v for v in ours if v.pitch == v.rate == 1.0), next(v for v in ours if v.pitch > 1 and v.rate < 1)]
    return chosen


def test_every_voice_says_the_commands_and_the_words_land_in_their_folders(voices, tmp_path):
    result = build(tmp_path, ["banana", "window"], ("yes", "stop"), voices_per_word=2, command_takes=1, seed=0,
                   voices=voices)
    assert result["made"] == result["planned"] > 0 and result["silent"] == 0
    speakers, names = {v.speaker for v in voices}, {(v.engine, v.name) for v in voices}
    for word in ("yes", "stop"):  # every voice, at one of its pitch/rate settings (command_takes=1)
        said = {p.name.split("_nohash_")[0] for p in (tmp_path / word).glob("*.wav")}
        assert said <= speakers and len(said) == len(names)
    for word in ("banana", "window"):
        assert len(list((tmp_path / word).glob("*.wav"))) == 2
    for wav in tmp_path.rglob("*.wav"):
        audio, rate = sf.read(wav, dtype="float32")
        info = sf.info(wav)
        assert (rate, info.channels, info.subtype, len(audio)) == (16000, 1, "PCM_16", 16000)
        loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
        assert len(loud) and abs((loud[0] + loud[-1]) / 2 - 8000) < 50, f"{wav}: the word is not centred"
    # kws-train reads it as a data set: commands and unknown words, speakers kept apart
    data = scan(tmp_path, ("yes", "stop"), 50, 0)
    assert {c.label for c in data.clips("training") + data.clips("validation")} == {"yes", "stop", "unknown"}


def test_voices_differ_and_a_rerun_makes_only_what_is_missing(voices, tmp_path):
    build(tmp_path, [], ("go",), voices_per_word=1, command_takes=1, seed=0, voices=voices)
    clips = sorted((tmp_path / "go").glob("*.wav"))
    audio = [sf.read(p, dtype="float32")[0] for p in clips]
    assert all(not np.allclose(a, b) for i, a in enumerate(audio) for b in audio[i + 1:])
    clips[0].unlink()
    again = build(tmp_path, [], ("go",), voices_per_word=1, command_takes=1, seed=0, voices=voices)
    assert (again["made"], again["already_there"]) == (1, len(clips) - 1)


def test_word_list_leaves_out_the_commands_and_odd_entries(tmp_path):
    listing = tmp_path / "words"
    listing.write_text("yes\nbanana\nBoston\ncafé\nit's\na\nwindow\nstop\nextraordinarily\n")
    assert read_words(str(listing), 10, 0) == ["banana", "window"]
    assert Voice("flite", "slt", 1.0, 1.0).speaker != Voice("flite", "slt", 1.2, 1.0).speaker
