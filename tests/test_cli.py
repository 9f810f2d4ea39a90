"""The `kws` verbs end to end, as subprocesses, on real audio files."""

import json
import os
import resource
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.bundle import load_bundle
from kws.detector import Detector
from kws.engine import detector_config
from kws.frontend import Mfcc
from kws.models import load_keras_model
from kws.scoring import read_truth
from tests.conftest import ROOT, espeak, run_cli


# Every verb runs with TensorFlow and Keras made unimportable: the runtime must not need them.
WITHOUT_TENSORFLOW = ("import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; "
                      "from kws.cli import main; sys.exit(main(sys.argv[1:]))")


def kws(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def console_script(name: str) -> str:
    """The installed entry point (`.venv/bin/kws`), as a user runs it."""
    return str(Path(sys.executable).parent / name)


@pytest.fixture(scope="module")
def labelled_folder(tiny_dataset, tmp_path_factory):
    """A labelled folder in the canonical test-set layout, with a few bad files in it."""
    root = tmp_path_factory.mktemp("labelled")
    for sub in ("yes", "no", "up", "_silence_"):
        shutil.copytree(tiny_dataset / sub, root / sub)
    shutil.copytree(tiny_dataset / "cat", root / "_unknown_")
    shutil.copytree(tiny_dataset / "_background_noise_", root / "_background_noise_")
    return root


def add_bad_files(folder):
    (folder / "yes" / "empty.wav").write_bytes(b"")
    (folder / "no" / "notes.wav").write_text("this is not audio\n" * 10)
    good = sorted((folder / "up").glob("*.wav"))[0].read_bytes()
    (folder / "up" / "truncated.wav").write_bytes(good[:30])
    return {"empty.wav": "empty file", "notes.wav": "not a readable audio file", "truncated.wav": "not a readable audio file"}


def test_classify_text_and_json(trained, spoken):
    model = str(trained[0])
    files = [str(spoken[w]) for w in ("yes", "no", "stop")]
    text = kws("classify", *files, "--model", model)
    assert text.returncode == 0, text.stderr
    assert len(text.stdout.strip().splitlines()) == 3
    result = kws("classify", *files, "--model", model, "--format", "json")
    rows = json.loads(result.stdout)
    labels = load_bundle(model).labels
    assert [r["file"] for r in rows] == files
    assert all(r["label"] in labels and 0 <= r["score"] <= 1 for r in rows)


def test_classify_reports_bad_files_and_keeps_going(trained, spoken, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    result = kws("classify", str(spoken["yes"]), str(bad), str(tmp_path / "missing.wav"), "--model", str(trained[0]),
                 "--format", "json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [r["file"] for r in json.loads(result.stdout)] == [str(spoken["yes"])]
    assert result.stderr.splitlines() == [f"error: {bad}: empty file (0 bytes)", f"error: {tmp_path / 'missing.wav'}: no such file"]


def test_missing_model_is_one_line(tmp_path, spoken):
    result = kws("classify", str(spoken["yes"]), "--model", str(tmp_path / "nomodel"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such model bundle" in result.stderr


def test_runtime_verb_prints_exactly_one_line_and_never_imports_tensorflow(tmp_path):
    """The installed `kws` script: nothing but the error reaches stderr (no TensorFlow,
    absl or oneDNN start-up lines), and TensorFlow/Keras are never imported."""
    missing = tmp_path / "missing.wav"
    result = subprocess.run([console_script("kws"), "stream", str(missing)], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (1, f"error: {missing}: no such file\n", "")
    probe = ("import sys; from kws.cli import main; code = main(sys.argv[1:]); "
             "print(sorted(m for m in ('tensorflow', 'keras', 'librosa') if m in sys.modules))")
    used = subprocess.run([sys.executable, "-c", probe, "stream", str(ROOT / "examples" / "commands.wav"), "--format", "json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert used.returncode == 0 and used.stderr == "", used.stderr
    assert used.stdout.strip().splitlines()[-1] == "[]"


def test_same_bad_file_gives_the_same_exit_status_in_every_verb(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all\n" * 20)
    for verb in ("classify", "stream", "evaluate"):
        result = kws(verb, str(bad))
        assert result.returncode == 1, (verb, result.stderr)
        assert result.stderr.startswith(f"error: {bad}: not a readable audio file"), (verb, result.stderr)
        assert "Traceback" not in result.stderr


def test_header_only_wav_is_an_error_in_stream_too(tmp_path):
    empty = tmp_path / "header_only.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    result = kws("stream", str(empty))
    assert result.returncode == 1 and result.stderr == f"error: {empty}: contains no audio samples (truncated or empty data chunk)\n"


@pytest.mark.parametrize("args, option", [
    (["classify", "x.wav", "--batch-size", "0"], "--batch-size"),
    (["stream", "x.wav", "--threshold", "1.5"], "--threshold"),
    (["stream", "x.wav", "--block-ms", "-5"], "--block-ms"),
    (["evaluate", "x.wav", "--tolerance-ms", "abc"], "--tolerance-ms"),
    (["listen", "--seconds", "0"], "--seconds"),
])
def test_numeric_options_are_checked_by_the_parser(args, option):
    result = kws(*args)
    assert result.returncode == 2 and f"argument {option}:" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_exit_codes_and_defaults():
    result = kws("stream", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "exit status: 0 ok; 1 an input file could not be used" in text and "(default: 500.0)" in text


def test_unknown_verb_and_flag_are_refused():
    assert kws("clasify", "x").returncode == 2
    result = kws("classify", "x.wav", "--formatt", "json")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_evaluate_labelled_folder_matches_independent_computation(trained, labelled_folder, tmp_path):
    model = str(trained[0])
    plot = tmp_path / "confusion.png"
    result = kws("evaluate", str(labelled_folder), "--model", model, "--format", "json", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # independent: Keras model.predict on the same features, labels from the folder names
    bundle = load_bundle(model)
    keras_model = load_keras_model(model)
    mfcc = Mfcc(bundle.frontend)
    truth, predicted = [], []
    names = {"yes": "yes", "no": "no", "up": "up", "_silence_": "silence", "_unknown_": "unknown"}
    for folder, label in names.items():
        for wav in sorted((labelled_folder / folder).glob("*.wav")):
            from kws.audio import load_audio

            audio = load_audio(wav)
            features = mfcc(np.pad(audio, (0, max(0, 16000 - len(audio)))))  # clips are 1 s, as in training
            predicted.append(int(keras_model.predict(features[None], verbose=0)[0, -1].argmax()))
            truth.append(bundle.labels.index(label))
    expected = float(np.mean(np.array(truth) == np.array(predicted)))
    assert report["n"] == len(truth)
    assert report["accuracy"] == pytest.approx(expected, abs=1e-4)
    assert set(report["per_class"]) == set(bundle.labels)
    assert all({"precision", "recall", "n"} <= set(v) for v in report["per_class"].values())
    assert report["confusion"]["labels"] == bundle.labels
    assert np.array(report["confusion"]["matrix"]).sum() == len(truth)
    assert report["failures"] == []
    assert len(report["misclassified"]) == round((1 - expected) * len(truth))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_short_clip_is_heard_as_in_training_padded_with_silence_to_1_s(trained, spoken, tmp_path):
    from kws.audio import load_audio

    audio = load_audio(spoken["yes"])
    assert len(audio) < 16000
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.pad(audio, (0, 16000 - len(audio))), 16000, subtype="FLOAT")
    (tmp_path / "set" / "yes").mkdir(parents=True)
    sf.write(tmp_path / "set" / "yes" / "short.wav", audio, 16000, subtype="FLOAT")
    classified = json.loads(kws("classify", str(tmp_path / "set" / "yes" / "short.wav"), str(padded), "--model",
                                str(trained[0]), "--format", "json").stdout)
    assert classified[0]["label"] == classified[1]["label"] and classified[0]["score"] == classified[1]["score"]
    bundle = load_bundle(str(trained[0]))
    model, mfcc = load_keras_model(str(trained[0])), Mfcc(bundle.frontend)
    heard = [model.predict(mfcc(a)[None], verbose=0)[0, -1] for a in (audio, np.pad(audio, (0, 16000 - len(audio))))]
    assert not np.allclose(*heard, atol=1e-3)  # the padding changes what the model says: the check above means something
    assert classified[0]["score"] == pytest.approx(float(heard[1].max()), abs=1e-3)
    evaluated = json.loads(kws("evaluate", str(tmp_path / "set"), "--model", str(trained[0]), "--format",
                               "json").stdout)
    assert evaluated["n"] == 1 and evaluated["accuracy"] == float(classified[0]["label"] == "yes")


def test_evaluate_folder_with_bad_files(trained, labelled_folder, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(labelled_folder, folder)
    expected = add_bad_files(folder)
    n_good = sum(1 for sub in ("yes", "no", "up", "_silence_", "_unknown_") for _ in (labelled_folder / sub).glob("*.wav"))
    result = kws("evaluate", str(folder), "--model", str(trained[0]), "--format", "json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == n_good
    failures = {os.path.basename(f["file"]): f["reason"] for f in report["failures"]}
    assert set(failures) == set(expected)
    for name, reason in expected.items():
        assert reason in failures[name]
    assert len(result.stderr.strip().splitlines()) == 3


def test_evaluate_unlabelled_files_csv(trained, spoken):
    result = kws("evaluate", str(spoken["yes"]), str(spoken["go"]), "--model", str(trained[0]), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "file,label,score,runner_up,runner_up_score,truth"
    assert len(lines) == 3 and lines[1].startswith(str(spoken["yes"]) + ",")


@pytest.fixture(scope="module")
def long_stream(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "stream.wav"
    result = run_cli("training.make_stream", "--data", str(tiny_dataset), "--minutes", "1", "--seed", "3",
                     "--out", str(out), "--split", "training", "--words", "yes,no,up", "--val-percent", "30")
    assert result.returncode == 0, result.stderr
    return out


def test_make_stream_is_deterministic(tiny_dataset, long_stream, tmp_path):
    again = tmp_path / "again.wav"
    run_cli("training.make_stream", "--data", str(tiny_dataset), "--minutes", "1", "--seed", "3", "--out", str(again),
            "--split", "training", "--words", "yes,no,up", "--val-percent", "30")
    assert again.read_bytes() == long_stream.read_bytes()
    assert again.with_suffix(".csv").read_text() == long_stream.with_suffix(".csv").read_text()
    truth = read_truth(long_stream.with_suffix(".csv"))
    assert len(truth) > 15 and {w.label for w in truth} <= {"yes", "no", "up", "unknown"}
    assert sf.info(long_stream).duration == pytest.approx(60, abs=0.01)


def offline_detections(model_path, wav):
    """Keras over the whole recording at once, then the detector: what streaming must equal."""
    bundle = load_bundle(model_path)
    audio, _ = sf.read(wav, dtype="float32")
    posteriors = load_keras_model(model_path).predict(Mfcc(bundle.frontend)(audio)[None], verbose=0)[0]
    found = Detector(bundle.labels, detector_config(bundle)).run(posteriors)
    return [(d.label, round(d.time_s, 3)) for d in found]


def test_stream_json_equals_offline_computation(trained, long_stream):
    result = kws("stream", str(long_stream), "--model", str(trained[0]), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(set(r) == {"label", "time_s", "score"} for r in rows)
    assert [(r["label"], r["time_s"]) for r in rows] == offline_detections(trained[0], long_stream)
    assert rows, "the model trained on these voices should detect some of their words"


def test_evaluate_long_recording_with_truth(trained, long_stream):
    result = kws("evaluate", str(long_stream), "--model", str(trained[0]), "--format", "json",
                 "--truth", str(long_stream.with_suffix(".csv")))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("hits", "misses", "wrong", "false_alarms", "false_alarms_per_hour", "audio_s"):
        assert key in report
    assert set(report["latency_ms"]) == {"median", "p90"}
    assert report["audio_s"] == pytest.approx(60, abs=0.1)
    truth = read_truth(long_stream.with_suffix(".csv"))
    commands = sum(1 for w in truth if w.label != "unknown")
    assert report["hits"] + report["misses"] + report["wrong"] >= commands
    assert len(report["streams"][0]["detections"]) == report["hits"] + report["wrong"] + report["false_alarms"]


def peak_rss_mb(args) -> float:
    """Peak resident memory of a child process, in MB."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return float(out.stdout.strip())


def peak_rss_short_and_long(command: list[str], folder, seed: int) -> tuple[float, float]:
    """Peak memory of `command FILE` on 30 s and on 10 min of quiet noise, in MB."""
    rng = np.random.default_rng(seed)
    short, long = folder / "short.wav", folder / "long.wav"
    sf.write(short, (0.01 * rng.standard_normal(16000 * 30)).astype(np.float32), 16000, subtype="PCM_16")
    with sf.SoundFile(long, "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(10):
            f.write((0.01 * rng.standard_normal(16000 * 60)).astype(np.float32))
    return peak_rss_mb([*command, str(short)]), peak_rss_mb([*command, str(long)])


def test_stream_memory_does_not_grow_with_file_length(trained, tmp_path):
    command = [sys.executable, "-m", "kws.cli", "stream", "--model", str(trained[0])]
    small, big = peak_rss_short_and_long(command, tmp_path, seed=0)
    # a 10-minute file is 38 MB as float32: a reader that loaded it whole would show that
    assert big - small < 15, f"peak memory {small:.0f} MB for 30 s, {big:.0f} MB for 10 min"


def test_narrow_band_input_is_warned_once_per_file(tmp_path):
    from kws.audio import load_audio, resample

    clip = load_audio(ROOT / "examples" / "commands.wav")[16000:35200]
    low, high = tmp_path / "phone.wav", tmp_path / "wide.wav"
    sf.write(low, resample(clip, 16000, 8000), 8000, subtype="PCM_16")
    sf.write(high, clip, 16000, subtype="PCM_16")
    for verb in ("classify", "evaluate"):
        result = kws(verb, str(low), str(high))
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert warnings == [f"warning: {low}: recorded at 8000 Hz, so it holds nothing above 4000 Hz; the model "
                            "listens up to 7600 Hz and is less accurate on such audio"], (verb, result.stderr)
    assert kws("stream", str(high)).stderr.count("warning") == 0


def test_classify_folder_suggests_evaluate(tmp_path):
    result = kws("classify", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path}: is a folder: `kws evaluate {tmp_path}` scores folders and labelled sets\n"


def test_classify_long_recording_hints_and_streams_in_bounded_memory(tmp_path):
    from kws.bundle import load_bundle
    from kws.engine import RecurrentNet
    from kws.recognizer import clip_posteriors

    recording = ROOT / "examples" / "commands.wav"
    result = kws("classify", str(recording), "--format", "json")
    assert result.returncode == 0
    assert "classify gives one label for the whole file, `kws stream` or `kws evaluate`" in result.stderr
    bundle = load_bundle("gru")
    audio, _ = sf.read(recording, dtype="float32")
    expected = clip_posteriors(RecurrentNet(bundle.network), [Mfcc(bundle.frontend)(audio)])[0]
    row = json.loads(result.stdout)[0]
    assert row["label"] == bundle.labels[int(expected.argmax())] and row["score"] == pytest.approx(expected.max(), abs=1e-4)
    small, big = peak_rss_short_and_long([sys.executable, "-m", "kws.cli", "classify"], tmp_path, seed=1)
    assert big - small < 15, f"peak memory {small:.0f} MB for 30 s, {big:.0f} MB for 10 min"


def test_a_reader_that_stops_reading_gets_no_traceback():
    """`kws stream rec.wav | head -0`: the pipe is closed before kws writes; it stops quietly."""
    process = subprocess.Popen([console_script("kws"), "stream", str(ROOT / "examples" / "commands.wav")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first detection is printed
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
