"""The `kws` command: one verb per task.

    kws classify FILE... [--model gru|lstm|PATH] [--format text|json]
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
    return parser


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
