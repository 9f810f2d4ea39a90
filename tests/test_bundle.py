import json
import os
import shutil

import numpy as np
import pytest

from kws.bundle import META_FILE, MODEL_FILE, Bundle, BundleError, load_bundle, save_bundle
from kws.frontend import MfccConfig
from kws.models import build_model

LABELS = ["silence", "unknown", "yes", "no"]


def small_bundle(seed=0) -> Bundle:
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model("gru", 40, len(LABELS), units=8, layers=1, mean=np.zeros(40), variance=np.ones(40))
    return Bundle(model, LABELS, MfccConfig(), "gru", 8, 1, metadata={"note": "test"})


def test_round_trip(tmp_path):
    bundle = small_bundle()
    save_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.labels == LABELS and loaded.arch == "gru" and loaded.frontend == MfccConfig()
    assert loaded.metadata == {"note": "test"}
    x = np.random.default_rng(0).standard_normal((1, 50, 40)).astype(np.float32)
    np.testing.assert_allclose(loaded.model.predict_on_batch(x), bundle.model.predict_on_batch(x), atol=1e-6)


def test_overwrite_replaces_whole_bundle_and_leaves_no_temporaries(tmp_path):
    save_bundle(small_bundle(0), tmp_path / "b")
    first = (tmp_path / "b" / MODEL_FILE).read_bytes()
    save_bundle(small_bundle(1), tmp_path / "b")
    assert (tmp_path / "b" / MODEL_FILE).read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_failed_write_keeps_the_old_bundle(tmp_path, monkeypatch):
    save_bundle(small_bundle(0), tmp_path / "b")
    before = (tmp_path / "b" / MODEL_FILE).read_bytes()
    bundle = small_bundle(1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle.model, "save", crash)
    with pytest.raises(OSError):
        save_bundle(bundle, tmp_path / "b")
    assert (tmp_path / "b" / MODEL_FILE).read_bytes() == before
    load_bundle(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def corrupt(path, how):
    meta = json.loads((path / META_FILE).read_text())
    if how == "no meta":
        os.remove(path / META_FILE)
    elif how == "no model":
        os.remove(path / MODEL_FILE)
    elif how == "bad json":
        (path / META_FILE).write_text("{not json")
    elif how == "missing field":
        del meta["labels"]
        (path / META_FILE).write_text(json.dumps(meta))
    elif how == "checksum":
        with open(path / MODEL_FILE, "ab") as handle:
            handle.write(b"x")
    elif how == "label count":
        meta["labels"] = meta["labels"][:2]
        (path / META_FILE).write_text(json.dumps(meta))
    elif how == "frontend":
        meta["frontend"]["n_mfcc"] = 13
        (path / META_FILE).write_text(json.dumps(meta))
    elif how == "garbage model":
        (path / MODEL_FILE).write_bytes(b"not a zip")
        meta["model_sha256"] = __import__("hashlib").sha256(b"not a zip").hexdigest()
        (path / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "how, message",
    [
        ("no meta", "bundle.json is missing"),
        ("no model", "model.keras is missing"),
        ("bad json", "not valid JSON"),
        ("missing field", "missing field(s) labels"),
        ("checksum", "does not match"),
        ("label count", "4 outputs but bundle.json lists 2 labels"),
        ("frontend", "takes 40 features but the frontend makes 13"),
        ("garbage model", "cannot load the Keras model"),
    ],
)
def test_inconsistent_bundle_gives_clear_error(tmp_path, how, message):
    path = tmp_path / "b"
    save_bundle(small_bundle(), path)
    corrupt(path, how)
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such model bundle"):
        load_bundle(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_shipped_bundles_load(name):
    bundle = load_bundle(name)
    assert bundle.arch == name and bundle.labels[:2] == ["silence", "unknown"]
    assert bundle.metadata["val_clip_accuracy"] > 0.5
    shutil.os.path.exists(bundle.path / MODEL_FILE)
