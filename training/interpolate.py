"""Mix a fine-tuned model's weights with those of the model it was fine-tuned from
(weight-space ensembling, "WiSE-FT": Wortsman et al., Robust fine-tuning of zero-shot
models, CVPR 2022).

    python -m training.interpolate --start runs/gru128_streams --tuned runs/gru128_world \
        --data ../shared/data/speech_commands --out assets/gru

The world stage (training/recipe.py --world) makes a model hold up in rooms, on
narrow-band microphones and against other speech, at some cost in clean accuracy. Each
mix (1 - t) * start + t * tuned of --grid is scored on the validation speakers of the
bundles' split as `kws-train --monitor world` scores an epoch: clip accuracy clean,
reverberant and narrow-band, and the validation-stream score. The mix kept has the best
world score among those whose clean clip accuracy is at least the start's, so the clean
figure does not fall (t = 0, the start itself, always qualifies; t = 0 and t = 1 are always
scored). It is written as a
bundle: the tuned bundle's training record with this mix's validation figures and an
`interpolation` record (the command, t, every mix's scores). Its detector is left at the
default settings: tune it next (training.tune_detector).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys

import numpy as np

from kws.bundle import Bundle, load_bundle
from kws.engine import RecurrentNet
from kws.errors import KwsError, positive_float
from kws.frontend import Mfcc
from training.options import add_split_arguments, share_list, given_split, make_parser, run_main, validation_set

DEFAULT_GRID = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"
RULE = "the best val_world_score among the mixes whose clean clip accuracy is at least the start's (t = 0)"


def check_mixable(start: Bundle, tuned: Bundle) -> None:
    """Only a model fine-tuned from the other mixes with it: the same network and feature
    statistics, and the start's training record is the one the tuned bundle started from."""
    for name in ("arch", "units", "layers", "labels", "frontend"):
        if getattr(start, name) != getattr(tuned, name):
            raise KwsError(f"{tuned.path}: its {name} ({getattr(tuned, name)}) differs from {start.path}'s "
                           f"({getattr(start, name)}): only a model fine-tuned from the other mixes with it")
    if not (np.array_equal(start.network.mean, tuned.network.mean)
            and np.array_equal(start.network.variance, tuned.network.variance)):
        raise KwsError(f"{tuned.path}: its feature statistics differ from {start.path}'s: only a model fine-tuned "
                       "from the other (kws-train --init) mixes with it")
    parent = tuned.metadata.get("init_from") or {}
    if any(parent.get(key) != start.metadata.get(key) for key in ("command", "history")):
        raise KwsError(f"{tuned.path}: it was not fine-tuned from {start.path} (its init_from record is another "
                       "model's): only a model fine-tuned from the other mixes with it")


def mix(start, tuned, t: float):
    """(1 - t) * start + t * tuned for every array in two networks of the same shape (or two
    lists of Keras weights); anything else (the arch name) is the start's."""
    if isinstance(start, np.ndarray):
        return ((1 - t) * start.astype(np.float64) + t * tuned.astype(np.float64)).astype(start.dtype)
    if isinstance(start, list):
        return [mix(a, b, t) for a, b in zip(start, tuned)]
    if dataclasses.is_dataclass(start):
        return dataclasses.replace(start, **{f.name: mix(getattr(start, f.name), getattr(tuned, f.name), t)
                                             for f in dataclasses.fields(start)})
    return start


def score_mixes(start: Bundle, tuned: Bundle, data: str, given: dict, grid: list[float],
                seed: int) -> tuple[list[dict], tuple]:
    """Every mix's validation scores (training.train.validation_scores, with the world
    monitor's conditions and stream), and the validation material (clips, noise, mfcc, labels)."""
    from training.train import monitor_material, validation_scores

    dataset, clips, noise, _ = validation_set(data, tuned, given)
    mfcc = Mfcc(tuned.frontend)
    features, stream, heard = monitor_material(clips, dataset.labels, noise, mfcc, seed, "world")
    rows = []
    for t in grid:
        net = RecurrentNet(mix(start.network, tuned.network, t))
        rows.append({"t": t, **validation_scores(net, features, clips.labels, stream, heard)})
    return rows, (clips, noise, mfcc, dataset.labels)


def choose(rows: list[dict]) -> dict:
    """RULE: the first of the best, so the mix nearest the start on a tie."""
    floor = next(r for r in rows if r["t"] == 0)["val_clip_accuracy"]
    return max((r for r in rows if r["val_clip_accuracy"] >= floor), key=lambda r: r["val_world_score"])


def write_mix(start: Bundle, tuned: Bundle, t: float, metadata: dict, out: str) -> None:
    from training.train import import_quietly

    import_quietly("tensorflow")  # before Keras: its start-up lines go unprinted
    from kws.bundle import save_bundle
    from kws.models import load_keras_model

    model = load_keras_model(tuned.path)
    model.set_weights(mix(load_keras_model(start.path).get_weights(), model.get_weights(), t))
    save_bundle(Bundle(tuned.labels, tuned.frontend, tuned.arch, tuned.units, tuned.layers, metadata=metadata),
                model, out)


def interpolate(args, argv: list[str]) -> dict:
    from training.train import require_tensorflow, stream_figures

    require_tensorflow()  # writing the bundle needs Keras: refused before the scoring, not after
    start, tuned = load_bundle(args.start), load_bundle(args.tuned)
    check_mixable(start, tuned)
    grid = sorted({0.0, 1.0, *args.grid})
    seed = int(tuned.metadata.get("seed") or 0)
    rows, (clips, noise, mfcc, labels) = score_mixes(start, tuned, args.data, given_split(args), grid, seed)
    chosen = choose(rows)
    net = RecurrentNet(mix(start.network, tuned.network, chosen["t"]))
    # The tuned model's training record stays (its history, best epoch); the figures of
    # these weights are replaced, and its test score, not measured for the mix, moves aside.
    metadata = {**tuned.metadata, "val_clip_accuracy": chosen["val_clip_accuracy"],
                "stream": stream_figures(net, labels, clips, noise, args.stream_minutes, seed, mfcc), "test": None,
                "interpolation": {"command": "python -m training.interpolate " + shlex.join(argv),
                                  "start": str(args.start), "tuned": str(args.tuned), "t": chosen["t"], "rule": RULE,
                                  "tuned_val_clip_accuracy": tuned.metadata.get("val_clip_accuracy"),
                                  "tuned_test": tuned.metadata.get("test"), "mixes": rows}}
    write_mix(start, tuned, chosen["t"], metadata, args.out)
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.interpolate", __doc__)
    parser.add_argument("--start", required=True, help="the bundle fine-tuning started from (kws-train --init)")
    parser.add_argument("--tuned", required=True, help="the fine-tuned bundle")
    parser.add_argument("--data", required=True, help="Speech Commands folder (its validation speakers choose t)")
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--grid", type=share_list, default=DEFAULT_GRID,
                        help="the mixes t to score, comma-separated in [0, 1] (0 = --start, 1 = --tuned)")
    parser.add_argument("--stream-minutes", type=positive_float, default=15.0,
                        help="length of the validation stream whose figures the bundle records")
    add_split_arguments(parser)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    def run() -> int:
        metadata = interpolate(args, argv)
        chosen = metadata["interpolation"]
        row = next(r for r in chosen["mixes"] if r["t"] == chosen["t"])
        conditions = ", ".join(f"{k[len('val_clip_accuracy_'):]} {v:.4f}" for k, v in row.items()
                               if k.startswith("val_clip_accuracy_"))
        print(f"wrote {args.out}: t {chosen['t']:g}; val clip accuracy {row['val_clip_accuracy']:.4f} (start "
              f"{chosen['mixes'][0]['val_clip_accuracy']:.4f}, tuned {chosen['mixes'][-1]['val_clip_accuracy']:.4f}), "
              f"{conditions}; world score {row['val_world_score']:.4f}")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
