"""The GRU-vs-LSTM report: measured on real (espeak-ng) bundles, and its verdicts."""

import json

import numpy as np

from kws.bundle import load_bundle
from kws.engine import RecurrentNet
from kws.frontend import Mfcc
from kws.recognizer import clip_posteriors
from tests.conftest import SMALL, run_cli
from training.compare import accuracy_verdict
from training.data import load_clips, scan


def test_report_from_two_bundles(trained, tiny_dataset, tmp_path):
    gru, _ = trained
    lstm = tmp_path / "lstm"
    result = run_cli("training.train", "--data", str(tiny_dataset), "--out", str(lstm), "--arch", "lstm",
                     "--epochs", "3", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "report" / "comparison.md"
    result = run_cli("training.compare", "--data", str(tiny_dataset), "--bundles", str(gru), str(lstm),
                     "--stream-minutes", "0.5", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]

    rows = {r["arch"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    for arch, path in (("gru", gru), ("lstm", lstm)):
        bundle = load_bundle(path)
        assert rows[arch]["params"] == bundle.n_params
        meta = bundle.metadata
        data = scan(tiny_dataset, tuple(bundle.labels[2:]), meta["val_percent"], meta["test_percent"], meta["split_salt"])
        val = load_clips(data.clips("validation"), bundle.labels)
        mfcc = Mfcc(bundle.frontend)
        net = RecurrentNet(bundle.network)
        accuracy = np.mean(clip_posteriors(net, [mfcc(a) for a in val.audio]).argmax(1) == val.labels)
        assert abs(rows[arch]["val_clip_accuracy"] - accuracy) < 1e-3
        assert rows[arch]["split"] == bundle.split and rows[arch]["val_clips"] == len(val.labels)
        assert rows[arch]["ms_per_hop"] > 0 and rows[arch]["stream"]["commands"] > 0

    report = out.read_text()
    assert "gru 1x32 seed 1" in report and "lstm 1x32 seed 0" in report
    # same units: the GRU has 3 gate blocks to the LSTM's 4, so fewer parameters
    assert rows["gru"]["params"] < rows["lstm"]["params"]
    assert "**Fewer parameters** (32 units): GRU has" in report and "LSTM's parameters" in report
    for claim in ("Faster training", "Less memory", "Faster inference", "About the same accuracy"):
        assert f"**{claim}** (32 units)" in report
    for png in out.parent.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.parent.glob("*.png"))) == 3


def row(arch, accuracy, seed=0):
    return {"arch": arch, "units": 128, "val_clips": 600, "val_clip_accuracy": accuracy, "seed": seed}


def test_accuracy_verdict_uses_the_seed_spread():
    # one seed each: a difference of 0.10 on 600 clips is beyond two standard errors (±0.041)
    assert "not supported: the GRU is more accurate" in accuracy_verdict(128, [row("gru", 0.85)], [row("lstm", 0.75)])
    assert "supported (within noise)" in accuracy_verdict(128, [row("gru", 0.80)], [row("lstm", 0.78)])
    # several seeds whose spread is wider than the difference of the means
    verdict = accuracy_verdict(128, [row("gru", 0.70, 0), row("gru", 0.90, 1)], [row("lstm", 0.75, 0), row("lstm", 0.79, 1)])
    assert "mean 0.800 (0.700-0.900, 2 seeds)" in verdict and "noise about ±0.100" in verdict
    assert "supported (within noise)" in verdict


def test_missing_bundle_is_one_line_error(tiny_dataset, tmp_path):
    """A bad model is exit status 2, as in `kws`."""
    result = run_cli("training.compare", "--data", str(tiny_dataset), "--bundles", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "c.md"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nope'}: no such model bundle")
    assert len(result.stderr.splitlines()) == 1


def full_row(arch, accuracy, recipe_name, seed=0):
    return {**row(arch, accuracy, seed), "params": 100 if arch == "gru" else 130, "seconds_per_epoch": [1.0, 2.0],
            "engine_kb": 10 if arch == "gru" else 13, "ms_per_hop": 0.1 if arch == "gru" else 0.2,
            "recipe_name": recipe_name}


def test_verdicts_compare_models_of_one_recipe_only():
    """A world-stage GRU is compared with the world-stage LSTM, never averaged with older rows."""
    from training.compare import recipe_name, verdicts
    from training.options import training_stages

    clip = {"command": "clip", "sources": {"data": {}}}
    stream = {"command": "stream", "sources": {"data": {}}, "init_from": clip}
    world = {"command": "world", "sources": {"data": {}, "/synth": {}}, "init_from": stream}
    assert [m["command"] for m in training_stages(world)] == ["clip", "stream", "world"]
    assert recipe_name(world) == "world" and recipe_name(stream) == "two-stage" and recipe_name({}) == "two-stage"
    rows = [full_row("gru", 0.90, "world"), full_row("lstm", 0.80, "world"), full_row("gru", 0.50, "two-stage", 1),
            full_row("lstm", 0.85, "two-stage", 1)]
    text = "\n".join(verdicts(rows))
    newer, older = text.split("128 units, training/recipe.py without --world")
    assert "128 units, training/recipe.py with --world" in newer
    assert "GRU 0.900 vs LSTM 0.800" in newer and "not supported: the GRU is more accurate" in newer
    assert "GRU 0.500 vs LSTM 0.850" in older and "not supported: the LSTM is more accurate" in older
    assert "mean" not in text  # one seed per recipe: nothing averaged across recipes
