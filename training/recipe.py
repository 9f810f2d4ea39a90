"""The recipe of the shipped models, in one place, for any architecture and size.

    python -m training.recipe --data DIR --arch gru --units 128 --out assets/gru

1. Clip stage: 1.2 s sequences holding one clip each, many updates from random weights.
2. Stream stage: fine-tune on 4 s streams of 2-4 clips with per-frame targets, after a
   short learning-rate warmup, keeping the epoch with the best sum of validation clip
   accuracy and validation-stream score.
3. Tune the detector on a validation stream and store it in the bundle.

Each step runs as its own process (`kws-train`, `training.tune_detector`); a step whose
output already exists is skipped, and an interrupted training step resumes, so
rerunning the same command carries on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SPLIT = ["--val-percent", "15", "--test-percent", "0"]
ONE_CORE = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def is_done(output: Path, step: str) -> bool:
    """A training step is done when its bundle exists; tuning, when the bundle records it."""
    bundle_json = output / "bundle.json"
    if not bundle_json.exists():
        return False
    return step != "training.tune_detector" or "tuned" in (json.loads(bundle_json.read_text()).get("detector") or {})


def commands(data: str, arch: str, units: int, out: str, work: str, seed: int = 0, split_salt: str = "kws",
             clip_epochs: int = 70, stream_epochs: int = 60) -> list[tuple[Path, list[str]]]:
    """(output, command) for each step, in order."""
    clips = Path(work) / f"{arch}{units}_clips"
    common = ["--data", data, "--arch", arch, "--units", str(units), *SPLIT, "--split-salt", split_salt,
              "--seed", str(seed), "--speed", "0.1", "--quiet"]
    return [
        (clips, ["training.train", *common, "--out", str(clips), "--epochs", str(clip_epochs), "--patience", "20",
                 "--seq-seconds", "1.2", "--stream-minutes", "5"]),
        (Path(out), ["training.train", *common, "--out", out, "--init", str(clips), "--epochs", str(stream_epochs),
                     "--patience", "25", "--lr", "5e-4", "--warmup-epochs", "2", "--seq-seconds", "4",
                     "--monitor", "both", "--stream-minutes", "15"]),
        (Path(out), ["training.tune_detector", "--model", out, "--data", data,
                                         "--split-salt", split_salt, "--minutes", "10"]),
    ]


def run(steps: list[tuple[Path, list[str]]]) -> None:
    for output, command in steps:
        if is_done(output, command[0]):
            print(f"done already: python -m {' '.join(command)}", flush=True)
            continue
        print("run: python -m " + " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", *command], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recipe", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--data", default="../shared/data/speech_commands")
    parser.add_argument("--arch", choices=("gru", "lstm"), default="gru")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--work", default="runs", help="folder for the clip-stage bundle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-salt", default="kws")
    args = parser.parse_args(argv)
    try:
        run(commands(args.data, args.arch, args.units, args.out, args.work, args.seed, args.split_salt))
    except subprocess.CalledProcessError as e:
        print(f"error: step failed with exit status {e.returncode}: python -m {' '.join(e.cmd[2:])}", file=sys.stderr)
        return e.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
