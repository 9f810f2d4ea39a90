"""Training end to end on espeak-ng speech: accuracy on unseen voices, resume, tf.distribute."""

import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest

from kws.bundle import load_bundle
from kws.engine import RecurrentNet
from kws.frontend import Mfcc
from kws.labels import SILENCE, UNKNOWN
from kws.recognizer import clip_posteriors
from tests.conftest import ROOT, SMALL, run_cli, run_code
from training.data import DataError, check_training_split, load_clips, scan, speaker_of
from training.train import TENSORFLOW_MISSING, parse_args, prepare_data


def test_training_writes_a_complete_bundle(trained, tiny_dataset):
    out, result = trained
    bundle = load_bundle(out)
    meta = bundle.metadata
    assert bundle.labels == ["silence", "unknown", "yes", "no", "up"]
    for key in ("command", "data", "epochs_run", "val_clip_accuracy", "stream", "history", "seed", "wall_seconds"):
        assert key in meta
    assert meta["command"].startswith("kws-train --data")
    assert {"hits", "misses", "false_alarms_per_hour"} <= set(meta["stream"])
    assert not out.with_name(out.name + ".work").exists()  # work folder removed after success
    assert "wrote" in result.stdout
    assert result.stderr == ""  # no TensorFlow start-up or log lines: training prints only its own progress


def test_trained_model_recognises_unseen_voices(trained, tiny_dataset):
    """Accuracy on validation speakers, recomputed here independently of the training script."""
    out, _ = trained
    bundle = load_bundle(out)
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    train_paths = {c.path for c in data.clips("training")}
    val = [c for c in data.clips("validation") if c.label in ("yes", "no", "up")]
    assert val and not train_paths & {c.path for c in val}
    clips = load_clips(val, bundle.labels)
    mfcc = Mfcc(bundle.frontend)
    predicted = clip_posteriors(RecurrentNet(bundle.network), [mfcc(a) for a in clips.audio]).argmax(axis=1)
    accuracy = float(np.mean(predicted == clips.labels))
    assert accuracy >= 0.6, f"accuracy {accuracy:.2f} on unseen voices (chance is 0.2)"


def test_interrupted_training_resumes(tiny_dataset, tmp_path):
    """Ctrl-C after the first epoch: one `interrupted` line on stderr (no bar, no TensorFlow
    warning, shown at TF_CPP_MIN_LOG_LEVEL=1), a resume with another --monitor refused in one
    line, and a resume with the same command completing the run."""
    out = tmp_path / "resumed"
    shown = [a for a in SMALL if a != "--quiet"]  # our progress display, as a log file gets it
    args = [sys.executable, "-m", "training.train", "--data", str(tiny_dataset), "--out", str(out),
            "--epochs", "4", *shown]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "1"}
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    work = out.with_name("resumed.work")
    progress = work / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == f"interrupted: run the same command again to resume from {work}"
    first, second = stdout.splitlines()[:2]
    assert first.startswith("clips: ") and "the cache" in first  # where the clips came from, then the epochs
    assert second.startswith("epoch 1/4: loss ") and "best val_clip_accuracy" in stdout and "left" in stdout
    assert "━" not in stdout and "4/4" not in stdout and not out.exists()  # no Keras bar, no bogus end
    done_before = json.loads(progress.read_text())["epochs_done"]
    assert done_before >= 1

    other = subprocess.run(args + ["--monitor", "both"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert (other.returncode, other.stdout) == (2, "")
    assert other.stderr == (f"error: {work}/ holds an interrupted run with --monitor clip (this run: both): give the "
                            f"same settings to resume it, or delete {work}/ to start afresh\n")

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from {out}.work after epoch {done_before}" in again.stdout
    assert again.stdout.startswith("clips: ") and " from the cache " in again.stdout.splitlines()[0]  # reused
    assert f"epoch {done_before + 1}/4: loss" in again.stdout and "epoch 4/4: loss" in again.stdout
    meta = load_bundle(out).metadata
    assert meta["epochs_run"] == 4
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3, 4]


def test_a_split_that_leaves_a_class_almost_nothing_to_train_on_is_refused(tiny_dataset, tmp_path):
    """Most speakers in the test split: refused in one line naming the classes, their counts
    per split and the flags that fix it, before any clip is loaded."""
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--val-percent", "10",
                       "--test-percent", "80"])
    with pytest.raises(DataError) as refused:
        prepare_data(args)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tiny_dataset}: the split leaves too few training clips")
    counts = {c: {} for c in ("yes", "no", "up")}
    for split, clips in scan(tiny_dataset, ("yes", "no", "up"), 10, 80).splits.items():
        for clip in clips:
            if clip.label in counts:
                counts[clip.label][split] = counts[clip.label].get(split, 0) + 1
    for word, n in counts.items():
        assert n.get("training", 0) < 5
        assert (f"{word} {n.get('training', 0)} of {sum(n.values())} (validation {n.get('validation', 0)}, "
                f"testing {n.get('testing', 0)})") in message
    assert "--split-salt" in message and "--val-percent/--test-percent" in message
    result = run_cli("training.train", "--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL,
                     "--val-percent", "10", "--test-percent", "80")
    assert (result.returncode, result.stderr) == (2, f"error: {message}\n")
    assert not (tmp_path / "o.work").exists()


def test_the_shared_test_set_subset_needs_a_salted_split(shared_data):
    """The project's own clips (all speakers in the 10-20% band of TensorFlow's rule)."""
    with pytest.raises(DataError, match=r"yes 2 of 289 \(validation 2, testing 285\)"):
        check_training_split(scan(shared_data, ("yes", "no")), 10, 10)
    check_training_split(scan(shared_data, ("yes", "no"), split_salt="kws"), 10, 10)


def test_mirrored_strategy_on_two_logical_cpus(tiny_dataset, tmp_path):
    out = tmp_path / "mirrored"
    result = run_cli("training.train", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "2",
                     "--strategy", "mirrored", "--cpu-devices", "2", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_bundle(out).metadata["replicas"] == 2


def test_bad_data_folder_is_one_line_error(tmp_path):
    result = run_cli("training.train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path / 'none'}: no such data folder"


def test_batch_size_zero_is_refused_by_the_parser(tmp_path):
    result = run_cli("training.train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--batch-size", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "kws-train: error: argument --batch-size: must be a whole number >= 1, got 0"


def test_help_and_the_missing_tensorflow_error_without_tensorflow(tiny_dataset, tmp_path):
    """`kws-train --help` needs no TensorFlow; a run without it ends in one line (kws[train])."""
    without = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\nfrom training.train import main\n"
    shown = run_code(without + "main(['--help'])")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "--batch-size BATCH_SIZE" in shown.stdout and "(default: 32)" in shown.stdout
    assert "130 interrupted" in shown.stdout  # the exit codes, as the epilog
    run = run_code(without + f"sys.exit(main(['--data', {str(tiny_dataset)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    assert run.returncode == 2
    assert run.stderr == f"error: {TENSORFLOW_MISSING}\n" == "error: training needs TensorFlow: pip install 'kws[train]'\n"
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.work").exists()


def test_data_stage_alone(tiny_dataset, tmp_path):
    """The data stage: the split's clips, speaker-disjoint; feature statistics; the validation stream."""
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--monitor", "both"])
    data = prepare_data(args)
    assert data.labels == [SILENCE, UNKNOWN, "yes", "no", "up"]
    expected = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    assert data.val_clips.paths == [c.path for c in expected.clips("validation")]
    assert data.train_clips.paths == [c.path for c in expected.clips("training")]
    assert not {speaker_of(p) for p in data.train_clips.paths} & {speaker_of(p) for p in data.val_clips.paths
                                                                  if "_silence_" not in str(p)}
    n_mfcc = data.mfcc.config.n_mfcc
    assert data.mean.shape == data.variance.shape == (n_mfcc,) and np.all(data.variance > 0)
    assert np.array_equal(data.maker.feature_fill, data.mean.astype(np.float32))
    assert [len(f) for f in data.val_features] == [len(data.mfcc(a)) for a in data.val_clips.audio]
    features, truth, audio_s, labels = data.val_stream
    assert audio_s == 480 and features.shape[1] == n_mfcc and len(truth) > 10 and labels == data.labels
    again = prepare_data(args)  # deterministic for a seed
    assert np.array_equal(again.mean, data.mean) and np.array_equal(again.val_stream[0], features)
    assert data.val_heard == {}


def test_the_world_monitor_hears_the_validation_clips_through_a_room_and_a_narrow_band(tiny_dataset, tmp_path):
    from training.robustness import narrow_band, reverberant
    from training.train import HEARD_CONDITIONS, MONITOR_ROOM_SEED, heard_features

    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--monitor", "world"])
    data = prepare_data(args)
    assert tuple(data.val_heard) == HEARD_CONDITIONS == ("reverberant", "narrow-band") and data.val_stream is not None
    audio = data.val_clips.audio
    for name, heard in (("reverberant", reverberant(audio, MONITOR_ROOM_SEED)), ("narrow-band", narrow_band(audio))):
        features = data.val_heard[name]
        assert len(features) == len(data.val_features)
        np.testing.assert_allclose(features[0], data.mfcc(heard[0]), atol=1e-5)
        assert not np.allclose(features[0], data.val_features[0], atol=1e-2)  # not the clean clip
    other_rooms = reverberant(audio, 0)  # the robustness table's default rooms are not the monitor's
    assert not np.allclose(data.mfcc(other_rooms[0]), data.val_heard["reverberant"][0], atol=1e-2)
    in_chunks = heard_features(data.val_clips, data.mfcc, MONITOR_ROOM_SEED, chunk=3)  # the same rooms, in pieces
    for name in HEARD_CONDITIONS:
        assert all(np.array_equal(a, b) for a, b in zip(in_chunks[name], data.val_heard[name], strict=True))
    with pytest.raises(SystemExit):
        parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), "--extra-unknown-only"])


def test_data_stage_adds_extra_folders_and_non_command_speech_to_training_only(tiny_dataset, speech, tmp_path):
    from tests.conftest import make_dataset
    from training.data import speech_training_clips

    extra = make_dataset(tmp_path / "synth", commands=("yes", "left"), unknown=("bird",), speakers=2)
    plain = prepare_data(parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL]))
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--extra-data", str(extra),
                       "--speech", str(speech), "--unknown-ratio", "3", "--channel"])
    data = prepare_data(args)
    assert data.val_clips.paths == plain.val_clips.paths  # validation: the data set's own speakers only
    n = len(plain.train_clips)
    assert data.train_clips.paths[:n] == plain.train_clips.paths
    added = data.train_clips.paths[n:]
    speech_clips, speakers = speech_training_clips(speech, data.labels)
    assert added == sorted((extra / w / f.name for w in ("bird", "left", "yes") for f in (extra / w).iterdir()),
                           key=lambda p: (p.parent.name, p.name)) + [c.path for c in speech_clips]
    names = [data.labels[i] for i in data.train_clips.labels[n:]]
    assert names == [UNKNOWN if p.parent.name in ("bird", "left") or p.parent == speech else p.parent.name
                     for p in added]
    at_8k = data.train_clips.paths.index(speech_clips[0].path)
    from kws.audio import load_audio
    expected = load_audio(speech_clips[0].path)
    np.testing.assert_allclose(data.train_clips.clip(at_8k)[: len(expected)], expected, atol=1 / 32768)
    assert data.sources[str(speech.resolve())]["speakers"] == speakers
    assert data.sources[str(extra.resolve())] == {"clips": 6, "labels": [UNKNOWN, "yes"]}
    unknown_only = prepare_data(parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL,
                                            "--extra-data", str(extra), "--extra-unknown-only"]))
    assert unknown_only.train_clips.paths[n:] == [p for p in added if p.parent.name in ("bird", "left")]
    assert unknown_only.sources[str(extra.resolve())] == {"clips": 4, "labels": [UNKNOWN]}
    assert data.maker.channel is not None and plain.maker.channel is None
    x, y, w = data.maker.batch(data.maker.plan(np.arange(len(data.train_clips)), np.random.default_rng(0)), [0], 0)
    assert np.isfinite(x).all() and y.shape == w.shape == x.shape[:2]
    itself = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--extra-data",
                         str(tiny_dataset)])
    with pytest.raises(DataError, match="the --data folder itself"):
        prepare_data(itself)


def test_data_stage_takes_the_initial_bundles_statistics(trained, tiny_dataset, tmp_path):
    start, _ = trained
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--init", str(start)])
    data = prepare_data(args)
    network = load_bundle(start).network
    assert data.initial.path == start
    assert np.array_equal(data.mean, network.mean) and np.array_equal(data.variance, network.variance)
    other = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--init", str(start),
                        "--units", "16"])
    with pytest.raises(DataError, match="cannot start from this bundle"):
        prepare_data(other)


def test_mistyped_flag_is_refused(tmp_path):
    result = run_cli("training.train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--epoch", "3")
    assert result.returncode == 2 and "unrecognized arguments: --epoch 3" in result.stderr


def test_fine_tuning_with_warmup_keeps_the_best_world_score(trained, tiny_dataset, tmp_path):
    """--monitor world: the mean of clean, reverberant and narrow-band clip accuracy plus the
    stream score (the sum of clip accuracy and stream score, --monitor both, is logged too)."""
    start, _ = trained
    out = tmp_path / "tuned"
    result = run_cli("training.train", "--data", str(tiny_dataset), "--out", str(out), "--init", str(start),
                     "--epochs", "3", "--warmup-epochs", "1", "--monitor", "world", "--lr", "1e-3", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = load_bundle(out).metadata
    history = meta["history"]
    for h in history:
        assert abs(h["val_clip_plus_stream"] - (h["val_clip_accuracy"] + h["val_stream_score"])) < 1e-9
        clips = (h["val_clip_accuracy"], h["val_clip_accuracy_reverberant"], h["val_clip_accuracy_narrow-band"])
        assert abs(h["val_world_score"] - (np.mean(clips) + h["val_stream_score"])) < 1e-9
    best = max(history, key=lambda h: h["val_world_score"])
    assert meta["best_epoch"] == best["epoch"] and meta["monitor"] == "val_world_score"
    assert meta["hyperparameters"]["warmup_epochs"] == 1.0
    assert meta["init_from"]["path"] == str(start)
    assert meta["init_from"]["sources"] == load_bundle(start).metadata["sources"]  # robustness reads every stage's
    assert meta["sources"] == {"data": {"folder": str(tiny_dataset.resolve()), "clips": meta["train_clips"]}}


def test_recipe_commands_are_valid_and_skip_finished_steps(tmp_path, monkeypatch):
    from training import recipe
    from training.train import parse_args

    shipped = recipe.commands("DATA", "gru", 8, "O", "W", speech="SPEECH")
    assert [command[0] for _, command in shipped] == ["training.train", "training.train", "training.tune_detector"]
    assert shipped[1][0] == Path("O")  # the stream stage writes the bundle, the tuning hears the speech folder
    assert shipped[2][1][-4:] == ["--target-false-alarms-per-hour", "600", "--speech", "SPEECH"]
    steps = recipe.commands("DATA", "lstm", 64, str(tmp_path / "out"), str(tmp_path / "work"), seed=3, speech="SPEECH",
                            world=True, target=10)
    assert [command[0] for _, command in steps] == ["training.train", "training.train", "training.synth",
                                                     "training.train", "training.interpolate", "training.tune_detector"]
    clip_stage, stream_stage, world_stage = (parse_args(command[1:]) for i, (_, command) in enumerate(steps)
                                             if i in (0, 1, 3))
    assert (clip_stage.arch, clip_stage.units, clip_stage.seed) == ("lstm", 64, 3)
    assert stream_stage.init == str(steps[0][0]) and stream_stage.monitor == "both" and stream_stage.warmup_epochs == 2
    assert world_stage.init == str(steps[1][0]) and world_stage.extra_data == [str(steps[2][0])]
    assert world_stage.extra_unknown_only and world_stage.monitor == "world"
    assert world_stage.out != str(tmp_path / "out") and steps[4][0] == tmp_path / "out"  # the mix writes --out
    assert steps[4][1][1:] == ["--start", stream_stage.out, "--tuned", world_stage.out, "--data", "DATA",
                               "--out", str(tmp_path / "out")]
    assert world_stage.speech == "SPEECH" and world_stage.channel and world_stage.unknown_ratio == 3
    assert world_stage.unknown_while_spoken
    assert steps[5][1][-2:] == ["--target-false-alarms-per-hour", "10"]  # its tuning half was trained on: not heard
    out = tmp_path / "out"
    assert not any(recipe.is_done(output, command[0]) for output, command in steps)
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"detector": None}))
    assert recipe.is_done(out, "training.train") and not recipe.is_done(out, "training.tune_detector")
    (out / "bundle.json").write_text(json.dumps({"detector": {"threshold": 0.5, "tuned": {}}}))
    assert recipe.is_done(out, "training.tune_detector")

    ran = []
    monkeypatch.setattr(recipe.subprocess, "run", lambda command: ran.append(command[2:]) or subprocess.CompletedProcess(command, 0))
    streams = steps[1][0]
    streams.mkdir(parents=True)
    (streams / "bundle.json").write_text("{}")
    (out / "bundle.json").unlink()
    recipe.run(steps)  # the stream stage is there: the clip stage is not needed, the synthesis still is
    assert [c[0] for c in ran] == ["training.synth", "training.train", "training.interpolate", "training.tune_detector"]
    (steps[2][0] / "manifest.json").parent.mkdir(parents=True)
    (steps[2][0] / "manifest.json").write_text("{}")
    ran.clear()
    recipe.run(steps)
    assert [c[0] for c in ran] == ["training.train", "training.interpolate", "training.tune_detector"]
    (out / "bundle.json").write_text(json.dumps({"detector": None}))  # the mix is there: no world stage needed
    ran.clear()
    recipe.run(steps)
    assert [c[0] for c in ran] == ["training.tune_detector"]


def test_the_recurrent_layers_can_run_on_cudnn():
    """The conditions Keras documents for its cuDNN kernels, read from the built layers
    (no GPU needed): tanh, sigmoid, no recurrent dropout, not unrolled, with bias, GRU
    reset_after, use_cudnn not off, and no masking anywhere before them; Keras's own test
    of the arguments agrees."""
    import importlib

    import keras

    from kws.models import build_model, stateful_copy

    for arch in ("gru", "lstm"):
        model = build_model(arch, 40, 12, units=16, layers=2, dropout=0.1, mean=np.zeros(40), variance=np.ones(40))
        for net in (model, stateful_copy(model, arch, 16, 2)):
            recurrent = [layer for layer in net.layers if isinstance(layer, (keras.layers.GRU, keras.layers.LSTM))]
            assert len(recurrent) == 2
            for layer in recurrent:
                config = layer.get_config()
                assert (config["activation"], config["recurrent_activation"]) == ("tanh", "sigmoid")
                assert config["recurrent_dropout"] == 0 and config["unroll"] is False and config["use_bias"] is True
                assert config.get("reset_after", True) is True
                assert layer.use_cudnn in ("auto", True)
                try:  # Keras's own test (a private module: skipped where it moved)
                    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
                except ImportError:
                    continue
                cell = layer.cell
                arguments = (cell.activation, cell.recurrent_activation, layer.unroll, cell.use_bias)
                if arch == "gru":
                    assert rnn._do_gru_arguments_support_cudnn(*arguments, cell.reset_after)
                else:
                    assert rnn._do_lstm_arguments_support_cudnn(*arguments)
            assert not any(isinstance(layer, (keras.layers.Masking, keras.layers.Embedding)) for layer in net.layers)
            assert all(getattr(t, "_keras_mask", None) is None for t in [net.input, *[l.output for l in recurrent]])


def test_training_scores_the_canonical_test_split_when_the_data_set_has_one(tiny_dataset, tmp_path):
    """A copy of the small data set with its own validation_list.txt / testing_list.txt: the
    lists decide the split, the run ends by scoring the test list (commands, unknown
    subsampled, silence) into bundle.json and the final line, and a second run (here: the
    data stage alone) reuses the clip cache."""
    import shutil

    from training.data import canonical_test_split, scan

    root = tmp_path / "listed"
    shutil.copytree(tiny_dataset, root)
    speakers = sorted({speaker_of(p) for p in (root / "yes").glob("*.wav")})
    validation, testing = speakers[:4], speakers[4:8]

    def listed(group):
        return [f"{w}/{p.name}" for w in ("yes", "no", "up", "cat", "dog") for p in sorted((root / w).glob("*.wav"))
                if speaker_of(p) in group]

    (root / "validation_list.txt").write_text("\n".join(listed(validation)) + "\n")
    (root / "testing_list.txt").write_text("\n".join(listed(testing)) + "\n")
    out, cache = tmp_path / "model", tmp_path / "cache"
    result = run_cli("training.train", "--data", str(root), "--out", str(out), "--epochs", "2", "--cache", str(cache),
                     *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = load_bundle(out).metadata
    expected = canonical_test_split(scan(root, ("yes", "no", "up")))
    assert len(expected.clips) == 3 * 4 + 4 and expected.silence == 4  # 4 of each command, unknown cut to 4, silence
    test = meta["test"]
    assert test["split"] == "testing_list.txt" and test["classes"] == 5 and test["clips"] == 20
    assert (test["unknown_listed"], test["silence_made_from_noise"]) == (8, 4) and 0 <= test["accuracy"] <= 1
    assert result.stdout.strip().endswith(f"; test accuracy {test['accuracy']:.4f} (5-class, 20 clips of testing_list.txt)")
    assert meta["val_clips"] == len(listed(validation))
    assert meta["loading"]["cache_built"] and meta["loading"]["cache"].startswith(str(cache))
    args = parse_args(["--data", str(root), "--out", str(tmp_path / "o"), *SMALL, "--cache", str(cache)])
    again = prepare_data(args)
    assert again.loading["cache_built"] is False and again.loading["cache"] == meta["loading"]["cache"]
    assert not [p for p in root.rglob("*") if "cache" in p.name]  # nothing written in the data folder


def test_no_test_split_without_list_files_and_cache_off(trained, tiny_dataset, tmp_path):
    out, result = trained
    assert load_bundle(out).metadata["test"] is None and "test accuracy" not in result.stdout
    args = parse_args(["--data", str(tiny_dataset), "--out", str(tmp_path / "o"), *SMALL, "--cache", "off"])
    data = prepare_data(args)
    assert data.store is None and data.loading["cache"] is None and data.loading["seconds"] > 0
    assert data.train_clips.pcm.dtype == np.int16 and data.train_clips.store is None
