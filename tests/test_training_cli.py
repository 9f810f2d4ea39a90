"""The training entry points: one error contract, and the data split taken from the bundle."""

import shutil

import pytest

from kws.bundle import load_bundle
from kws.errors import EXIT_CODES_HELP
from tests.conftest import run_cli
from training import compare, download, make_stream, options, recipe, train, tune_detector
from training.data import load_clips, scan_split

ENTRY_POINTS = {"training.train": train, "training.compare": compare, "training.tune_detector": tune_detector,
                "training.make_stream": make_stream, "training.download": download, "training.recipe": recipe}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_shows_the_defaults_and_the_exit_codes(name, capsys):
    with pytest.raises(SystemExit) as done:
        ENTRY_POINTS[name].main(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert " ".join(EXIT_CODES_HELP.split()) in " ".join(shown.split())
    assert "(default: " in shown


@pytest.mark.parametrize("name, argv, option", [
    ("training.train", ["--epochs", "0"], "--epochs"),
    ("training.train", ["--val-percent", "100"], "--val-percent"),
    ("training.train", ["--dropout", "1"], "--dropout"),
    ("training.tune_detector", ["--minutes", "-1"], "--minutes"),
    ("training.make_stream", ["--seed", "-1"], "--seed"),
    ("training.compare", ["--units", "64", "0"], "--units"),
    ("training.recipe", ["--units", "many"], "--units"),
])
def test_numeric_options_are_checked_by_the_parser(name, argv, option, capsys):
    required = {"training.train": ["--data", "D", "--out", "O"], "training.tune_detector": ["--model", "M", "--data", "D"],
                "training.make_stream": ["--data", "D", "--out", "O"], "training.compare": ["--data", "D", "--train"],
                "training.recipe": ["--out", "O"]}[name]
    with pytest.raises(SystemExit) as done:
        ENTRY_POINTS[name].main(required + argv)
    assert done.value.code == 2
    assert f"error: argument {option}: " in capsys.readouterr().err


@pytest.mark.parametrize("name, argv", [
    ("training.train", ["--out", "{tmp}/out"]),
    ("training.tune_detector", ["--model", "gru"]),
    ("training.make_stream", ["--out", "{tmp}/s.wav"]),
    ("training.compare", ["--bundles", "gru", "--out", "{tmp}/c.md"]),
])
def test_missing_data_folder_is_one_line_and_exit_status_2(name, argv, tmp_path):
    missing = tmp_path / "no-data"
    result = run_cli(name, "--data", str(missing), *(a.format(tmp=tmp_path) for a in argv))
    assert (result.returncode, result.stderr) == (2, f"error: {missing}: no such data folder\n")


def test_a_failed_recipe_step_is_one_line_with_the_steps_exit_status(tmp_path):
    with pytest.raises(recipe.StepFailed) as failed:
        recipe.run([(tmp_path / "out", ["training.train", "--data", str(tmp_path / "none"),
                                        "--out", str(tmp_path / "out")])])
    assert failed.value.exit_code == 2 and "step failed with exit status 2: python -m training.train" in str(failed.value)


def validation_paths(root, split: dict) -> list:
    return [c.path for c in scan_split(root, ("yes", "no", "up"), split).clips("validation")]


def test_tools_work_on_the_split_recorded_in_the_bundle(trained, tiny_dataset, tmp_path, monkeypatch, capsys):
    """A bundle trained on a non-default split is tuned, measured and streamed on its own
    validation speakers; a split option given overrides the bundle's."""
    path = tmp_path / "bundle"
    shutil.copytree(trained[0], path)  # tuning writes into the bundle
    split = load_bundle(path).split
    assert split == {"val_percent": 30.0, "test_percent": 0.0, "split_salt": ""}
    own = validation_paths(tiny_dataset, split)
    assert own and own != validation_paths(tiny_dataset, make_stream.STREAM_SPLIT)  # the tools' old defaults

    loaded = []

    def spy(clips, labels):
        loaded.append([c.path for c in clips])
        return load_clips(clips, labels)

    monkeypatch.setattr(options, "load_clips", spy)
    monkeypatch.setattr(make_stream, "load_clips", spy)
    data = ["--data", str(tiny_dataset), "--minutes", "0.2"]
    assert tune_detector.main(["--model", str(path), *data]) == 0
    row = compare.measure(str(path), str(tiny_dataset), {}, 0.2, compare.STREAM_SEED)
    assert make_stream.main(["--model", str(path), *data, "--out", str(tmp_path / "s.wav")]) == 0
    assert loaded == [own, own, own]
    assert load_bundle(path).detector["tuned"]["split"] == split == row["split"]
    assert row["val_clips"] == len(own)

    loaded.clear()
    assert tune_detector.main(["--model", str(path), *data, "--val-percent", "50", "--split-salt", "x"]) == 0
    assert loaded == [validation_paths(tiny_dataset, {**split, "val_percent": 50.0, "split_salt": "x"})]
    assert load_bundle(path).detector["tuned"]["split"] == {**split, "val_percent": 50.0, "split_salt": "x"}
