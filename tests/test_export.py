"""`kws export`: the LiteRT streaming model against the engine.

The float export equals the engine to float rounding for any chunking of the audio
(hypothesis); the quantised variants stay within the bounds stated in BOUNDS; the JSON
alone (no kws) reproduces the frontend and runs the file; `kws stream`/`classify` with a
.tflite find what the shipped bundle finds; the error lines without TensorFlow or
without ai-edge-litert. Small random models (no ../shared), and the shipped models for
the command-line checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kws.bundle import Bundle, BundleError, load_bundle
from kws.engine import Engine, detector_config
from kws.frontend import Mfcc, MfccConfig
from kws.litert import LITERT_MISSING
from tests.conftest import ROOT, run_cli
from tests.test_engine import LABELS, audio, chunked
from tests.test_listen import pulse  # noqa: F401  (the PulseAudio fixture of the listen test below)

pytest.importorskip("ai_edge_litert")

UNITS = 32  # every weight matrix has >= 1024 entries, so dynamic-range quantisation touches them all
VARIANTS = ("none", "dynamic", "int8", "int16x8")
# Stated bounds of the quantised variants against the engine, over 8 s of audio streamed hop by
# hop through a random 2-layer, 32-unit model with doubled recurrent weights (so the state
# matters): (largest, mean) absolute posterior difference. The integer LSTM exports clip the cell
# state to +-8 (see training/export.py), so that one int8 scale holds it.
BOUNDS = {
    ("gru", "dynamic"): (0.02, 0.005), ("lstm", "dynamic"): (0.02, 0.005),
    ("gru", "int8"): (0.1, 0.02), ("lstm", "int8"): (0.1, 0.02),
    ("gru", "int16x8"): (0.05, 0.005), ("lstm", "int16x8"): (0.05, 0.005),
}
WITHOUT = "import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; {extra}from kws.cli import main; sys.exit(main(sys.argv[1:]))"


def random_bundle(arch: str, seed: int = 0) -> Bundle:
    import keras

    from kws.models import build_model, network_of

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(arch, 40, len(LABELS), UNITS, 2, dropout=0.0, mean=rng.normal(size=40) * 20,
                        variance=rng.uniform(10, 400, 40))
    for layer in model.layers:  # larger recurrent weights than Keras's init: the state matters
        if type(layer).__name__ in ("GRU", "LSTM"):
            kernel, recurrent, bias = layer.get_weights()
            layer.set_weights([kernel * 2, recurrent * 2, bias + 0.1])
    return Bundle(LABELS, MfccConfig(), arch, UNITS, 2, network=network_of(model),
                  metadata={"val_percent": 10.0, "test_percent": 10.0, "split_salt": ""})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every variant of a random GRU and LSTM: {(arch, variant): (bundle, path)}."""
    from training.export import export, representative_samples

    folder = tmp_path_factory.mktemp("exported")
    out = {}
    for arch in ("gru", "lstm"):
        bundle = random_bundle(arch)
        representative = representative_samples(bundle, [audio(1.0, seed) for seed in range(30)], 600)
        for variant in VARIANTS:
            path = folder / f"{arch}_{variant}.tflite"
            export(bundle, path, variant, representative if variant.startswith("int") else None, source=arch)
            out[arch, variant] = bundle, path
    return out


@pytest.mark.parametrize("arch", ["gru", "lstm"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seconds=st.floats(0.05, 2.5), seed=st.integers(0, 1000),
       sizes=st.lists(st.integers(1, 12_000), min_size=1, max_size=12))
def test_float_export_equals_the_engine_in_random_chunkings(exported, arch, seconds, seed, sizes):
    bundle, path = exported[arch, "none"]
    signal = audio(seconds, seed)
    engine, lite = Engine(bundle), Engine(load_bundle(path))
    a = [engine.process(chunk) for chunk in chunked(signal, sizes)]
    b = [lite.process(chunk) for chunk in chunked(signal, sizes)]
    expected, got = np.concatenate([r.posteriors for r in a]), np.concatenate([r.posteriors for r in b])
    assert got.shape == expected.shape == (Mfcc()(signal).shape[0], len(LABELS))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r.first_frame for r in b] == [r.first_frame for r in a]
    assert [d for r in b for d in r.detections] == [d for r in a for d in r.detections]


@pytest.mark.parametrize("arch", ["gru", "lstm"])
@pytest.mark.parametrize("variant", ["dynamic", "int8", "int16x8"])
def test_quantised_variants_stay_within_their_stated_bounds(exported, arch, variant):
    bundle, path = exported[arch, variant]
    signal = audio(8.0, 999)
    difference = np.abs(Engine(load_bundle(path)).process(signal).posteriors - Engine(bundle).process(signal).posteriors)
    largest, mean = BOUNDS[arch, variant]
    assert difference.max() <= largest and difference.mean() <= mean, (difference.max(), difference.mean())
    assert difference.max() > 0  # quantised indeed
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["quantization"]["mode"] == variant
    if variant.startswith("int"):  # full-integer: integer tensors in and out, no float arithmetic inside
        from kws.litert import open_interpreter

        kind = "int8" if variant == "int8" else "int16"
        assert {t["dtype"] for t in meta["inputs"] + meta["outputs"]} == {kind}
        assert all(t["quantization"]["scale"] > 0 for t in meta["inputs"] + meta["outputs"])
        interpreter = open_interpreter(path)
        floats = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
        assert floats == [], floats
    if variant.startswith("int") and arch == "lstm":  # the cell state: clipped to +-8, and its scale spans that
        from training.export import CELL_CLIP

        assert meta["quantization"]["cell_clip"] == CELL_CLIP == 8.0
        levels = 2 ** (8 if variant == "int8" else 16)
        cells = [t for t in meta["inputs"] + meta["outputs"] if t["name"] in ("c0", "c1", "next_c0", "next_c1")]
        assert len(cells) == 4
        for tensor in cells:
            assert tensor["quantization"]["scale"] * (levels - 1) <= 2 * CELL_CLIP * 1.01, tensor
    else:
        assert "cell_clip" not in meta["quantization"]
    if variant == "int8":
        assert path.stat().st_size < exported[arch, "none"][1].stat().st_size / 2


def test_the_json_alone_gives_the_frontend_and_runs_the_file(exported):
    """A caller without kws: MFCC from the JSON's numbers and formulas, then the bare
    interpreter fed by the JSON's tensor indices, hop by hop with the state fed back."""
    from ai_edge_litert.interpreter import Interpreter

    bundle, path = exported["lstm", "none"]
    spec = json.loads(path.with_suffix(".json").read_text())
    assert spec["labels"] == LABELS and spec["model_file"] == path.name
    f = spec["frontend"]
    signal = audio(1.5, 7)
    n = (len(signal) - f["window_samples"]) // f["hop_samples"] + 1
    frames = np.stack([signal[t * f["hop_samples"] : t * f["hop_samples"] + f["window_samples"]] for t in range(n)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(f["window_samples"]) / f["window_samples"])
    power = np.abs(np.fft.rfft(frames * hann, f["n_fft"])) ** 2
    log_mel = 10 * np.log10(np.maximum(power @ np.array(f["mel_matrix"]).T, f["log_floor"]))
    mfcc = log_mel @ np.array(f["dct_matrix"]).T
    np.testing.assert_allclose(mfcc, Mfcc()(signal), atol=2e-3)  # float64 here, float32 in kws
    x = ((mfcc - np.array(f["mean"])) * np.array(f["scale"])).astype(np.float32)

    interpreter = Interpreter(model_path=str(path.parent / spec["model_file"]))
    interpreter.allocate_tensors()
    index = {t["name"]: t["index"] for t in spec["inputs"] + spec["outputs"]}
    state = {s["name"]: np.full(s["shape"], s["initial"], np.float32) for s in spec["states"]}
    posteriors = []
    for frame in x:
        interpreter.set_tensor(index["mfcc"], frame[None])
        for name, value in state.items():
            interpreter.set_tensor(index[name], value)
        interpreter.invoke()
        posteriors.append(interpreter.get_tensor(index["posteriors"])[0].copy())
        state = {s["name"]: interpreter.get_tensor(index[s["next"]]).copy() for s in spec["states"]}
    np.testing.assert_allclose(np.array(posteriors), Engine(bundle).process(signal).posteriors, atol=2e-4)
    assert [s["name"] for s in spec["states"]] == ["h0", "c0", "h1", "c1"]
    assert spec["detector"]["threshold"] == 0.6 and spec["detector"]["frame_ms"] == 10.0


def test_a_tflite_without_its_json_or_with_another_json_is_refused(exported, tmp_path):
    _, path = exported["gru", "none"]
    alone = tmp_path / "alone.tflite"
    shutil.copy(path, alone)
    with pytest.raises(BundleError, match="alone.json is missing beside it"):
        load_bundle(alone)
    shutil.copy(exported["gru", "int8"][1].with_suffix(".json"), tmp_path / "alone.json")
    with pytest.raises(BundleError, match="does not match alone.json"):
        load_bundle(alone)


def test_export_refuses_a_bad_name_and_integer_modes_without_data(tmp_path, capsys):
    from kws.bundle import save_bundle
    from kws.cli import main
    from kws.models import build_model

    model = build_model("gru", 40, len(LABELS), 8, 1, mean=np.zeros(40), variance=np.ones(40))
    folder = save_bundle(Bundle(LABELS, MfccConfig(), "gru", 8, 1), model, tmp_path / "b")
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "x.onnx")]) == 2
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "x.tflite"), "--quantize", "int8"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [f"error: --out {tmp_path / 'x.onnx'}: the exported model's name must end in .tflite",
                      "error: --quantize int8 calibrates on training clips: give --data DIR"]
    assert not (tmp_path / "x.tflite").exists()


def kws_without(*args: str, extra: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT.format(extra=extra), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_export_without_tensorflow_and_a_tflite_without_litert_are_one_line(exported, tmp_path):
    result = kws_without("export", "--model", "gru", "--out", str(tmp_path / "x.tflite"))
    assert (result.returncode, result.stderr) == (2, "error: training needs TensorFlow: pip install 'kws[train]'\n")
    _, path = exported["gru", "none"]
    wav = str(ROOT / "examples" / "commands.wav")
    result = kws_without("stream", wav, "--model", str(path), extra="sys.modules['ai_edge_litert'] = None; ")
    assert (result.returncode, result.stderr) == (2, f"error: {LITERT_MISSING}\n")
    assert LITERT_MISSING == "running a .tflite model needs the LiteRT interpreter: pip install ai-edge-litert"
    result = kws_without("stream", wav, "--model", str(path), "--format", "json")  # no TensorFlow needed to run it
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_kws_export_of_the_shipped_model_streams_the_same_detections(arch, tmp_path):
    """The bar: `kws stream --model X.tflite` on a long recording finds what `--model gru`
    (and lstm) finds; `kws classify` gives the same label and score."""
    out = tmp_path / f"{arch}.tflite"
    made = run_cli("kws.cli", "export", "--model", arch, "--out", str(out))
    assert made.returncode == 0 and made.stderr == "", made.stderr[-2000:]
    check = [line for line in made.stdout.splitlines() if line.startswith("check:")]
    assert len(check) == 1 and float(check[0].rsplit(" ", 1)[1]) < 1e-5, made.stdout
    meta = json.loads(out.with_suffix(".json").read_text())
    expected = asdict(detector_config(load_bundle(arch)))
    assert meta["model"]["arch"] == arch and {key: meta["detector"][key] for key in expected} == expected

    def run(*args):
        result = kws_without(*args)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    wav = str(ROOT / "examples" / "commands.wav")
    engine, lite = run("stream", wav, "--model", arch, "--format", "json"), run("stream", wav, "--model", str(out), "--format", "json")
    assert len(engine) >= 5
    assert [(d["label"], d["time_s"]) for d in lite] == [(d["label"], d["time_s"]) for d in engine]
    np.testing.assert_allclose([d["score"] for d in lite], [d["score"] for d in engine], atol=2e-4)
    clip = tmp_path / "clip.wav"
    sf.write(clip, sf.read(wav, dtype="float32")[0][16000:32000], 16000)
    a, b = run("classify", str(clip), "--model", arch, "--format", "json"), run("classify", str(clip), "--model", str(out), "--format", "json")
    assert a[0]["label"] == b[0]["label"] and abs(a[0]["score"] - b[0]["score"]) < 2e-4


@pytest.mark.slow
def test_listen_with_the_float_export_prints_what_the_engine_finds_in_what_it_heard(pulse, tmp_path):
    """`kws listen --model X.tflite` through a real PortAudio input (tests/test_listen.py's
    PulseAudio null sink): the detections it prints are those of the shipped GRU's engine on
    the audio it recorded."""
    from tests.test_listen import listen_while_playing
    from training.export import export

    out = tmp_path / "gru.tflite"
    export(load_bundle("gru"), out)
    record = tmp_path / "heard.wav"
    found, _ = listen_while_playing(str(out), ROOT / "examples" / "commands.wav", record, pulse)
    offline = kws_without("stream", str(record), "--model", "gru", "--format", "json")
    expected = [(d["label"], d["time_s"]) for d in json.loads(offline.stdout)]
    assert len(found) >= 5 and [label for label, _ in found] == [label for label, _ in expected], (found, expected)
    assert np.allclose([t for _, t in found], [t for _, t in expected], atol=0.0051)  # live prints 2 decimals
