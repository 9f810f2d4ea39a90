"""The robustness table of a trained model, in one command that anyone can rerun.

    python -m training.robustness --model gru --data ../shared/data/speech_commands \
        --speech ../shared/data/spoken_digits/recordings [--noise-minutes 60] [--stream-minutes 30]

For the model and its detector (the bundle's tuned settings, or --threshold /
--false-alarms-per-hour), every figure naming its data:

- clip accuracy on the validation speakers of the data split recorded in the bundle
  (speakers the model never heard), clean and under four conditions: reverberant (each
  clip through its own synthetic room impulse response, RT60 0.4 s: see ROOM),
  narrow-band (resampled to 8 kHz and back: telephone band, nothing above 4 kHz), quiet
  (-20 dB) and loud (+10 dB, clipped to [-1, 1]);
- false alarms per hour on non-command speech (--speech: a folder of recordings of words
  that are not commands, such as the Free Spoken Digit Dataset), each recording once,
  laid end to end with gaps over faint background noise into one stream that runs
  through the streaming engine, state never reset; every detection there is a false
  alarm. If the bundle heard some of those speakers (kws-train --speech,
  training.tune_detector --speech), only the others are used. Recordings below 16 kHz
  are also played at 16 kHz as they are (twice as fast, an octave up, filling the band);
- false alarms per hour on --noise-minutes of background noise and no speech (the data
  set's _background_noise_, built as benchmarks/bench_soak.py builds it);
- hits, wrong words and false alarms on a --stream-minutes stream of the validation
  speakers' commands and unknown words (training.make_stream.build_stream).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from kws.audio import SAMPLE_RATE, AudioError, load_audio, resample
from kws.bundle import load_bundle
from kws.cli import add_detector_arguments
from kws.detector import DetectorConfig
from kws.engine import Engine, RecurrentNet, detector_config
from kws.errors import non_negative_float, non_negative_int
from kws.frontend import Mfcc
from kws.recognizer import clip_posteriors
from kws.scoring import score_stream
from training.data import DataError, load_noise, rms, speech_files, speech_speaker
from training.make_stream import build_stream
from training.sequences import noise_cut
from training.options import add_split_arguments, given_split, make_parser, run_main, training_stages, validation_set

# The simulated room: Sabine's critical distance of a 60 m^3 room with RT60 0.4 s is
# 0.057 * sqrt(60 / 0.4) = 0.70 m, so a talker 1 m from the microphone is heard with a
# direct-to-reverberant ratio of 20 * log10(0.70 / 1) = -3.1 dB.
ROOM = {"rt60_s": 0.4, "volume_m3": 60.0, "distance_m": 1.0}
NARROW_BAND_RATE = 8000
QUIET_DB, LOUD_DB = -20.0, 10.0
SPEECH_GAP_S = (0.3, 1.5)  # as the validation stream's gaps
SPEECH_NOISE_DBFS = -40.0  # as the validation stream's background noise
NOISE_DBFS = (-50.0, -20.0)  # the soak's noise levels, each held 10-30 s
NOISE_HOLD_S = (10, 30)


def direct_to_reverberant_db(rt60_s: float, volume_m3: float, distance_m: float) -> float:
    return 20 * np.log10(0.057 * np.sqrt(volume_m3 / rt60_s) / distance_m)


def room_response(rng: np.random.Generator, rt60_s: float, drr_db: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response: the direct sound (1 at t = 0), then from 2 ms on a
    diffuse tail of Gaussian noise whose level falls by 60 dB in `rt60_s`, holding
    10^(-drr_db / 10) times the direct sound's energy."""
    t = np.arange(int(rt60_s * rate)) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-3 * np.log(10) * t / rt60_s)
    tail[: int(0.002 * rate)] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail


def reverberant(audio: np.ndarray, seed) -> np.ndarray:
    """Each clip (a row) through its own room response, cut to its length, at its own RMS
    level; the rooms drawn from `seed` (a seed, or a generator to go on drawing from)."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)  # a generator is used as it is
    drr = direct_to_reverberant_db(**ROOM)
    out = np.empty_like(audio)
    for i, clip in enumerate(audio):
        wet = fftconvolve(clip, room_response(rng, ROOM["rt60_s"], drr))[: len(clip)]
        out[i] = wet * (rms(clip) / max(rms(wet), 1e-12))
    return out


def narrow_band(audio: np.ndarray) -> np.ndarray:
    return np.stack([resample(resample(clip, SAMPLE_RATE, NARROW_BAND_RATE), NARROW_BAND_RATE)[: audio.shape[1]]
                     for clip in audio]) if len(audio) else audio


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    return np.clip(audio * 10 ** (db / 20), -1.0, 1.0).astype(np.float32)


def conditions(seed: int) -> list[tuple[str, str, object]]:
    """(name, what it is, clips -> clips) of each listening condition."""
    drr = direct_to_reverberant_db(**ROOM)
    return [
        ("clean", "as recorded", lambda a: a),
        ("reverberant", f"synthetic room response per clip: RT60 {ROOM['rt60_s']} s, direct-to-reverberant "
                        f"{drr:.1f} dB (a {ROOM['volume_m3']:g} m^3 room, talker {ROOM['distance_m']:g} m away), "
                        f"seed {seed}", lambda a: reverberant(a, seed)),
        ("narrow-band", f"resampled to {NARROW_BAND_RATE} Hz and back (telephone band: nothing above "
                        f"{NARROW_BAND_RATE // 2} Hz)", narrow_band),
        ("quiet", f"{QUIET_DB:+g} dB", lambda a: gain(a, QUIET_DB)),
        ("loud", f"{LOUD_DB:+g} dB, clipped to [-1, 1]", lambda a: gain(a, LOUD_DB)),
    ]


@dataclass
class Row:
    measure: str
    value: float
    unit: str
    data: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"measure": self.measure, "value": self.value, "unit": self.unit, "data": self.data, **self.details}


# ---------------------------------------------------------------- non-command speech

def load_speech(files: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Each recording at 16 kHz (resampled), as its raw samples, and the lowest rate among them."""
    resampled, raw, rates = [], [], []
    for path in files:
        resampled.append(load_audio(path))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        raw.append(data.mean(axis=1))
        rates.append(rate)
    return resampled, raw, min(rates)


def speech_stream(signals: list[np.ndarray], noise: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The recordings once each in random order, a random gap before each and after the
    last, over continuous background noise at SPEECH_NOISE_DBFS."""
    gaps = (rng.uniform(*SPEECH_GAP_S, len(signals) + 1) * SAMPLE_RATE).astype(int)
    pieces = []
    for index, gap in zip(rng.permutation(len(signals)), gaps):
        pieces += [np.zeros(gap, np.float32), signals[index]]
    audio = np.concatenate(pieces + [np.zeros(gaps[-1], np.float32)])
    if noise:
        audio += 10 ** (SPEECH_NOISE_DBFS / 20) * noise_cut(noise, len(audio), rng)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def noise_blocks(sources: list[np.ndarray], minutes: float, rng: np.random.Generator):
    """One-second blocks of noise; every 10-30 s another recording at another level (dBFS)."""
    left = int(round(minutes * 60))
    while left > 0:
        source = sources[rng.integers(len(sources))]
        level = 10 ** (rng.uniform(*NOISE_DBFS) / 20)
        for _ in range(min(left, int(rng.integers(NOISE_HOLD_S[0], NOISE_HOLD_S[1] + 1)))):
            start = rng.integers(0, len(source) - SAMPLE_RATE)
            yield (level * source[start : start + SAMPLE_RATE]).astype(np.float32)
            left -= 1


def run_engine(bundle, config: DetectorConfig, blocks) -> tuple[list, float]:
    """Blocks of 16 kHz audio through one streaming engine, never reset -> (detections, seconds)."""
    engine = Engine(bundle, config)
    detections = []
    for block in blocks:
        detections += engine.process(block).detections
    return detections, engine.seconds_seen


def in_blocks(audio: np.ndarray, seconds: float = 10.0):
    step = int(seconds * SAMPLE_RATE)
    return (audio[i : i + step] for i in range(0, len(audio), step))


def false_alarm_row(measure: str, data: str, detections: list, seconds: float, **details) -> Row:
    per_hour = len(detections) * 3600 / seconds if seconds else 0.0
    fired = Counter(d.label for d in detections).most_common()
    return Row(measure, round(per_hour, 2), "per hour", data,
               {"detections": len(detections), "audio_s": round(seconds, 1), "fired": dict(fired), **details})


def heard_speakers(bundle) -> list[str]:
    """The non-command speakers the bundle has heard: in training (kws-train --speech, at
    any stage) or in tuning its detector (training.tune_detector --speech)."""
    tuned = (((bundle.detector or {}).get("tuned") or {}).get("speech") or {}).get("speakers") or []
    trained = [s for stage in training_stages(bundle.metadata) for source in (stage.get("sources") or {}).values()
               for s in source.get("speakers", [])]
    return sorted(set(tuned) | set(trained))


def speech_rows(bundle, config, folder: str, noise: list[np.ndarray], seed: int) -> list[Row]:
    files = speech_files(folder)
    tuned = set(heard_speakers(bundle))
    used = [f for f in files if speech_speaker(f) not in tuned]
    if not used:
        raise DataError(f"{folder}: every speaker in it was heard in training or tuning; none is left to measure on")
    speakers = sorted({speech_speaker(f) for f in used})
    try:
        resampled, raw, lowest_rate = load_speech(used)
    except AudioError as error:
        raise DataError(f"{folder}: {error}") from None
    who = (f"{len(used)} recordings of {len(speakers)} speakers ({', '.join(speakers)})"
           + (f", not the {len(tuned)} heard in training or tuning" if tuned else "") + f" in {folder}")
    layout = f"once each in random order (seed {seed}), {SPEECH_GAP_S[0]}-{SPEECH_GAP_S[1]} s gaps, " \
             f"validation noise at {SPEECH_NOISE_DBFS:g} dBFS"
    band = f"; narrow-band: recorded at {lowest_rate} Hz, nothing above {lowest_rate // 2} Hz" \
        if lowest_rate < SAMPLE_RATE else ""
    rows = []
    audio = speech_stream(resampled, noise, np.random.default_rng(seed))
    detections, seconds = run_engine(bundle, config, in_blocks(audio))
    rows.append(false_alarm_row("false alarms: non-command speech", f"{who}, {layout}{band}", detections, seconds,
                                speakers=speakers, recordings=len(used), sample_rate=lowest_rate))
    if lowest_rate < SAMPLE_RATE:
        audio = speech_stream(raw, noise, np.random.default_rng(seed))
        detections, seconds = run_engine(bundle, config, in_blocks(audio))
        rows.append(false_alarm_row("false alarms: the same played at 16 kHz",
                                    f"the same {len(used)} recordings' samples played at {SAMPLE_RATE} Hz as they are "
                                    f"(faster, higher: not natural speech, but the band filled), {layout}",
                                    detections, seconds, speakers=speakers, recordings=len(used)))
    return rows


# ---------------------------------------------------------------- the table

def measure(args) -> dict:
    bundle = load_bundle(args.model)
    config = detector_config(bundle, threshold=args.threshold, false_alarms_per_hour=args.false_alarms_per_hour)
    if args.speech:
        speech_files(args.speech)  # a missing folder is reported before any work
    dataset, clips, val_noise, split = validation_set(args.data, bundle, given_split(args))
    mfcc, net = Mfcc(bundle.frontend), RecurrentNet(bundle.network)
    who = (f"{len(clips.labels)} clips of the validation speakers (split: {split['val_percent']:g}% validation, "
           f"salt {split['split_salt']!r}) of {args.data}")
    rows = []
    for name, what, condition in conditions(args.seed):
        posteriors = clip_posteriors(net, [mfcc(a) for a in condition(clips.audio)])
        accuracy = float(np.mean(posteriors.argmax(axis=1) == clips.labels)) if len(clips.labels) else 0.0
        rows.append(Row(f"clip accuracy: {name}", round(accuracy, 4), "", f"{who}; {what}",
                        {"condition": name, "clips": len(clips.labels)}))
        who = "the same clips"
    if args.speech:
        rows += speech_rows(bundle, config, args.speech, val_noise, args.seed)
    if args.noise_minutes:
        if not dataset.noise_files:
            raise DataError(f"{args.data}: no _background_noise_ recordings for the noise-only stream")
        sources = load_noise(dataset.noise_files, "training", held_out=0.0)  # the whole recordings, as the soak
        detections, seconds = run_engine(bundle, config, noise_blocks(sources, args.noise_minutes,
                                                                      np.random.default_rng(args.seed)))
        rows.append(false_alarm_row(
            "false alarms: noise only",
            f"{seconds / 60:.0f} min of {args.data}/_background_noise_ ({len(sources)} recordings, all of each, "
            f"as the soak: each 10-30 s at {NOISE_DBFS[0]:g} to {NOISE_DBFS[1]:g} dBFS, seed {args.seed}), no speech",
            detections, seconds))
    if args.stream_minutes:
        audio, truth = build_stream(clips, dataset.labels, val_noise, args.stream_minutes * 60,
                                    np.random.default_rng(args.seed))
        detections, seconds = run_engine(bundle, config, in_blocks(audio))
        s = score_stream(detections, truth, seconds)
        data = (f"a {seconds / 60:.0f}-min stream of those validation speakers' commands and unknown words "
                f"(training.make_stream, seed {args.seed}), {s.commands} commands")
        details = {"commands": s.commands, "hits": s.hits, "wrong": s.wrong, "false_alarms": s.false_alarms,
                   "audio_s": round(seconds, 1)}
        rows += [Row("stream: hit rate", round(s.hit_rate, 4), f"({s.hits}/{s.commands})", data, details),
                 Row("stream: wrong words", s.wrong, f"({s.wrong * 3600 / seconds:.1f} per hour)",
                     "the same stream (a command taken for another, or a command fired on an unknown word)"),
                 Row("stream: false alarms", s.false_alarms, f"({s.false_alarms_per_hour:.1f} per hour)",
                     "the same stream (detections with no word in reach)")]
    return {"model": str(args.model), "arch": bundle.arch, "units": bundle.units, "layers": bundle.layers,
            "detector": config.to_dict(), "detector_source": detector_source(args), "rows": [r.to_dict() for r in rows]}


def detector_source(args) -> str:
    if args.false_alarms_per_hour is not None:
        source = f"the bundle's curve at <= {args.false_alarms_per_hour:g} false alarms per hour"
    else:
        source = "the bundle's tuned settings"
    return source + (f", threshold {args.threshold:g} given" if args.threshold is not None else "")


def print_text(table: dict) -> None:
    d = table["detector"]
    print(f"robustness of {table['model']} ({table['arch'].upper()} {table['layers']}x{table['units']}); detector: "
          f"threshold {d['threshold']:g}, window {d['average_window_ms']:g} ms, above {d['min_above_ms']:g} ms, "
          f"suppression {d['suppression_ms']:g} ms ({table['detector_source']})")
    width = max(len(r["measure"]) for r in table["rows"])
    for r in table["rows"]:
        value = f"{r['value']:.4f}" if isinstance(r["value"], float) and r["unit"] != "per hour" else f"{r['value']:g}"
        unit = f" {r['unit']}" if r["unit"] else ""
        extra = ""
        if "fired" in r:
            top = ", ".join(f"{label} {n}" for label, n in list(r["fired"].items())[:5])
            extra = f" [{r['detections']} in {r['audio_s'] / 60:.1f} min" + (f"; most: {top}]" if top else "]")
        print(f"{r['measure']:<{width}}  {value + unit + extra}\n{'':<{width}}    data: {r['data']}")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.robustness", __doc__)
    parser.add_argument("--model", default="gru", help="gru, lstm (the shipped models) or a bundle folder")
    parser.add_argument("--data", required=True, help="the Speech Commands folder the model was trained on")
    parser.add_argument("--speech", help="a folder of recordings of non-command speech (WORD_SPEAKER_INDEX.wav), "
                                         "e.g. ../shared/data/spoken_digits/recordings")
    parser.add_argument("--noise-minutes", type=non_negative_float, default=60.0,
                        help="minutes of noise-only audio (0: skip)")
    parser.add_argument("--stream-minutes", type=non_negative_float, default=30.0,
                        help="minutes of the validation stream (0: skip)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the rooms, the streams and the noise")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_detector_arguments(parser)
    add_split_arguments(parser)
    args = parser.parse_args(argv)
    return run_main(lambda: report(args))


def report(args) -> int:
    table = measure(args)
    if args.format == "json":
        print(json.dumps(table, indent=1))
    else:
        print_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
