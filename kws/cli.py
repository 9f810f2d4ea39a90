"""The `kws` command: one verb per task.

    kws classify FILE... [--model gru|lstm|PATH] [--format text|json]
    kws stream FILE [--model ...] [--format text|csv|json]
    kws listen [--device N] [--model ...] [--threshold T] [--list-devices]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kws.audio import AudioError, load_audio  # noqa: E402
from kws.bundle import BundleError  # noqa: E402


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="gru", help="gru, lstm (the shipped models) or a bundle folder (default: gru)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="Streaming speech-command recognition.", allow_abbrev=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    classify = verbs.add_parser("classify", help="top label and score of each audio clip")
    classify.add_argument("files", nargs="+", metavar="FILE")
    add_model_argument(classify)
    classify.add_argument("--format", choices=("text", "json"), default="text")
    classify.add_argument("--batch-size", type=int, default=256)
    classify.set_defaults(run=run_classify)

    stream = verbs.add_parser("stream", help="detections in a long recording, through the streaming engine")
    stream.add_argument("file", metavar="FILE")
    add_model_argument(stream)
    add_detector_arguments(stream)
    stream.add_argument("--format", choices=("text", "csv", "json"), default="text")
    stream.add_argument("--block-ms", type=float, default=500.0, help="how much audio is read at a time")
    stream.set_defaults(run=run_stream)

    listen = verbs.add_parser("listen", help="recognise commands from a microphone, live")
    listen.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    listen.add_argument("--device", help="input device index or name (default: the system default)")
    add_model_argument(listen)
    add_detector_arguments(listen)
    listen.add_argument("--seconds", type=float, help="stop after this much audio (default: until Ctrl-C)")
    listen.add_argument("--plain", action="store_true", help="print detections line by line instead of the live panel")
    listen.set_defaults(run=run_listen)
    return parser


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, help="smoothed posterior needed to fire (default: the model's tuned value)")


def read_all(paths: list[str]) -> tuple[list[str], list, list[AudioError]]:
    """Decode every file; bad ones are collected, not fatal."""
    good, signals, failures = [], [], []
    for path in paths:
        try:
            signals.append(load_audio(path))
            good.append(path)
        except AudioError as error:
            failures.append(error)
    return good, signals, failures


def report_failures(failures: list[AudioError]) -> None:
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)


def run_classify(args: argparse.Namespace) -> int:
    from kws.bundle import load_bundle
    from kws.recognizer import classify_audio

    bundle = load_bundle(args.model)
    paths, signals, failures = read_all(args.files)
    posteriors = classify_audio(bundle, signals, args.batch_size)
    results = [
        {"file": path, "label": bundle.labels[int(p.argmax())], "score": round(float(p.max()), 4)}
        for path, p in zip(paths, posteriors)
    ]
    if args.format == "json":
        print(json.dumps(results, indent=1))
    else:
        width = max((len(r["file"]) for r in results), default=0)
        for r in results:
            print(f"{r['file']:<{width}}  {r['label']:<8} {r['score']:.3f}")
    report_failures(failures)
    return 1 if failures else 0


def make_engine(args: argparse.Namespace):
    from kws.bundle import load_bundle
    from kws.engine import Engine, detector_config

    bundle = load_bundle(args.model)
    return Engine(bundle, detector_config(bundle, threshold=args.threshold))


def run_stream(args: argparse.Namespace) -> int:
    from kws.audio import iter_blocks

    engine = make_engine(args)
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


def run_listen(args: argparse.Namespace) -> int:
    from kws.live import Listener, MicrophoneError, list_input_devices, make_display, summary

    try:
        if args.list_devices:
            print(list_input_devices())
            return 0
        engine = make_engine(args)
        listener = Listener(engine, args.device)
        display = make_display(str(args.model), args.plain)
        interrupted = False
        try:
            listener.run(display, args.seconds)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            display.close()
        print(("stopped: " if interrupted else "done: ") + summary(listener.session), flush=True)
        return 0
    except MicrophoneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (BundleError, AudioError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
