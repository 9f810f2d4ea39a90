"""The `kws` command: one verb per task.

    kws classify FILE... [--model gru|lstm|PATH] [--format text|json]
    kws stream FILE [--model ...] [--format text|csv|json]
    kws listen [--device N] [--model ...] [--threshold T] [--list-devices]
    kws evaluate PATH... [--model ...] [--format text|csv|json] [--plot FILE] [--truth CSV]
    kws export --model gru|lstm|PATH --out FILE.tflite [--quantize none|dynamic|int8|int16x8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kws import interrupt
from kws.audio import AudioError, check_readable, load_clip, narrow_band_warning
from kws.errors import (EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_INTERRUPTED, KwsError, positive_float, positive_int, probability,
                        report)

# The runtime never imports TensorFlow or Keras: the bundle's weights are read with h5py
# and run by the numba engine. Inputs are checked before the model is loaded, so a bad
# path is reported at once.


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="gru",
                        help="gru, lstm (the shipped models), a bundle folder or a FILE.tflite from kws export (default: gru)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Streaming speech-command recognition.",
                                     epilog=EXIT_CODES_HELP, allow_abbrev=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    options = dict(epilog=EXIT_CODES_HELP, allow_abbrev=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    classify = verbs.add_parser("classify", help="top label and score of each audio clip", **options)
    classify.add_argument("files", nargs="+", metavar="FILE")
    add_model_argument(classify)
    classify.add_argument("--format", choices=("text", "json"), default="text")
    classify.add_argument("--batch-size", type=positive_int, default=256, help="clips per network call")
    classify.set_defaults(run=run_classify)

    stream = verbs.add_parser("stream", help="detections in a long recording, through the streaming engine", **options)
    stream.add_argument("file", metavar="FILE")
    add_model_argument(stream)
    add_detector_arguments(stream)
    stream.add_argument("--format", choices=("text", "csv", "json"), default="text")
    stream.add_argument("--block-ms", type=positive_float, default=500.0, help="how much audio is read at a time")
    stream.set_defaults(run=run_stream)

    listen = verbs.add_parser("listen", help="recognise commands from a microphone, live", **options)
    listen.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    listen.add_argument("--device", help="input device index or name (default: the system default)")
    add_model_argument(listen)
    add_detector_arguments(listen)
    listen.add_argument("--seconds", type=positive_float, help="stop after this much audio (default: until Ctrl-C)")
    listen.add_argument("--record", metavar="WAV", help="also save the 16 kHz audio the recogniser heard (float WAV)")
    listen.add_argument("--plain", action="store_true", help="print detections line by line instead of the live panel")
    listen.set_defaults(run=run_listen)

    evaluate = verbs.add_parser("evaluate", help="judge a model on files, folders, labelled sets and recordings", **options)
    evaluate.add_argument("paths", nargs="+", metavar="PATH")
    add_model_argument(evaluate)
    add_detector_arguments(evaluate)
    evaluate.add_argument("--format", choices=("text", "csv", "json"), default="text")
    evaluate.add_argument("--plot", metavar="FILE", help="write the confusion matrix as a PNG")
    evaluate.add_argument("--truth", metavar="CSV", help="ground truth (label,time_ms per word) of one long recording")
    evaluate.add_argument("--tolerance-ms", type=positive_float, default=1500.0, help="how long after a word's start a detection counts")
    evaluate.set_defaults(run=run_evaluate)

    export = verbs.add_parser("export", help="a LiteRT (TFLite) streaming model and its JSON (needs kws[train])", **options)
    add_model_argument(export)
    export.add_argument("--out", required=True, metavar="FILE.tflite", help="the model to write; FILE.json goes beside it")
    export.add_argument("--quantize", choices=("none", "dynamic", "int8", "int16x8"), default="none",
                        help="float; int8 weights; full-integer int8; full-integer with int16 activations")
    export.add_argument("--data", help="Speech Commands folder whose training clips calibrate int8/int16x8 "
                                       "(default: the folder recorded in the bundle)")
    export.add_argument("--no-check", action="store_true", help="skip streaming the exported file against the engine")
    export.set_defaults(run=run_export)
    return parser


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    from kws.errors import non_negative_float

    parser.add_argument("--threshold", type=probability,
                        help="smoothed posterior needed to fire, in (0, 1] (default: the model's tuned value)")
    parser.add_argument("--false-alarms-per-hour", type=non_negative_float, metavar="N",
                        help="the detector setting with the fewest misses at no more than N false alarms per hour, "
                             "from the curve measured when the model was tuned (default: the model's tuned "
                             "operating point; --threshold still overrides the threshold)")


def check_inputs(paths: list[str]) -> tuple[list[tuple[str, object]], list[AudioError]]:
    """Header checks of every file before any model loads; bad ones are collected, not fatal."""
    good, failures = [], []
    for path in paths:
        try:
            if Path(path).is_dir():
                raise AudioError(path, f"is a folder: `kws evaluate {path}` scores folders and labelled sets")
            good.append((path, check_readable(path)))
        except AudioError as error:
            failures.append(error)
    return good, failures


def report_failures(failures: list[AudioError]) -> None:
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)


def warn(message: str | None) -> None:
    if message:
        print(f"warning: {message}", file=sys.stderr)


def warn_narrow_band(inputs, frontend) -> None:
    for path, info in inputs:
        warn(narrow_band_warning(path, info.samplerate, frontend.fmax))


def run_classify(args: argparse.Namespace) -> int:
    from kws.evaluate import LONG_FILE_S

    inputs, failures = check_inputs(args.files)
    if not inputs:
        report_failures(failures)
        return failures[0].exit_code
    from kws.audio import iter_blocks
    from kws.bundle import load_bundle
    from kws.engine import Engine
    from kws.recognizer import classify_audio, recording_posterior

    bundle = load_bundle(args.model)
    warn_narrow_band(inputs, bundle.frontend)
    posteriors: dict[str, object] = {}
    clips = []
    for path, info in inputs:
        if info.duration > LONG_FILE_S:  # a recording: streamed, so memory stays bounded
            warn(f"{path}: {info.duration:.1f} s long; classify gives one label for the whole file, "
                 f"`kws stream` or `kws evaluate` finds each command in a recording")
            posteriors[path] = recording_posterior(Engine(bundle), iter_blocks(path))
            continue
        try:
            clips.append((path, load_clip(path)))
        except AudioError as error:
            failures.append(error)
    for (path, _), p in zip(clips, classify_audio(bundle, [signal for _, signal in clips], args.batch_size)):
        posteriors[path] = p
    results = [
        {"file": path, "label": bundle.labels[int(posteriors[path].argmax())], "score": round(float(posteriors[path].max()), 4)}
        for path, _ in inputs if path in posteriors
    ]
    if args.format == "json":
        print(json.dumps(results, indent=1))
    else:
        width = max((len(r["file"]) for r in results), default=0)
        for r in results:
            print(f"{r['file']:<{width}}  {r['label']:<8} {r['score']:.3f}")
    report_failures(failures)
    return failures[0].exit_code if failures else 0


def make_engine(args: argparse.Namespace):
    from kws.bundle import load_bundle
    from kws.engine import Engine, detector_config

    bundle = load_bundle(args.model)
    config = detector_config(bundle, threshold=args.threshold, false_alarms_per_hour=args.false_alarms_per_hour)
    return Engine(bundle, config)


def run_stream(args: argparse.Namespace) -> int:
    from kws.audio import iter_blocks

    info = check_readable(args.file)
    engine = make_engine(args)
    warn(narrow_band_warning(args.file, info.samplerate, engine.bundle.frontend.fmax))
    detections = []
    for block in iter_blocks(args.file, block_s=args.block_ms / 1000):
        for d in engine.process(block).detections:
            detections.append(d)
            if args.format == "text":
                print(f"{d.time_s:9.2f}s  {d.label:<8} {d.score:.3f}", flush=True)
    rows = [{"label": d.label, "time_s": round(d.time_s, 3), "score": round(d.score, 4)} for d in detections]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        print("label,time_s,score")
        for row in rows:
            print(f"{row['label']},{row['time_s']},{row['score']}")
    else:
        print(f"{len(rows)} detections in {engine.seconds_seen:.1f} s", file=sys.stderr)
    return 0


def open_recording(path: str, rate: int):
    import soundfile

    try:
        return soundfile.SoundFile(path, "w", rate, 1, subtype="FLOAT")  # lossless: replays exactly
    except (soundfile.LibsndfileError, OSError) as error:
        raise KwsError(f"{path}: cannot write the recording ({error})") from None


def run_listen(args: argparse.Namespace) -> int:
    from kws.live import Listener, MicrophoneError, list_input_devices, make_display, summary

    if args.list_devices:
        print(list_input_devices())
        return 0
    stop = interrupt.install()  # Ctrl-C / SIGTERM end the session with a summary
    engine = make_engine(args)
    listener = None
    try:
        record = open_recording(args.record, engine.bundle.frontend.sample_rate) if args.record else None
        listener = Listener(engine, args.device, record=record)
        display = make_display(str(args.model), args.plain)
        try:
            listener.run(display, args.seconds, stop=stop)
        finally:
            display.close()
            if record is not None:
                record.close()
        print(("stopped: " if stop.is_set() else "done: ") + summary(listener.session), flush=True)
        return 0
    except MicrophoneError as error:
        code = report(error)
        if listener is not None:
            print("stopped: " + summary(listener.session), flush=True)
        return code


def run_evaluate(args: argparse.Namespace) -> int:
    from kws.evaluate import evaluate, metrics, plot_confusion
    from kws.scoring import read_truth, score_stream

    truth = read_truth(args.truth) if args.truth else None  # a bad truth file is reported before any work
    engine = make_engine(args)
    result = evaluate(engine.bundle, args.paths, engine=engine)
    scored = [str(item.path) for item in (*result.clips, *result.streams)]
    warn_narrow_band([(path, check_readable(path)) for path in scored], engine.bundle.frontend)
    report: dict = {"model": str(args.model)}
    report["files"] = [clip_row(c, engine.labels) for c in result.clips]
    if result.labelled:
        m = metrics(result)
        report.update(n=m.n, accuracy=round(m.accuracy, 4), per_class=m.per_class(),
                      confusion={"labels": m.labels, "matrix": m.confusion.tolist()},
                      misclassified=[row for row in report["files"] if row["truth"] != row["label"]])
        if args.plot:
            plot_confusion(m, args.plot, str(args.model))
    report["streams"] = [
        {"file": str(s.path), "audio_s": round(s.audio_s, 2),
         "detections": [{"label": d.label, "time_s": round(d.time_s, 3), "score": round(d.score, 4)} for d in s.detections]}
        for s in result.streams
    ]
    if truth is not None:
        if len(result.streams) != 1:
            raise KwsError(f"--truth needs exactly one long recording (found {len(result.streams)})")
        stream = result.streams[0]
        report.update(score_stream(stream.detections, truth, stream.audio_s, args.tolerance_ms).to_dict())
    report["failures"] = [{"file": str(f.path), "reason": f.reason} for f in result.failures]
    print_report(report, args.format)
    for failure in result.failures:
        print(f"error: {failure.path}: {failure.reason}", file=sys.stderr)
    return EXIT_BAD_INPUT if result.failures else 0


def clip_row(clip, labels: list[str]) -> dict:
    from kws.recognizer import top_k

    (top, score), (second, second_score) = top_k(clip.posterior, labels, 2)
    return {"file": str(clip.path), "label": top, "score": round(score, 4), "runner_up": second,
            "runner_up_score": round(second_score, 4), "truth": clip.label}


def print_report(report: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report, indent=1))
        return
    if fmt == "csv":
        print("file,label,score,runner_up,runner_up_score,truth")
        for r in report["files"]:
            print(f"{r['file']},{r['label']},{r['score']},{r['runner_up']},{r['runner_up_score']},{r['truth'] or ''}")
        if report["streams"]:
            print("\nfile,time_s,label,score")
            for s in report["streams"]:
                for d in s["detections"]:
                    print(f"{s['file']},{d['time_s']},{d['label']},{d['score']}")
        return
    print_text_report(report)


def print_text_report(report: dict) -> None:
    from kws.evaluate import Metrics, confusion_text

    import numpy as np

    files = report["files"]
    if files and "accuracy" not in report:
        width = max(len(r["file"]) for r in files)
        for r in files:
            print(f"{r['file']:<{width}}  {r['label']:<8} {r['score']:.3f}   runner-up {r['runner_up']:<8} {r['runner_up_score']:.3f}")
    if "accuracy" in report:
        print(f"accuracy {report['accuracy']:.4f} (N={report['n']})\n")
        print(f"{'class':<10} {'precision':>9} {'recall':>7} {'n':>6}")
        for label, v in report["per_class"].items():
            p = "-" if v["precision"] is None else f"{v['precision']:.3f}"
            r = "-" if v["recall"] is None else f"{v['recall']:.3f}"
            print(f"{label:<10} {p:>9} {r:>7} {v['n']:>6}")
        m = Metrics(report["confusion"]["labels"], np.array(report["confusion"]["matrix"]))
        print("\n" + confusion_text(m))
        if report["misclassified"]:
            print(f"\nmisclassified ({len(report['misclassified'])}):")
            for r in report["misclassified"]:
                print(f"  {r['file']}: {r['truth']} -> {r['label']} ({r['score']:.3f})")
    for s in report["streams"]:
        print(f"\n{s['file']} ({s['audio_s']:.1f} s): {len(s['detections'])} detections")
        for d in s["detections"]:
            print(f"{d['time_s']:9.2f}s  {d['label']:<8} {d['score']:.3f}")
    if "hits" in report:
        lat = report["latency_ms"]
        print(f"\nhits {report['hits']}/{report['commands']}, misses {report['misses']}, wrong {report['wrong']}, "
              f"false alarms {report['false_alarms']} ({report['false_alarms_per_hour']:.1f}/h), "
              f"latency median {lat['median']} ms, p90 {lat['p90']} ms, over {report['audio_s']:.0f} s")
    if report["failures"]:
        print(f"\n{len(report['failures'])} file(s) could not be read (listed on stderr)")


def run_export(args: argparse.Namespace) -> int:
    from training.export import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KwsError as error:
        return report(error)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped reading (`kws stream x.wav | head`): its choice, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more goes to the closed pipe
        return 0


def console() -> None:
    """The installed `kws` command: `main`, then an exit that skips the interpreter's
    teardown (numba's and LLVM's finalisation costs about 0.6 s after the answer is out).
    Everything is written and closed by then: outputs are flushed here."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe: nothing more to deliver
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
