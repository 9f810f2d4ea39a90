"""training.interpolate: a fine-tuned model mixed with the one it started from, the mix
chosen on the validation speakers by the world monitor without losing clean accuracy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kws.bundle import load_bundle
from kws.engine import RecurrentNet
from kws.errors import KwsError
from kws.frontend import Mfcc
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def fine_tuned(trained, tmp_path_factory):
    """The trained bundle with every weight moved by seeded noise: a stand-in for a
    fine-tuned model (same network, same feature statistics, other weights)."""
    from kws.bundle import Bundle, save_bundle
    from kws.models import load_keras_model

    start = load_bundle(trained[0])
    model = load_keras_model(start.path)
    rng = np.random.default_rng(5)
    model.set_weights([w + rng.normal(0, 0.6, w.shape).astype(w.dtype) for w in model.get_weights()])
    out = tmp_path_factory.mktemp("fine_tuned") / "bundle"
    parent = {"path": str(start.path), **{k: start.metadata[k] for k in ("command", "history")}}
    save_bundle(Bundle(start.labels, start.frontend, start.arch, start.units, start.layers,
                       metadata={**start.metadata, "seed": 0, "init_from": parent}), model, out)
    return out


def test_the_mix_keeps_clean_accuracy_and_is_the_best_world_score(trained, fine_tuned, tiny_dataset, tmp_path):
    from training.interpolate import mix
    from training.options import validation_set
    from training.train import monitor_material, validation_scores

    out = tmp_path / "mix"
    result = run_cli("training.interpolate", "--start", str(trained[0]), "--tuned", str(fine_tuned), "--data",
                     str(tiny_dataset), "--out", str(out), "--grid", "1,0.25,0.5,0.75", "--stream-minutes", "0.5")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "" and result.stdout.startswith(f"wrote {out}: t ") and result.stdout.count("\n") == 1
    start, tuned, mixed = load_bundle(trained[0]), load_bundle(fine_tuned), load_bundle(out)
    record = mixed.metadata["interpolation"]
    rows = record["mixes"]
    assert [r["t"] for r in rows] == [0, 0.25, 0.5, 0.75, 1]  # the start itself always scored

    _, clips, noise, _ = validation_set(str(tiny_dataset), start, {})
    mfcc = Mfcc(start.frontend)
    features, stream, heard = monitor_material(clips, start.labels, noise, mfcc, 0, "world")
    material = (features, clips.labels, stream, heard)
    for row, bundle in ((rows[0], start), (rows[-1], tuned)):  # the ends are the two models themselves
        expected = validation_scores(RecurrentNet(bundle.network), *material)
        assert {k: v for k, v in row.items() if k != "t"} == pytest.approx(expected, abs=1e-9)
    assert rows[0]["val_world_score"] != rows[-1]["val_world_score"]  # the noise changed the model
    for a, b in zip(start.network.layers, tuned.network.layers):  # every weight moved, not only the head
        assert not np.allclose(a.kernel, b.kernel) and not np.allclose(a.recurrent, b.recurrent)

    allowed = [r for r in rows if r["val_clip_accuracy"] >= rows[0]["val_clip_accuracy"]]
    chosen = next(r for r in rows if r["t"] == record["t"])
    assert chosen in allowed and chosen["val_world_score"] == max(r["val_world_score"] for r in allowed)
    assert mixed.metadata["val_clip_accuracy"] == chosen["val_clip_accuracy"]
    assert mixed.detector is None  # to be tuned next
    expected = mix(start.network, tuned.network, record["t"])
    for name in ("mean", "variance", "dense_kernel", "dense_bias"):
        np.testing.assert_allclose(getattr(mixed.network, name), getattr(expected, name), atol=1e-6)
    for got, want in zip(mixed.network.layers, expected.layers):
        for a, b in zip(dataclasses.astuple(got), dataclasses.astuple(want)):
            np.testing.assert_allclose(a, b, atol=1e-6)
    assert record["command"].startswith("python -m training.interpolate --start ")
    assert mixed.metadata["history"] == tuned.metadata["history"]  # the tuned model's training record is kept


def test_the_chosen_mix_has_the_best_world_score_that_keeps_clean_accuracy():
    from training.interpolate import choose

    def row(t, clean, world):
        return {"t": t, "val_clip_accuracy": clean, "val_world_score": world}

    rows = [row(0, 0.85, 1.2), row(0.5, 0.86, 1.4), row(0.7, 0.85, 1.4), row(0.9, 0.84, 1.6), row(1, 0.83, 1.7)]
    assert choose(rows)["t"] == 0.5  # 0.9 and 1 score best but lose clean accuracy; a tie goes to the lower t
    assert choose([row(0, 0.85, 1.2), row(1, 0.80, 1.9)])["t"] == 0  # the start itself when no mix keeps it


def test_mixing_is_linear_in_every_weight(trained):
    from training.interpolate import mix

    network = load_bundle(trained[0]).network
    doubled = dataclasses.replace(network, dense_kernel=2 * network.dense_kernel,
                                  layers=[dataclasses.replace(l, kernel=2 * l.kernel) for l in network.layers])
    half = mix(network, doubled, 0.5)
    np.testing.assert_allclose(half.dense_kernel, 1.5 * network.dense_kernel, rtol=1e-6)
    np.testing.assert_allclose(half.layers[0].kernel, 1.5 * network.layers[0].kernel, rtol=1e-6)
    np.testing.assert_array_equal(half.layers[0].recurrent, network.layers[0].recurrent)
    assert half.arch == network.arch and mix(network, doubled, 0).dense_kernel.tolist() == network.dense_kernel.tolist()


def test_only_a_model_fine_tuned_from_the_other_mixes_with_it(trained, tiny_dataset, tmp_path):
    from training.interpolate import check_mixable

    start = load_bundle(trained[0])
    with pytest.raises(KwsError, match=r"its units \(16\) differs from .*: only a model fine-tuned from the other"):
        check_mixable(start, dataclasses.replace(start, units=16))
    other_stats = dataclasses.replace(start, network=dataclasses.replace(start.network, mean=start.network.mean + 1))
    with pytest.raises(KwsError, match="its feature statistics differ"):
        check_mixable(start, other_stats)
    sibling = dataclasses.replace(start, metadata={**start.metadata, "init_from": {"command": "kws-train --other"}})
    with pytest.raises(KwsError, match="it was not fine-tuned from"):
        check_mixable(start, sibling)
    missing = run_cli("training.interpolate", "--start", str(trained[0]), "--tuned", str(tmp_path / "none"),
                      "--data", str(tiny_dataset), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and str(tmp_path / "none") in missing.stderr
    assert not (tmp_path / "o").exists()
