"""The recipe of the shipped models, in one place, for any architecture and size.

    python -m training.recipe --data DIR --arch gru --units 128 --out assets/gru \
        [--speech ../shared/data/spoken_digits/recordings] [--world] [--target-false-alarms-per-hour 600]

1. Clip stage: 1.2 s sequences holding one clip each, many updates from random weights.
2. Stream stage: fine-tune on 4 s streams of 2-4 clips with per-frame targets, after a
   short learning-rate warmup, keeping the epoch with the best sum of validation clip
   accuracy and validation-stream score.
3. With --world, the world stage: fine-tune the stream stage on more of the world:
   synthetic non-command speech (training.synth: every Debian voice saying 4,000 words,
   made once into `WORK/synth`; its synthetic commands are left out, `--extra-unknown-only`,
   as they cost accuracy on real speakers), the training half of the speakers of a
   non-command speech folder (`--speech`), three times as many unknown words per epoch,
   `unknown` targets while an unknown word is spoken (`--unknown-while-spoken`), and
   rooms and microphones on every sequence (`--channel`); the epoch kept is the one with
   the best mean of clean, reverberant and narrow-band validation clip accuracy plus the
   stream score (`--monitor world`). Validation stays on the real speakers.
4. With --world, the mix (training.interpolate): the weights between the stream stage's
   and the world stage's with the best world score whose clean validation clip accuracy
   is no lower than the stream stage's. (Measured: README, "Outside the data set".)
5. Tune the detector to the false-alarm budget (the fewest misses at no more than
   --target-false-alarms-per-hour) on validation streams of speakers the model never
   heard (commands; unknown words), plus the `--speech` folder's tuning half of speakers
   where the world stage did not train on them; store it with its curve in the bundle.

Each step runs as its own process (`kws-train`, `training.synth`, `training.tune_detector`).
A step is skipped when its output, or a later training step's output, exists; an
interrupted training step resumes; so rerunning the same command carries on where it
stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kws.errors import KwsError, non_negative_float, non_negative_int, positive_int
from training.options import make_parser, run_main

SPLIT = ["--val-percent", "15", "--test-percent", "0"]
SPLIT_SALT = "kws"
WORLD_EPOCHS = 30
SHIPPED_TARGET = 600.0  # false alarms per hour of non-command speech: the shipped detectors' operating point
ONE_CORE = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


class StepFailed(KwsError):
    """A step (its own process) failed: it has said why; the exit status is the step's."""

    def __init__(self, command: list[str], status: int):
        super().__init__(f"step failed with exit status {status}: python -m {' '.join(command)}")
        self.exit_code = status or 1


def is_done(output: Path, step: str) -> bool:
    """Synthesis is done when its manifest exists; a training step when its bundle exists;
    tuning, when the bundle records it."""
    if step == "training.synth":
        return (output / "manifest.json").exists()
    bundle_json = output / "bundle.json"
    if not bundle_json.exists():
        return False
    return step != "training.tune_detector" or "tuned" in (json.loads(bundle_json.read_text()).get("detector") or {})


def commands(data: str, arch: str, units: int, out: str, work: str, seed: int = 0, split_salt: str = SPLIT_SALT,
             clip_epochs: int = 70, stream_epochs: int = 60, world_epochs: int = WORLD_EPOCHS,
             speech: str | None = None, world: bool = False,
             target: float = SHIPPED_TARGET) -> list[tuple[Path, list[str]]]:
    """(output, command) for each step, in order: clips, streams, then with `world` the
    synthesis, the world stage and the mix, then the tuning. The tuning hears the `speech`
    folder's tuning half of speakers only where the world stage did not train on them."""
    clips, synth = Path(work) / f"{arch}{units}_clips", Path(work) / "synth"
    streams = Path(work) / f"{arch}{units}_streams" if world else Path(out)
    world_stage = Path(work) / f"{arch}{units}_world"
    common = ["--data", data, "--arch", arch, "--units", str(units), *SPLIT, "--split-salt", split_salt,
              "--seed", str(seed), "--speed", "0.1", "--quiet"]
    speech_args = ["--speech", speech] if speech else []
    steps = [
        (clips, ["training.train", *common, "--out", str(clips), "--epochs", str(clip_epochs), "--patience", "20",
                 "--seq-seconds", "1.2", "--stream-minutes", "5"]),
        (streams, ["training.train", *common, "--out", str(streams), "--init", str(clips), "--epochs",
                   str(stream_epochs), "--patience", "25", "--lr", "5e-4", "--warmup-epochs", "2", "--seq-seconds", "4",
                   "--monitor", "both", "--stream-minutes", "15"]),
    ]
    if world:
        steps += [
            (synth, ["training.synth", "--out", str(synth)]),
            (world_stage, ["training.train", *common, "--out", str(world_stage), "--init", str(streams),
                           "--epochs", str(world_epochs), "--patience", "10", "--lr", "5e-4", "--warmup-epochs", "1",
                           "--seq-seconds", "4", "--monitor", "world", "--stream-minutes", "15",
                           "--extra-data", str(synth), "--extra-unknown-only", *speech_args,
                           "--unknown-ratio", "3", "--unknown-while-spoken", "--channel"]),
            (Path(out), ["training.interpolate", "--start", str(streams), "--tuned", str(world_stage), "--data", data,
                         "--out", out]),
        ]
    steps.append((Path(out), ["training.tune_detector", "--model", out, "--data", data, "--minutes", "10",
                              "--target-false-alarms-per-hour", f"{target:g}", *([] if world else speech_args)]))
    return steps


TRAINING_STEPS = ("training.train", "training.synth", "training.interpolate")


def run(steps: list[tuple[Path, list[str]]]) -> None:
    for i, (output, command) in enumerate(steps):
        later_training = [o for o, c in steps[i + 1 :] if c[0] in ("training.train", "training.interpolate")]
        if is_done(output, command[0]) or (command[0] in TRAINING_STEPS and
                                           any(is_done(o, "training.train") for o in later_training)):
            print(f"done already: python -m {' '.join(command)}", flush=True)
            continue
        print("run: python -m " + " ".join(command), flush=True)
        status = subprocess.run([sys.executable, "-m", *command]).returncode
        if status:
            raise StepFailed(command, status)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.recipe", __doc__)
    parser.add_argument("--data", default="../shared/data/speech_commands", help="Speech Commands folder")
    parser.add_argument("--arch", choices=("gru", "lstm"), default="gru", help="recurrent layer type")
    parser.add_argument("--units", type=positive_int, default=128, help="units per recurrent layer")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--work", default="runs", help="folder for the clip- and stream-stage bundles and the "
                                                       "synthetic speech")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="training seed")
    parser.add_argument("--split-salt", default=SPLIT_SALT, help="hashed with each speaker id for the split")
    parser.add_argument("--speech", help="a folder of non-command speech (WORD_SPEAKER_INDEX.wav), e.g. "
                                         "../shared/data/spoken_digits/recordings: half of its speakers tune the "
                                         "detector, or with --world are trained on")
    parser.add_argument("--world", action="store_true", help="add the world stage (synthetic speech, --speech, rooms "
                                                             "and microphones) after the stream stage")
    parser.add_argument("--target-false-alarms-per-hour", type=non_negative_float, default=SHIPPED_TARGET,
                        help="the detector's operating point: the fewest misses at no more false alarms per hour")
    args = parser.parse_args(argv)
    return run_main(lambda: run(commands(args.data, args.arch, args.units, args.out, args.work, args.seed, args.split_salt,
                                         speech=args.speech, world=args.world,
                                         target=args.target_false_alarms_per_hour)))


if __name__ == "__main__":
    sys.exit(main())
