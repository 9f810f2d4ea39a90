"""`kws export`: a bundle -> a LiteRT (TFLite) streaming model with external state, and its JSON.

    kws export --model gru --out gru.tflite [--quantize none|dynamic|int8|int16x8] [--data DIR]

One call of the exported model is one 10 ms hop of one stream. Inputs: `mfcc`, one
standardised MFCC frame (1, 40), and the recurrent state (`h0`, `h1`, ... for a GRU;
`h0`, `c0`, `h1`, `c1`, ... for an LSTM, each (1, units)). Outputs: `posteriors`
(1, classes) and `next_h0`, ... (the state for the next hop). The caller keeps the
state between calls, as `kws.engine` does (kws_streaming's external-state mode), so the
file runs on any LiteRT runtime: Android, iOS, a Raspberry Pi with only
`ai-edge-litert`, and, for the integer variants, microcontroller-class boards.

Decision: the model's input is the MFCC frame, not raw audio; the frontend stays
outside the graph and is specified exactly in the JSON (sample rate, framing, periodic
Hann window, |rFFT|^2, the Slaney mel matrix itself, the log floor, the DCT matrix
itself, and the standardisation with the bundle's mean and scale). Why:
- exactness: the float export then equals the engine to float rounding (tests/test_export.py),
  because the frontend is the same float64-designed, float32-run arithmetic as
  kws/frontend.py. In the graph, the 480-point FFT would have to be a DFT matrix (LiteRT's
  FFT op takes powers of two only) and the log of small powers amplifies its rounding.
- quantisation: the int8 model's input is one int8 tensor with one scale. The power
  spectrum spans over 100 dB and the raw MFCCs span hundreds (c0) down to a few units
  (high coefficients), so neither survives 8 bits; the standardised frame (every
  coefficient about unit variance) does. So the standardisation is also outside the graph,
  the last step of the frontend, in every variant (one frontend for all three files).
- cost: a DFT matrix per hop would cost more multiply-adds than the 128-unit GRU itself.

Quantisation (`--quantize`):
- none: float32 weights and arithmetic.
- dynamic: int8 weights; activations float (dynamic-range quantisation).
- int8: full-integer: int8 weights, int8 activations, int8 input, state and output tensors
  (their scale and zero point are in the JSON): what microcontroller-class boards run.
- int16x8: full-integer with int8 weights and int16 activations and tensors (LiteRT's
  16x8 mode).
An LSTM's cell state c is an unbounded accumulator (a few cells reach tens while most
stay under 1), so one int8 scale over its whole range rounds most of it to zero (the
first int8 export of an earlier shipped LSTM lost 33 points). The integer exports
therefore clip c to +-CELL_CLIP (8) after each step, and calibrate on clipped states:
tanh(8) = 1 - 2e-7, so the output h = o * tanh(c) does not change; only a saturated
cell's memory is shortened. A GRU's state is bounded by tanh and needs none.
The `cell_clip` is in the JSON.
The integer modes' activation ranges are calibrated on a representative set of real
inputs: MFCC frames of training clips (the bundle's own split; never the validation
speakers) paired with the real states the engine reaches on them, run from a zero
state per clip and as one endless stream.

TensorFlow is imported only when an export starts (the `kws[train]` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from kws.bundle import MODEL_FILE, Bundle, load_bundle, sha256_file
from kws.errors import KwsError
from kws.frontend import Mfcc, dct_matrix, mel_filterbank
from kws.litert import (FORMAT, FORMAT_VERSION, INPUT, OUTPUT, SIGNATURE, SUFFIX, is_exported, next_name, spec_path,
                        state_names)
from kws.network import GruWeights, Network

QUANTIZATIONS = ("none", "dynamic", "int8", "int16x8")
INTEGER = {"int8": "int8", "int16x8": "int16"}  # full-integer modes: their activation type
REPRESENTATIVE = 2000  # (frame, state) samples that calibrate the integer modes' activation ranges
REPRESENTATIVE_CLIPS = 600  # training clips they are drawn from
STREAM_CLIPS = 200  # of which this many, end to end, make the endless stream
CELL_CLIP = 8.0  # an integer LSTM export's cell-state bound: tanh(8) = 1 - 2e-7, so h is unchanged
CHECK_SECONDS = 10.0  # speech-like audio the exported file is checked on against the engine


def standardisation(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """The Normalization layer as (mean, scale), float32: input = (mfcc - mean) * scale
    (Keras divides by max(sqrt(variance), 1e-7), as the engine does)."""
    scale = 1.0 / np.maximum(np.sqrt(network.variance), 1e-7)
    return network.mean.astype(np.float32), scale.astype(np.float32)


# --- the representative set (no TensorFlow) ---------------------------------------------------


def representative_samples(bundle: Bundle, signals: list[np.ndarray], n: int = REPRESENTATIVE,
                           seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`n` inputs of the exported step as the engine meets them: a standardised MFCC frame and
    the state just before it. Half come from the signals each run from a zero state (as a clip
    is scored), half from the signals end to end as one stream whose state is never reset (as
    `kws stream` runs)."""
    from kws.engine import RecurrentNet

    network = bundle.network
    net = RecurrentNet(network)
    mfcc = Mfcc(bundle.frontend)
    mean, scale = standardisation(network)
    names = state_names(network.arch, len(network.layers))
    rng = np.random.default_rng(seed)
    samples: list[dict[str, np.ndarray]] = []

    def take(frame: np.ndarray, state: list[tuple[np.ndarray, ...]], row: int) -> None:
        flat = [a[row : row + 1].copy() for layer in state for a in layer]
        samples.append({INPUT: ((frame - mean) * scale)[None].astype(np.float32), **dict(zip(names, flat))})

    features = [mfcc(s) for s in signals]
    by_length: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        if len(f):
            by_length.setdefault(len(f), []).append(i)
    total = sum(len(f) for f in features)
    for length, members in by_length.items():  # clips: zero state at each clip's first frame
        batch = np.stack([features[i] for i in members], axis=1)  # (T, N, F)
        quota = int(round(n / 2 * length * len(members) / max(total, 1)))
        picks = rng.choice(length * len(members), min(quota, length * len(members)), replace=False)
        wanted: dict[int, list[int]] = {}
        for p in picks:
            wanted.setdefault(int(p // len(members)), []).append(int(p % len(members)))
        state, done = net.zero_state(len(members)), 0
        for t in sorted(wanted):  # the network run up to each wanted frame in one call
            if t > done:
                _, state = net.run(batch[done:t], state)
                done = t
            for row in wanted[t]:
                take(batch[t, row], state, row)
    if not signals:
        return samples
    order = rng.permutation(len(signals))[:STREAM_CLIPS]
    stream = mfcc(np.concatenate([signals[i] for i in order]))[:, None, :]
    picks = rng.choice(len(stream), min(n - len(samples), len(stream)), replace=False) if len(stream) else []
    state, done = net.zero_state(1), 0
    for t in sorted(int(p) for p in picks):  # one stream, never reset
        if t > done:
            _, state = net.run(stream[done:t], state)
            done = t
        take(stream[t, 0], state, 0)
    return samples


def training_signals(bundle: Bundle, data: str | os.PathLike, n_clips: int = REPRESENTATIVE_CLIPS,
                     seed: int = 0) -> list[np.ndarray]:
    """Up to `n_clips` clips of the training partition of the bundle's split, drawn at random."""
    from kws.labels import command_words
    from training.data import load_clips, scan_split
    from training.options import chosen_split

    dataset = scan_split(data, command_words(bundle.labels), chosen_split({}, bundle))
    clips = dataset.clips("training")
    if not clips:
        raise KwsError(f"{data}: no training clips for the words of {bundle.path}")
    rng = np.random.default_rng(seed)
    chosen = [clips[i] for i in sorted(rng.choice(len(clips), min(n_clips, len(clips)), replace=False))]
    return list(load_clips(chosen, dataset.labels).audio)


# --- the graph and the conversion (TensorFlow) -------------------------------------------------


def _gates(tf, x, h, kernel: np.ndarray, recurrent: np.ndarray, biases: list[np.ndarray], n: int):
    """Per gate g: (x @ kernel_g, h @ recurrent_g, bias_g) terms. One product per gate and input
    rather than one wide product sliced afterwards: an integer model then gives each gate's
    pre-activation its own scale. The biases are added after the two products' sum, not fused
    into the input product: LiteRT's 16x8 quantiser scales the bias of a product fed by the
    model's input with the wrong input scale (a random 24-unit GRU: posteriors off by 0.10 with
    the fused bias, 0.006 without)."""
    u = recurrent.shape[0]
    parts = []
    for g in range(n):
        cols = slice(g * u, (g + 1) * u)
        parts.append((tf.matmul(x, tf.constant(kernel[:, cols])), tf.matmul(h, tf.constant(recurrent[:, cols])),
                      [tf.constant(b[cols]) for b in biases]))
    return parts


def _gru_step(tf, x, h, w: GruWeights):
    """Keras GRU, reset_after=True, gates z, r, h (the engine's `_gru_scan`)."""
    (xz, hz, (bz, rbz)), (xr, hr, (br, rbr)), (xh, hh, (bh, rbh)) = _gates(
        tf, x, h, w.kernel, w.recurrent, [w.input_bias, w.recurrent_bias], 3)
    z = tf.sigmoid((xz + hz) + (bz + rbz))
    r = tf.sigmoid((xr + hr) + (br + rbr))
    candidate = tf.tanh((xh + r * (hh + rbh)) + bh)
    return candidate + z * (h - candidate)


def _lstm_step(tf, x, h, c, w, cell_clip: float | None = None):
    """Keras LSTM, gates i, f, c, o (the engine's `_lstm_scan`); with `cell_clip`, the new
    cell state clipped to +-cell_clip."""
    (xi, hi, (bi,)), (xf, hf, (bf,)), (xc, hc, (bc,)), (xo, ho, (bo,)) = _gates(
        tf, x, h, w.kernel, w.recurrent, [w.bias], 4)
    i = tf.sigmoid((xi + hi) + bi)
    f = tf.sigmoid((xf + hf) + bf)
    g = tf.tanh((xc + hc) + bc)
    o = tf.sigmoid((xo + ho) + bo)
    c_new = f * c + i * g
    if cell_clip:
        c_new = tf.clip_by_value(c_new, -cell_clip, cell_clip)
    return o * tf.tanh(c_new), c_new


def build_step(network: Network, cell_clip: float | None = None):
    """The network's one-hop step as a tf.function with a fixed signature, inside a tf.Module
    (the converter takes the module so that the signature keeps its input and output names)."""
    import tensorflow as tf

    names = state_names(network.arch, len(network.layers))
    units = {f"{kind}{i}": layer.units for i, layer in enumerate(network.layers) for kind in "hc"}
    signature = [tf.TensorSpec([1, network.n_features], tf.float32, name=INPUT)]
    signature += [tf.TensorSpec([1, units[name]], tf.float32, name=name) for name in names]

    def step(mfcc, *state):
        values = dict(zip(names, state))
        x, outputs = mfcc, {}
        for i, layer in enumerate(network.layers):
            if isinstance(layer, GruWeights):
                x = outputs[next_name(f"h{i}")] = _gru_step(tf, x, values[f"h{i}"], layer)
            else:
                x, outputs[next_name(f"c{i}")] = _lstm_step(tf, x, values[f"h{i}"], values[f"c{i}"], layer, cell_clip)
                outputs[next_name(f"h{i}")] = x
        logits = tf.matmul(x, tf.constant(network.dense_kernel)) + tf.constant(network.dense_bias)
        outputs[OUTPUT] = tf.nn.softmax(logits)
        return outputs

    module = tf.Module()
    module.step = tf.function(step, input_signature=signature)  # the specs' names name the inputs
    return module


def cell_clip(network: Network, quantize: str) -> float | None:
    """The LSTM cell-state bound of an integer export (None: no clip)."""
    return CELL_CLIP if quantize in INTEGER and network.arch == "lstm" else None


def clip_cells(sample: dict[str, np.ndarray], bound: float) -> dict[str, np.ndarray]:
    """A representative sample with its cell states clipped as the integer graph clips them."""
    return {name: np.clip(value, -bound, bound) if re.fullmatch(r"c\d+", name) else value
            for name, value in sample.items()}


def convert(network: Network, quantize: str = "none", representative: list[dict] | None = None) -> bytes:
    """The step converted by TFLiteConverter.from_concrete_functions, quantised as asked."""
    from training.train import import_quietly

    tf = import_quietly("tensorflow")
    clip = cell_clip(network, quantize)
    module = build_step(network, clip)
    if clip and representative:
        representative = [clip_cells(sample, clip) for sample in representative]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize in INTEGER:
        if not representative:
            raise KwsError(f"--quantize {quantize} needs a representative set")
        converter.representative_dataset = lambda: iter(representative)
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [ops.TFLITE_BUILTINS_INT8 if quantize == "int8"
                                               else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = converter.inference_output_type = getattr(tf, INTEGER[quantize])
    with _quiet_converter(), warnings.catch_warnings():
        # the calibration runs TensorFlow's own deprecated tf.lite.Interpreter, which says so
        warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter is deprecated", UserWarning)
        return converter.convert()


class _quiet_converter:
    """The converter's MLIR passes write pages of progress to fd 2; kept for an error only."""

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.log = tempfile.TemporaryFile()
        os.dup2(self.log.fileno(), 2)

    def __exit__(self, kind, error, tb):
        import sys

        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        if kind is not None:
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace")[-4000:])
        self.log.close()
        return False


# --- the JSON beside the model -----------------------------------------------------------------


def _tensor(name: str, details: dict) -> dict:
    scale, zero_point = details["quantization"]
    return {"name": name, "tensor": details["name"], "index": int(details["index"]),
            "shape": [int(d) for d in details["shape"]], "dtype": np.dtype(details["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}


def frontend_spec(bundle: Bundle) -> dict:
    c = bundle.frontend
    mean, scale = standardisation(bundle.network)
    mel = mel_filterbank(c.sample_rate, c.window, c.n_mels, c.fmin, c.fmax).astype(np.float32)
    return {
        **c.to_dict(),
        "window_samples": c.window, "hop_samples": c.hop, "n_fft": c.window, "log_floor": 1e-10,
        "audio": "mono float samples at sample_rate, full scale 1.0 (int16 / 32768)",
        "framing": "frame t covers samples [t*hop, t*hop + window): not centred, no padding; the first frame "
                   "completes after window samples, then one frame (one model call) per hop",
        "steps": [
            "x = frame * hann, hann[n] = 0.5 - 0.5*cos(2*pi*n/window) (periodic), float32",
            "power = |rfft(x, n_fft)|^2, n_fft/2 + 1 bins",
            "mel = mel_matrix @ power (Slaney-normalised triangular filters, librosa.filters.mel's defaults)",
            "log_mel = 10*log10(max(mel, log_floor))",
            "mfcc = dct_matrix @ log_mel (orthonormal DCT-II, first n_mfcc rows)",
            "input = (mfcc - mean) * scale, the model's `mfcc` input",
        ],
        "why": "the model's input is the standardised MFCC frame, not raw audio: the frontend outside the graph "
               "is exactly kws's own (the float export equals the engine), and only the standardised frame "
               "survives one int8 scale (the raw MFCCs span hundreds in c0 and a few units in c39)",
        "mean": mean.tolist(), "scale": scale.tolist(),
        "mel_matrix": mel.tolist(),
        "dct_matrix": dct_matrix(c.n_mels, c.n_mfcc).astype(np.float32).tolist(),
    }


def _dumps(meta: dict) -> str:
    """Indented JSON with each list of numbers on one line."""
    text = json.dumps(meta, indent=1)
    return re.sub(r"\[[-+0-9.eE,\s]*\]", lambda m: "[" + ", ".join(m.group(0)[1:-1].split()).replace(",,", ",") + "]", text)


def describe(bundle: Bundle, model: bytes, model_path: Path, quantize: str, source: str,
             representative: dict | None = None) -> dict:
    """The JSON beside the model: everything a caller needs to run it without kws."""
    from dataclasses import asdict

    from kws.engine import detector_config
    from kws.litert import open_interpreter, tensor_details

    network = bundle.network
    names = state_names(network.arch, len(network.layers))
    inputs, outputs = tensor_details(open_interpreter(model))
    split_keys = ("val_percent", "test_percent", "split_salt", "data", "words")
    keras_file = bundle.path / MODEL_FILE if bundle.path else None
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": model_path.name,
        "tflite_sha256": None,  # filled in once the file is written
        "labels": list(bundle.labels),
        "model": {"arch": network.arch, "units": [layer.units for layer in network.layers],
                  "n_features": network.n_features, "n_params": network.n_params, "source": source,
                  "source_sha256": sha256_file(keras_file) if keras_file and keras_file.is_file() else None},
        "quantization": {"mode": quantize, **({"representative": representative} if representative else {}),
                         **({"cell_clip": clip} if (clip := cell_clip(network, quantize)) else {})},
        "signature": SIGNATURE,
        "inputs": [_tensor(INPUT, inputs[INPUT])] + [_tensor(name, inputs[name]) for name in names],
        "outputs": [_tensor(OUTPUT, outputs[OUTPUT])] + [_tensor(next_name(name), outputs[next_name(name)]) for name in names],
        "states": [{"name": name, "next": next_name(name), "layer": int(name[1:]), "kind": name[0],
                    "shape": [1, network.layers[int(name[1:])].units], "initial": 0.0} for name in names],
        "call": "per hop: set `mfcc` and every state input, invoke, read `posteriors`; feed each `next_*` output back "
                "as its state input on the next hop; start (and reset) with zero states. Integer tensors: "
                "q = round(x / scale) + zero_point, x = (q - zero_point) * scale",
        "detector": {**asdict(detector_config(bundle)),  # the tuned point, and its curve where the bundle has one
                     **{key: value for key, value in (bundle.detector or {}).items() if key == "curve"}},
        "detector_note": "smooth the posteriors over average_window_ms, fire when a command's smoothed posterior "
                         "stays >= threshold for min_above_ms, then stay silent for suppression_ms (kws/detector.py)",
        "frontend": frontend_spec(bundle),
        "training": {key: value for key, value in (bundle.metadata or {}).items() if key in split_keys},
    }


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(bundle: Bundle, out: str | os.PathLike, quantize: str = "none", representative: list[dict] | None = None,
           source: str | None = None, representative_note: dict | None = None) -> dict:
    """Write `out` (.tflite) and the JSON beside it; returns the JSON's content."""
    out = Path(out)
    if out.suffix != SUFFIX:
        raise KwsError(f"{out}: the exported model's name must end in {SUFFIX}")
    if quantize not in QUANTIZATIONS:
        raise KwsError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize}")
    model = convert(bundle.network, quantize, representative)
    meta = describe(bundle, model, out, quantize, source or str(bundle.path), representative_note)
    _write_atomically(out, model)
    meta["tflite_sha256"] = sha256_file(out)
    _write_atomically(spec_path(out), (_dumps(meta) + "\n").encode())
    return meta


def check_against_engine(bundle: Bundle, exported: str | os.PathLike, seconds: float = CHECK_SECONDS) -> float:
    """The largest posterior difference between the exported file and the engine, streaming
    `seconds` of speech-like audio hop by hop."""
    from kws.engine import Engine
    from training.timing import speechlike

    audio = speechlike(seconds, 1)
    hop = bundle.frontend.hop
    reference, candidate = Engine(bundle), Engine(load_bundle(exported))
    a = np.concatenate([reference.process(audio[i : i + hop]).posteriors for i in range(0, len(audio), hop)])
    b = np.concatenate([candidate.process(audio[i : i + hop]).posteriors for i in range(0, len(audio), hop)])
    return float(np.abs(a - b).max())


def run(args: argparse.Namespace) -> int:
    """The `kws export` verb (its arguments are defined in kws/cli.py)."""
    from training.train import require_tensorflow

    require_tensorflow()
    if is_exported(args.model):
        raise KwsError(f"{args.model}: already an exported model; export from a bundle folder, gru or lstm")
    if not str(args.out).endswith(SUFFIX):
        raise KwsError(f"--out {args.out}: the exported model's name must end in {SUFFIX}")
    bundle = load_bundle(args.model)
    started = time.perf_counter()
    representative, note = None, None
    if args.quantize in INTEGER:
        data = args.data or (bundle.metadata or {}).get("data")
        if not data or not Path(data).is_dir():
            raise KwsError(f"--quantize {args.quantize} calibrates on training clips: give --data DIR"
                           + (f" (the bundle's recorded data folder {data} is not there)" if data else ""))
        signals = training_signals(bundle, data)
        representative = representative_samples(bundle, signals)
        note = {"data": str(data), "partition": "training", "clips": len(signals), "samples": len(representative)}
    meta = export(bundle, args.out, args.quantize, representative, str(args.model), note)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB, {args.quantize}) and {spec_path(args.out).name} "
          f"in {time.perf_counter() - started:.1f} s")
    print(f"inputs: {', '.join(t['name'] + str(t['shape']) + ' ' + t['dtype'] for t in meta['inputs'])}")
    print(f"outputs: {', '.join(t['name'] + str(t['shape']) + ' ' + t['dtype'] for t in meta['outputs'])}")
    if not args.no_check:
        difference = check_against_engine(bundle, args.out)
        print(f"check: {CHECK_SECONDS:.0f} s of speech-like audio hop by hop, largest posterior difference "
              f"from the engine {difference:.2g}")
    return 0
