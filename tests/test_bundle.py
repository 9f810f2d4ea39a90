import json
import os

import numpy as np
import pytest

from kws.bundle import META_FILE, MODEL_FILE, Bundle, BundleError, load_bundle, read_metadata, save_bundle
from kws.engine import RecurrentNet
from kws.frontend import MfccConfig
from kws.models import build_model
from kws.recognizer import sequence_posteriors

LABELS = ["silence", "unknown", "yes", "no"]


def small_model(seed=0, arch="gru", layers=1, **options):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    return build_model(arch, 40, len(LABELS), units=8, layers=layers, mean=rng.normal(size=40) * 10,
                       variance=rng.uniform(1, 100, 40), **options)


def save_small(path, seed=0, arch="gru", layers=1, model=None):
    model = model or small_model(seed, arch, layers)
    save_bundle(Bundle(LABELS, MfccConfig(), arch, 8, layers, metadata={"note": "test"}), model, path)
    return model


@pytest.mark.parametrize("arch, layers", [("gru", 1), ("gru", 3), ("lstm", 2)])
def test_round_trip_reads_the_weights_without_keras(tmp_path, arch, layers):
    model = save_small(tmp_path / "b", 3, arch, layers)
    loaded = load_bundle(tmp_path / "b")
    assert loaded.labels == LABELS and loaded.arch == arch and loaded.frontend == MfccConfig()
    assert loaded.metadata == {"note": "test"} and loaded.n_params == model.count_params()
    x = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32) * 10
    expected = np.asarray(model.predict_on_batch(x[None]))[0]
    np.testing.assert_allclose(sequence_posteriors(RecurrentNet(loaded.network), x), expected, atol=1e-5)


def test_bundle_folder_is_readable_by_others(tmp_path):
    save_small(tmp_path / "b")
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("options, message", [
    ({"arch": "gru", "reset_after": False}, "only GRU reset_after=True"),
    ({"arch": "gru", "activation": "relu"}, "only tanh/sigmoid activations"),
    ({"arch": "lstm", "use_bias": False}, "layers without bias"),
])
def test_unsupported_architecture_is_refused_in_one_line(tmp_path, options, message):
    import keras

    arch = options.pop("arch")
    layer = keras.layers.GRU if arch == "gru" else keras.layers.LSTM
    inputs = keras.Input((None, 40))
    x = keras.layers.Normalization(mean=np.zeros(40), variance=np.ones(40))(inputs)
    x = layer(8, return_sequences=True, **options)(x)
    model = keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))
    save_bundle(Bundle(LABELS, MfccConfig(), arch, 8, 1), model, tmp_path / "b")
    with pytest.raises(BundleError) as info:
        load_bundle(tmp_path / "b")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_overwrite_replaces_whole_bundle_and_leaves_no_temporaries(tmp_path):
    save_small(tmp_path / "b", 0)
    first = (tmp_path / "b" / MODEL_FILE).read_bytes()
    save_small(tmp_path / "b", 1)
    assert (tmp_path / "b" / MODEL_FILE).read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_failed_write_keeps_the_old_bundle(tmp_path, monkeypatch):
    save_small(tmp_path / "b", 0)
    before = (tmp_path / "b" / MODEL_FILE).read_bytes()
    model = small_model(1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(OSError):
        save_small(tmp_path / "b", model=model)
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
        ("garbage model", "not a Keras 3 model file"),
    ],
)
def test_inconsistent_bundle_gives_clear_error(tmp_path, how, message):
    path = tmp_path / "b"
    save_small(path)
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
    assert bundle.n_params == read_metadata(bundle.path)["n_params"]


def test_keras_deprecation_noise_is_filtered_from_the_suite():
    """Keras's TensorFlow backend makes NumPy 2 warn on every get_weights (98 lines a run);
    the project's pytest settings filter exactly that warning."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    test = f"{__file__}::test_overwrite_replaces_whole_bundle_and_leaves_no_temporaries"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "warning" not in result.stdout.lower(), result.stdout[-2000:]
