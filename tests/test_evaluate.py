"""`kws evaluate` on a labelled folder with a model that has no `unknown` class."""

import json

import numpy as np
import pytest
import soundfile as sf

from kws.bundle import Bundle, save_bundle
from kws.cli import main
from kws.evaluate import collect, evaluate, folder_label, metrics
from kws.frontend import MfccConfig
from kws.models import build_model
from tests.conftest import SR, noise

LABELS = ["silence", "yes", "no"]  # no unknown


@pytest.fixture(scope="module")
def without_unknown(tmp_path_factory):
    """(a bundle whose labels lack `unknown`, a labelled folder with yes/, no/, cat/ and dog/)."""
    import keras

    root = tmp_path_factory.mktemp("no-unknown")
    keras.utils.set_random_seed(0)
    model = build_model("gru", 40, len(LABELS), units=8, layers=1, mean=np.zeros(40), variance=np.ones(40))
    save_bundle(Bundle(LABELS, MfccConfig(), "gru", 8, 1), model, root / "bundle")
    folder = root / "labelled"
    for i, word in enumerate(("yes", "no", "cat", "dog", "_background_noise_")):
        (folder / word).mkdir(parents=True)
        for j in range(2):
            sf.write(folder / word / f"s{j}_nohash_0.wav", noise(1, 0.05, 10 * i + j), SR, subtype="PCM_16")
    return root / "bundle", folder


def test_sub_folders_of_no_class_are_skipped_and_named_once(without_unknown, capsys):
    bundle, folder = without_unknown
    assert main(["evaluate", str(folder), "--model", str(bundle), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == (f"warning: not scored, as the model has no unknown class: 2 sub-folder(s) "
                   f"{folder / 'cat'}, {folder / 'dog'}\n")
    report = json.loads(out)
    assert report["n"] == 4 and report["confusion"]["labels"] == LABELS
    assert sorted({row["truth"] for row in report["files"]}) == ["no", "yes"]
    assert report["per_class"]["silence"]["n"] == 0 and report["failures"] == []


def test_the_library_keeps_the_skipped_folders(without_unknown, capsys):
    from kws.bundle import load_bundle

    bundle, folder = without_unknown
    assert folder_label("cat", LABELS) is None and folder_label("_unknown_", LABELS) is None
    assert folder_label("cat", ["silence", "unknown", "yes"]) == "unknown"
    items, failures, skipped = collect([folder], LABELS)
    assert skipped == [folder / "cat", folder / "dog"] and not failures
    assert {item.label for item in items} == {"yes", "no"}
    result = evaluate(load_bundle(bundle), [folder])
    assert result.skipped == skipped and metrics(result).n == 4
    assert capsys.readouterr().err.count("warning: ") == 1
