"""The robustness table and the false-alarm budget (training.robustness, training.tune_detector,
`--false-alarms-per-hour`), on the espeak-ng data set and espeak-ng non-command words at 8 kHz."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from kws.bundle import load_bundle
from kws.engine import detector_config
from kws.errors import KwsError
from kws.recognizer import classify_audio
from tests.conftest import NON_COMMANDS, SPEECH_VOICES, run_cli
from training import robustness, tune_detector
from training.options import validation_set

ROWS = ["clip accuracy: clean", "clip accuracy: reverberant", "clip accuracy: narrow-band", "clip accuracy: quiet",
        "clip accuracy: loud", "false alarms: non-command speech", "false alarms: the same played at 16 kHz",
        "false alarms: noise only", "stream: hit rate", "stream: wrong words", "stream: false alarms"]


@pytest.fixture(scope="module")
def tuned(trained, tiny_dataset, speech, tmp_path_factory):
    """A copy of the small trained GRU, tuned with the non-command speech; and the curve's plot."""
    path = tmp_path_factory.mktemp("tuned") / "bundle"
    shutil.copytree(trained[0], path)
    plot = path.parent / "det.png"
    assert tune_detector.main(["--model", str(path), "--data", str(tiny_dataset), "--speech", str(speech),
                               "--minutes", "0.5", "--target-false-alarms-per-hour", "200", "--plot", str(plot)]) == 0
    return path, plot


def table(*args) -> dict:
    result = run_cli("training.robustness", *args, "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_the_table_has_every_row_and_names_its_data(tuned, tiny_dataset, speech):
    bundle = load_bundle(tuned[0])
    args = ["--model", str(tuned[0]), "--data", str(tiny_dataset), "--speech", str(speech),
            "--noise-minutes", "0.5", "--stream-minutes", "0.5"]
    rows = {r["measure"]: r for r in table(*args)["rows"]}
    assert list(rows) == ROWS
    assert all(r["data"] for r in rows.values())
    n_clips = len(validation_set(str(tiny_dataset), bundle, {})[1].labels)
    for name in ROWS[:5]:
        assert 0 <= rows[name]["value"] <= 1 and rows[name]["clips"] == n_clips
    # the detector was tuned on half of the speakers; the false alarms are counted on the others
    tuned_on = bundle.detector["tuned"]["speech"]["speakers"]
    assert rows["false alarms: non-command speech"]["speakers"] == bundle.detector["tuned"]["speech"]["held_out_speakers"]
    assert not set(tuned_on) & set(rows["false alarms: non-command speech"]["speakers"])
    assert rows["false alarms: non-command speech"]["recordings"] == len(NON_COMMANDS) * len(SPEECH_VOICES) // 2
    assert "narrow-band: recorded at 8000 Hz" in rows["false alarms: non-command speech"]["data"]
    for name in ROWS[5:8]:
        r = rows[name]
        assert r["value"] == pytest.approx(r["detections"] * 3600 / r["audio_s"], abs=0.01)
    assert rows["false alarms: noise only"]["audio_s"] == pytest.approx(30, abs=0.1)

    text = run_cli("training.robustness", *args)
    assert text.returncode == 0, text.stderr
    for name in ROWS:
        assert name in text.stdout
    assert "data: " in text.stdout and "narrow-band" in text.stdout


def test_clean_accuracy_is_what_kws_evaluate_gives(trained, tiny_dataset, tmp_path):
    """The clean figure against `kws evaluate` on the same clips (1 s, as the table scores
    them) in a labelled folder; the loud figure against its own arithmetic."""
    bundle = load_bundle(trained[0])
    dataset, clips, _, _ = validation_set(str(tiny_dataset), bundle, {})
    folder = tmp_path / "validation"
    for i, (audio, label) in enumerate(zip(clips.audio, clips.labels)):
        name = {"silence": "_silence_", "unknown": "_unknown_"}.get(dataset.labels[label], dataset.labels[label])
        (folder / name).mkdir(parents=True, exist_ok=True)
        sf.write(folder / name / f"{i}.wav", audio, 16000, subtype="FLOAT")
    evaluated = run_cli("kws.cli", "evaluate", str(folder), "--model", str(trained[0]), "--format", "json")
    assert evaluated.returncode == 0, evaluated.stderr
    rows = {r["measure"]: r for r in table("--model", str(trained[0]), "--data", str(tiny_dataset),
                                           "--noise-minutes", "0", "--stream-minutes", "0")["rows"]}
    assert list(rows) == ROWS[:5]  # no --speech, no noise, no stream: those rows are left out
    assert rows["clip accuracy: clean"]["value"] == pytest.approx(json.loads(evaluated.stdout)["accuracy"], abs=1e-4)
    loud = np.clip(clips.audio * 10 ** (10 / 20), -1, 1)
    expected = np.mean(classify_audio(bundle, list(loud)).argmax(axis=1) == clips.labels)
    assert rows["clip accuracy: loud"]["value"] == pytest.approx(expected, abs=1e-4)


def test_the_room_response_has_the_stated_reverberation_time():
    """Schroeder's backward integral of the synthetic response falls 60 dB in RT60 (fitted
    from -5 to -25 dB, as T20), and its direct sound stands at the stated ratio to the tail."""
    response = robustness.room_response(np.random.default_rng(3), 0.4, -3.0)
    energy = np.cumsum((response**2)[::-1])[::-1]
    decay_db = 10 * np.log10(energy / energy[0])
    t = np.arange(len(response)) / 16000
    span = (decay_db <= -5) & (decay_db >= -25)
    slope = np.polyfit(t[span], decay_db[span], 1)[0]
    assert -60 / slope == pytest.approx(0.4, rel=0.1)
    assert 10 * np.log10(1 / np.sum(response[1:] ** 2)) == pytest.approx(-3.0, abs=0.01)


def test_the_stored_curve_is_monotone_and_holds_the_chosen_point(tuned):
    detector = load_bundle(tuned[0]).detector
    curve = detector["curve"]
    thresholds = [p["threshold"] for p in curve]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    rates = [p["false_alarms_per_hour"] for p in curve]
    misses = [p["miss_rate"] for p in curve]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # false alarms never rise with the threshold
    assert all(a <= b for a, b in zip(misses, misses[1:]))  # misses never fall
    chosen = tune_detector.chosen_point(detector)
    tuned_info = detector["tuned"]
    assert tuned_info["target_false_alarms_per_hour"] == 200
    if tuned_info["target_met"]:
        assert chosen["false_alarms_per_hour"] <= 200
        assert chosen["miss_rate"] == min(p["miss_rate"] for p in curve if p["false_alarms_per_hour"] <= 200)
    assert tuned_info["tuning_stream"]["false_alarms_per_hour"] == chosen["false_alarms_per_hour"]
    assert tuned[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_monotone_curve_keeps_the_points_no_other_beats():
    def p(threshold, false_alarms, miss_rate):
        return {"threshold": threshold, "false_alarms": false_alarms, "false_alarms_per_hour": 10.0 * false_alarms,
                "miss_rate": miss_rate}

    sweep = [p(0.3, 9, 0.1), p(0.4, 7, 0.2), p(0.5, 8, 0.2),  # 0.5: a word fired twice (re-armed): beaten by 0.4
             p(0.6, 5, 0.3), p(0.7, 5, 0.3), p(0.8, 5, 0.3),  # one result for three thresholds: the middle one
             p(0.9, 5, 0.5), p(0.95, 0, 0.6)]
    assert [q["threshold"] for q in tune_detector.monotone_curve(sweep)] == [0.3, 0.4, 0.7, 0.95]


def with_curve(bundle, curve):
    bundle.detector = {"threshold": 0.5, "average_window_ms": 200.0, "min_above_ms": 50.0, "suppression_ms": 1000.0,
                       "curve": curve}
    return bundle


CURVE = [
    {"threshold": 0.3, "average_window_ms": 100.0, "min_above_ms": 0.0, "suppression_ms": 500.0,
     "false_alarms_per_hour": 120.0, "miss_rate": 0.10},
    {"threshold": 0.6, "average_window_ms": 100.0, "min_above_ms": 0.0, "suppression_ms": 500.0,
     "false_alarms_per_hour": 30.0, "miss_rate": 0.25},
    {"threshold": 0.9, "average_window_ms": 100.0, "min_above_ms": 0.0, "suppression_ms": 500.0,
     "false_alarms_per_hour": 6.0, "miss_rate": 0.40},
]


@pytest.mark.parametrize("budget, threshold", [(500, 0.3), (120, 0.3), (119.9, 0.6), (30, 0.6), (6, 0.9)])
def test_a_false_alarm_budget_picks_the_fewest_misses_within_it(trained, budget, threshold):
    bundle = with_curve(load_bundle(trained[0]), CURVE)
    config = detector_config(bundle, false_alarms_per_hour=budget)
    assert (config.threshold, config.average_window_ms, config.min_above_ms, config.suppression_ms) == (
        threshold, 100.0, 0.0, 500.0)
    assert detector_config(bundle, false_alarms_per_hour=budget, threshold=0.77).threshold == 0.77  # still overrides
    assert detector_config(bundle).threshold == 0.5  # without a budget: the tuned settings


def test_a_budget_below_the_curve_or_without_one_is_refused(trained):
    bundle = with_curve(load_bundle(trained[0]), CURVE)
    with pytest.raises(KwsError, match="5 false alarms per hour is below the model's curve, whose fewest are 6 per hour"):
        detector_config(bundle, false_alarms_per_hour=5)
    with pytest.raises(KwsError, match="no false-alarm curve"):
        detector_config(with_curve(bundle, None), false_alarms_per_hour=5)


def test_kws_stream_takes_a_budget_from_the_tuned_curve(tuned, trained, spoken):
    """A tuned bundle maps the budget; the untuned one is refused in one line, before any audio."""
    wav = str(spoken["yes"])
    lowest = min(p["false_alarms_per_hour"] for p in load_bundle(tuned[0]).detector["curve"])
    ok = run_cli("kws.cli", "stream", wav, "--model", str(tuned[0]), "--false-alarms-per-hour", str(lowest + 1))
    assert ok.returncode == 0, ok.stderr
    refused = run_cli("kws.cli", "stream", wav, "--model", str(trained[0]), "--false-alarms-per-hour", "5")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith(f"error: {trained[0]}: the model stores no")
    if lowest > 0:
        below = run_cli("kws.cli", "stream", wav, "--model", str(tuned[0]), "--false-alarms-per-hour", str(lowest / 2))
        assert below.returncode == 2 and below.stderr.count("\n") == 1 and "below the model's curve" in below.stderr
    bad = run_cli("kws.cli", "stream", wav, "--false-alarms-per-hour", "-1")
    assert bad.returncode == 2 and "argument --false-alarms-per-hour" in bad.stderr


@pytest.mark.parametrize("module, argv", [
    ("training.robustness", ["--model", "gru"]),
    ("training.tune_detector", ["--model", "gru", "--dry-run"]),
])
def test_missing_folders_are_one_line(module, argv, tiny_dataset, tmp_path):
    missing = tmp_path / "none"
    result = run_cli(module, "--data", str(missing), *argv)
    assert (result.returncode, result.stderr) == (2, f"error: {missing}: no such data folder\n")
    result = run_cli(module, "--data", str(tiny_dataset), "--speech", str(missing), *argv)
    assert (result.returncode, result.stderr) == (2, f"error: {missing}: no such speech folder\n")


def test_robustness_help_shows_the_defaults():
    result = run_cli("training.robustness", "--help")
    assert result.returncode == 0
    assert "(default: 60.0)" in result.stdout and "--false-alarms-per-hour" in result.stdout


def test_speakers_heard_in_any_training_stage_or_tuning_are_not_measured_on():
    from types import SimpleNamespace

    stream_stage = {"sources": {"/data": {"clips": 10}}}
    world_stage = {"sources": {"/data": {"clips": 10}, "/speech": {"clips": 4, "speakers": ["george", "lucas"]}},
                   "init_from": {**stream_stage, "init_from": {"sources": {"/s": {"speakers": ["theo"]}}}}}
    bundle = SimpleNamespace(detector={"tuned": {"speech": {"speakers": ["george", "nicolas"]}}}, metadata=world_stage)
    assert robustness.heard_speakers(bundle) == ["george", "lucas", "nicolas", "theo"]
    assert robustness.heard_speakers(SimpleNamespace(detector=None, metadata={})) == []
