"""The shipped default models, judged on speakers they never heard (needs ../shared)."""

import json

import numpy as np
import pytest

from kws.bundle import load_bundle
from tests.conftest import ROOT, run_cli
from training.data import scan

# The GRU must reach the product's 0.85 target (shipped: 0.8603); the LSTM has a regression
# floor below its shipped 0.7802 (README).
FLOOR = {"gru": 0.85, "lstm": 0.75}


@pytest.fixture(scope="module")
def validation_folder(shared_data, tmp_path_factory):
    """The held-out speakers' clips, linked into a labelled folder (canonical test-set layout)."""
    data = scan(shared_data, validation_percentage=15, testing_percentage=0, split_salt="kws")
    root = tmp_path_factory.mktemp("validation")
    training_speakers = {c.path.name.split("_nohash_")[0] for c in data.clips("training")}
    for clip in data.clips("validation"):
        assert clip.path.name.split("_nohash_")[0] not in training_speakers or clip.word == "_silence_"
        folder = {"silence": "_silence_", "unknown": "_unknown_"}.get(clip.label, clip.label)
        (root / folder).mkdir(exist_ok=True)
        (root / folder / f"{clip.word}_{clip.path.name}").symlink_to(clip.path)
    return root


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_shipped_model_accuracy_on_held_out_speakers(arch, validation_folder):
    result = run_cli("kws.cli", "evaluate", str(validation_folder), "--model", arch, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    meta = load_bundle(arch).metadata
    assert report["n"] == meta["val_clips"]
    # The README's figure, reproduced: `kws evaluate` hears a short clip padded to 1 s, as training
    # does (equal here); one clip of slack for another CPU's rounding on a borderline clip
    assert report["accuracy"] == pytest.approx(meta["val_clip_accuracy"], abs=1 / report["n"] + 1e-4)
    assert report["accuracy"] >= FLOOR[arch]


def test_shipped_gru_on_an_endless_stream(shared_data, tmp_path):
    """A stream of held-out speakers' words, state never reset: most commands are found."""
    wav = tmp_path / "val.wav"
    made = run_cli("training.make_stream", "--data", str(shared_data), "--minutes", "3", "--seed", "11",
                   "--out", str(wav), "--model", "gru")  # the words and the validation speakers of the bundle's split
    assert made.returncode == 0, made.stderr
    result = run_cli("kws.cli", "evaluate", str(wav), "--truth", str(wav.with_suffix(".csv")), "--format", "json")
    report = json.loads(result.stdout)
    assert report["hits"] / report["commands"] >= 0.75
    assert report["false_alarms_per_hour"] <= 120
    assert np.isfinite(report["latency_ms"]["median"])


def test_committed_comparison_report_regenerates(shared_data, tmp_path):
    """docs/comparison.md's rows for the shipped models, measured again: the same figures
    (all but the per-hop speed, which varies run to run and is a benchmark figure)."""
    committed = {r["bundle"]: r for r in json.loads((ROOT / "docs" / "comparison.json").read_text())["rows"]}
    out = tmp_path / "comparison.md"
    result = run_cli("training.compare", "--data", str(shared_data), "--bundles", "assets/gru", "assets/lstm",
                     "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    fresh = {r["bundle"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    for name in ("assets/gru", "assets/lstm"):
        for key in ("params", "val_clips", "val_clip_accuracy", "engine_kb", "epochs_to_best"):
            assert fresh[name][key] == committed[name][key], (name, key)
        for key in ("hits", "wrong", "false_alarms", "commands"):
            assert fresh[name]["stream"][key] == committed[name]["stream"][key], (name, key)
    assert all(fresh[name]["ms_per_hop"] > 0 for name in ("assets/gru", "assets/lstm"))  # speed: a benchmark figure
