"""What every training entry point shares: its parser, its error contract and the data split.

Each `main` builds its parser with `make_parser` (every default shown in `--help`,
the exit codes as the epilog) and runs its body through `run_main`, which turns a
`KwsError` into one `error: ...` line and its exit code, Ctrl-C into 130, and lets
anything else (a bug) keep its traceback: the same contract as the `kws` command.

The data split (`--val-percent`, `--test-percent`, `--split-salt`) of a tool that
works on a trained model defaults to the split recorded in its bundle, so that it
measures or tunes on the speakers the model never heard; a flag given overrides it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import numpy as np

from kws.bundle import SPLIT_KEYS
from kws.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, KwsError, percent, report
from kws.labels import command_words
from training.data import DataSet, LoadedClips, load_clips, load_noise, scan_split

# kws-train's split when no flag is given (the data set's own rule: 10% validation, 10% test)
TRAIN_SPLIT = {"val_percent": 10.0, "test_percent": 10.0, "split_salt": ""}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in `--help`, except where there is none (required, None, a flag's False)."""

    def _get_help_string(self, action):
        if action.required or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def make_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser with the first paragraph of `doc` as description and the exit codes as epilog."""
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0], epilog=EXIT_CODES_HELP,
                                   formatter_class=DefaultsHelpFormatter, allow_abbrev=False)


def run_main(body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """`body()`'s exit status; a user-facing error as one line, Ctrl-C as 130."""
    try:
        return body()
    except KwsError as error:
        return report(error)
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _unit_interval(text: str, top_included: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0 <= value <= 1 if top_included else 0 <= value < 1):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1{']' if top_included else ')'}, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1) (dropout, speed perturbation)."""
    return _unit_interval(text, top_included=False)


def share(text: str) -> float:
    """An argparse type: a number in [0, 1] (a share of examples)."""
    return _unit_interval(text, top_included=True)


def share_list(text: str) -> list[float]:
    """An argparse type: comma-separated numbers in [0, 1], at least one."""
    values = [share(part) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"no numbers in {text!r}")
    return values


def add_split_arguments(parser: argparse.ArgumentParser, defaults: dict | None = None, fallback: dict | None = None,
                        source: str = "the bundle") -> None:
    """`--val-percent`, `--test-percent`, `--split-salt`, with `defaults`; or, with `defaults=None`,
    absent from the parsed arguments unless given (see `given_split`): the split recorded in
    `source`, else `fallback`, applies."""
    helps = {"val_percent": "percent of speakers held out for validation",
             "test_percent": "percent of speakers held out for testing",
             "split_salt": "hashed with each speaker id for the split (needed for subsets of the canonical test set; "
                           "see README)"}
    for key, kind in (("val_percent", percent), ("test_percent", percent), ("split_salt", str)):
        help = helps[key]
        if defaults is None:
            help += f" (default: the split recorded in {source}" + (f", else {fallback[key]!r})" if fallback else ")")
        parser.add_argument("--" + key.replace("_", "-"), type=kind, help=help,
                            default=argparse.SUPPRESS if defaults is None else defaults[key])


def given_split(args: argparse.Namespace) -> dict:
    """The split options present in `args` (those given, with `add_split_arguments(defaults=None)`)."""
    return {key: getattr(args, key) for key in SPLIT_KEYS if hasattr(args, key)}


def chosen_split(given: dict, bundle=None, fallback: dict | None = None) -> dict:
    """The split to use: the options given, else the bundle's recorded split, else `fallback`."""
    split = {**(fallback or {}), **(bundle.split if bundle is not None else {}), **given}
    missing = [key for key in SPLIT_KEYS if key not in split]
    if missing:
        flags = ", ".join("--" + key.replace("_", "-") for key in missing)
        raise KwsError(f"{bundle.path}: the bundle does not record the data split it was trained with: give {flags}")
    if split["val_percent"] + split["test_percent"] >= 100:
        raise KwsError(f"--val-percent and --test-percent add up to {split['val_percent'] + split['test_percent']}: "
                       "no speakers are left for training")
    return split


def validation_set(data: str, bundle, given: dict) -> tuple[DataSet, LoadedClips, list[np.ndarray], dict]:
    """A trained model's held-out material in the folder `data`: (data set, validation clips,
    validation noise, split), on the split `given`, else the one recorded in the bundle."""
    split = chosen_split(given, bundle)
    dataset = scan_split(data, command_words(bundle.labels), split)
    clips = load_clips(dataset.clips("validation"), dataset.labels)
    return dataset, clips, load_noise(dataset.noise_files, "validation"), split


def training_stages(meta: dict | None) -> list[dict]:
    """A bundle's training records, first stage to last (each stage's `init_from` is the one before)."""
    stages = []
    while meta:
        stages.insert(0, meta)
        meta = meta.get("init_from")
    return stages
