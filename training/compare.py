"""GRU vs LSTM, measured on the same data and machine.

    python -m training.compare --data DIR \\
        --bundles assets/gru assets/lstm assets/sizes/gru64 assets/sizes/lstm64 --out docs/comparison.md

For each bundle it measures, in this run: parameters, bundle size on disk,
validation clip accuracy (the speakers held out by the split recorded in the bundle),
endless-stream hits and false alarms per hour (the state never reset), per-hop
streaming time of the fast path, and the memory the streaming engine holds; and it reads from each bundle's training record
(written by kws-train when it was trained): training seconds per epoch and in all,
epochs to the best validation score, peak memory while training, and the recipe.
It writes a Markdown report with the table, a verdict per common claim, and PNG
plots next to it. `--train` first trains the bundles (both stages, same recipe,
one architecture after another) instead of taking existing ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from kws.errors import non_negative_int, positive_float, positive_int
from training.options import add_split_arguments, given_split, make_parser, run_main, training_stages, validation_set

SPEED_SECONDS = 20.0
RECIPES = {"world": "training/recipe.py with --world (clips, streams, the world stage and its mix with the stream "
                    "stage: the shipped models)",
           "two-stage": "training/recipe.py without --world (clips, streams: the models shipped before)"}
STREAM_SEED = 100  # the validation stream every bundle is scored on


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def recipe_name(meta: dict) -> str:
    """Which recipe made a bundle: with the world stage (training on more than the data
    set) or the earlier two stages only."""
    world = any(len(m.get("sources") or {}) > 1 for m in training_stages(meta))
    return "world" if world else "two-stage"


def training_record(meta: dict) -> dict:
    """Every stage's training figures: the clip stage, the stream stage and (newer recipe) the world stage."""
    stages = training_stages(meta)
    fit = sum(m.get("fit_seconds") or 0 for m in stages)
    epochs = sum(m.get("epochs_run") or 0 for m in stages)
    first = stages[0]
    return {
        "train_seconds": round(fit, 1),
        "epochs": epochs,
        "seconds_per_epoch": [round((m.get("fit_seconds") or 0) / max(1, m.get("epochs_run") or 1), 2) for m in stages],
        "epochs_to_best": [m.get("best_epoch") for m in stages],
        "peak_train_rss_mb": meta.get("peak_rss_mb"),
        "history": [h for m in stages for h in m.get("history", [])],
        "first_stage_history": first.get("history", []),
        "commands": [m.get("command") for m in stages] + [m["interpolation"]["command"] for m in stages[-1:]
                                                          if m.get("interpolation")],
        "recipe_name": recipe_name(meta),
    }


def per_hop_ms(paths: list[str], runs: int = 9) -> list[float]:
    """Fast-path ms per hop of each bundle: the median of `runs` runs, taken in turns (one run of
    each bundle, then the next round), so that every bundle meets the same machine conditions."""
    from training.timing import per_hop_fast, speechlike
    from kws.bundle import load_bundle

    audio = speechlike(SPEED_SECONDS, 0)
    bundles = [load_bundle(p) for p in paths]
    times = [[per_hop_fast(b, audio, b.frontend.hop) for b in bundles] for _ in range(runs)]
    return [float(np.median(column)) * 1000 for column in zip(*times)]


def engine_bytes(bundle) -> int:
    """Bytes the fast path holds: weights and one stream's recurrent state."""
    from kws.engine import RecurrentNet

    net = RecurrentNet(bundle.network)
    arrays = [net.dense_kernel, net.dense_bias] + [a for layer in net.layers for a in vars(layer).values()
                                                    if isinstance(a, np.ndarray)]
    state = [a for layer_state in net.zero_state(1) for a in layer_state]
    return int(sum(a.nbytes for a in arrays + state))


def measure(path: str, data: str, given: dict, stream_minutes: float, seed: int) -> dict:
    """`given`: the split options given (by default the split recorded in the bundle applies)."""
    from kws.bundle import load_bundle
    from kws.engine import RecurrentNet, detector_config
    from kws.detector import Detector
    from kws.frontend import Mfcc
    from kws.recognizer import clip_posteriors
    from kws.scoring import score_stream
    from training.make_stream import build_stream

    bundle = load_bundle(path)
    meta = bundle.metadata
    dataset, val, noise, split = validation_set(data, bundle, given)
    mfcc = Mfcc(bundle.frontend)
    net = RecurrentNet(bundle.network)
    accuracy = float(np.mean(clip_posteriors(net, [mfcc(a) for a in val.audio]).argmax(1) == val.labels))
    audio, truth = build_stream(val, dataset.labels, noise, stream_minutes * 60, np.random.default_rng(seed))
    posteriors, _ = net.run(mfcc(audio)[:, None, :], net.zero_state(1))
    detections = Detector(bundle.labels, detector_config(bundle)).run(posteriors[:, 0])
    stream = score_stream(detections, truth, len(audio) / bundle.frontend.sample_rate).to_dict()
    return {
        "bundle": path, "arch": bundle.arch, "units": bundle.units, "layers": bundle.layers,
        "seed": meta.get("seed"), "params": bundle.n_params, "bundle_kb": round(folder_bytes(bundle.path) / 1024, 1),
        "split": split, "val_clips": len(val.labels), "val_clip_accuracy": round(accuracy, 4),
        "stream": stream,
        "engine_kb": round(engine_bytes(bundle) / 1024, 1),
        "recipe": {k: meta.get(k) for k in ("hyperparameters", "augment", "seed", "words", "train_clips", "monitor")},
        **training_record(meta),
    }


def train_all(args) -> list[str]:
    """Train every (size, seed, arch) with the shipped recipe (training/recipe.py); the GRU and
    the LSTM of one size and seed at the same time, one core each, as the shipped models were."""
    from training import recipe

    paths = []
    for units in args.units:
        for seed in args.seeds:
            runs = []
            for arch in ("gru", "lstm"):
                out = str(Path(args.train_dir) / f"{arch}{units}_s{seed}")
                runs.append(subprocess.Popen([sys.executable, "-m", "training.recipe", "--data", args.data,
                                              "--arch", arch, "--units", str(units), "--out", out,
                                              "--work", args.train_dir, "--seed", str(seed),
                                              "--split-salt", getattr(args, "split_salt", recipe.SPLIT_SALT)],
                                             env={**os.environ, **recipe.ONE_CORE}))
                paths.append(out)
            for process in runs:
                if process.wait():
                    raise recipe.StepFailed(process.args[2:], process.returncode)
    return paths


def mean(rows: list[dict], key) -> float:
    return float(np.mean([key(r) for r in rows]))


def accuracy_summary(rows: list[dict]) -> str:
    """'0.850' for one seed; 'mean 0.850 (0.840-0.860, 3 seeds)' for several."""
    values = [r["val_clip_accuracy"] for r in rows]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"mean {np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f}, {len(values)} seeds)"


def verdicts(rows: list[dict]) -> list[str]:
    """One sentence per claim and size; with several seeds, means over the seeds."""
    lines = []
    groups = sorted({(r["units"], r["recipe_name"]) for r in rows}, key=lambda g: (-g[0], g[1] != "world"))
    for units, name in groups:
        gs = [r for r in rows if r["arch"] == "gru" and r["units"] == units and r["recipe_name"] == name]
        ls = [r for r in rows if r["arch"] == "lstm" and r["units"] == units and r["recipe_name"] == name]
        if not (gs and ls):
            continue
        if len(groups) > 1:
            lines.append(f"{units} units, {RECIPES[name]}:")
        g, l = gs[0], ls[0]
        p = g["params"] / l["params"]
        lines.append(f"- **Fewer parameters** ({units} units): GRU has {p:.2f}x the LSTM's parameters "
                     f"({g['params']:,} vs {l['params']:,}): {'supported' if p < 1 else 'not supported'}.")
        t = mean(gs, lambda r: r["seconds_per_epoch"][-1]) / mean(ls, lambda r: r["seconds_per_epoch"][-1])
        lines.append(f"- **Faster training** ({units} units): GRU's seconds per epoch are {t:.2f}x the LSTM's "
                     f"(last stage, from the training records): {ratio_verdict(t)}.")
        m = g["engine_kb"] / l["engine_kb"]
        lines.append(f"- **Less memory** ({units} units): the GRU engine holds {m:.2f}x the LSTM's bytes "
                     f"(weights + state){train_memory(g, l)}: {'supported' if m < 1 else 'not supported'}.")
        s = mean(gs, lambda r: r["ms_per_hop"]) / mean(ls, lambda r: r["ms_per_hop"])
        lines.append(f"- **Faster inference** ({units} units): GRU's per-hop time is {s:.2f}x the LSTM's "
                     f"({mean(gs, lambda r: r['ms_per_hop']):.4f} vs {mean(ls, lambda r: r['ms_per_hop']):.4f} ms): "
                     f"{ratio_verdict(s)}.")
        lines.append(accuracy_verdict(units, gs, ls))
    return lines


def ratio_verdict(ratio: float) -> str:
    return "supported" if ratio < 0.95 else "not supported" if ratio > 1.05 else "no clear difference"


def accuracy_verdict(units: int, gs: list[dict], ls: list[dict]) -> str:
    """Mean difference against the larger of: two standard errors of an accuracy on n clips, and
    half the seed-to-seed range of either architecture (when there are several seeds)."""
    d = mean(gs, lambda r: r["val_clip_accuracy"]) - mean(ls, lambda r: r["val_clip_accuracy"])
    n = gs[0]["val_clips"]
    noise = 2 * np.sqrt(0.25 / n)  # about two standard errors of an accuracy near 0.5 on n clips
    for group in (gs, ls):
        values = [r["val_clip_accuracy"] for r in group]
        noise = max(noise, (max(values) - min(values)) / 2)
    verdict = ("supported (within noise)" if abs(d) <= noise else
               f"not supported: the {'GRU' if d > 0 else 'LSTM'} is more accurate")
    return (f"- **About the same accuracy** ({units} units): GRU {accuracy_summary(gs)} vs LSTM "
            f"{accuracy_summary(ls)} on {n} clips (difference {d:+.3f}, noise about ±{noise:.3f}): {verdict}.")


def train_memory(g: dict, l: dict) -> str:
    if g.get("peak_train_rss_mb") and l.get("peak_train_rss_mb"):
        return f"; peak training memory {g['peak_train_rss_mb']:.0f} vs {l['peak_train_rss_mb']:.0f} MB"
    return ""


def plots(rows: list[dict], folder: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"gru": "tab:blue", "lstm": "tab:orange"}
    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        history = r["history"]
        acc = [h["val_clip_accuracy"] for h in history]
        ax.plot(range(1, len(acc) + 1), acc, color=colours[r["arch"]], alpha=1.0 if r["units"] == max(x["units"] for x in rows) else 0.5,
                label=f"{r['arch']} {r['layers']}x{r['units']} seed {r['seed']}")
        stage_one = len(r["first_stage_history"])
        if stage_one < len(history):
            ax.axvline(stage_one + 0.5, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("epoch (dotted line: clip stage -> stream stage)")
    ax.set_ylabel("validation clip accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    made.append(save(fig, folder / f"{stem}_accuracy_per_epoch.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    for r in rows:
        ax.scatter(r["ms_per_hop"], r["val_clip_accuracy"], color=colours[r["arch"]], s=40)
        ax.annotate(f"{r['arch']} {r['units']}", (r["ms_per_hop"], r["val_clip_accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("ms per 10 ms hop (fast path)")
    ax.set_ylabel("validation clip accuracy")
    ax.grid(alpha=0.3)
    made.append(save(fig, folder / f"{stem}_accuracy_vs_speed.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    for arch in ("gru", "lstm"):
        sizes = sorted({r["params"] for r in rows if r["arch"] == arch})
        values = [[r["val_clip_accuracy"] for r in rows if r["arch"] == arch and r["params"] == p] for p in sizes]
        if sizes:
            means = [np.mean(v) for v in values]
            spread = [[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]]
            ax.errorbar(sizes, means, yerr=spread, marker="o", capsize=3, color=colours[arch],
                        label=f"{arch} (mean, min-max over seeds)")
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation clip accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    made.append(save(fig, folder / f"{stem}_accuracy_vs_params.png"))
    return made


def save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def report(rows: list[dict], images: list[str], command: str, machine: str) -> str:
    head = ["model", "recipe", "params", "bundle KB", "engine KB", "val clip acc", "stream hits", "wrong", "false alarms/h",
            "median latency ms", "ms/hop", "s/epoch (per stage)", "epochs to best (per stage)", "train s",
            "peak train MB"]
    lines = ["# GRU vs LSTM for streaming speech commands", "",
             f"Regenerate: `{command}`", "", f"Machine: {machine}.", "",
             "Accuracy: validation speakers (held out by speaker hash) of the Speech Commands subset in "
             "`../shared/data/speech_commands` (clips from the v0.02 canonical test set: never score these models "
             "on that test set). Stream: a validation stream of those speakers' clips with held-out background noise, "
             "run frame by frame without ever resetting the state, scored with each bundle's tuned detector. "
             "Speed and memory are measured in this run (per-hop time: the median of 9 runs; identical architectures "
             "differ by the run-to-run noise of this machine). Training time and memory come from each bundle's "
             "training record, so they compare fairly only between bundles trained under the same conditions "
             "(`training/recipe.py` via `--train` trains the GRU and the LSTM of one size and seed at the same time, "
             "one core each).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["stream"]
        lines.append("| " + " | ".join(str(x) for x in [
            f"{r['arch']} {r['layers']}x{r['units']} seed {r['seed']}", r["recipe_name"], f"{r['params']:,}",
            r["bundle_kb"], r["engine_kb"],
            f"{r['val_clip_accuracy']:.4f}", f"{s['hits']}/{s['commands']}", s["wrong"], s["false_alarms_per_hour"],
            s["latency_ms"]["median"], r["ms_per_hop"], ", ".join(map(str, r["seconds_per_epoch"])),
            ", ".join(map(str, r["epochs_to_best"])), r["train_seconds"], r["peak_train_rss_mb"]]) + " |")
    lines += ["", "Recipe: " + "; ".join(f"`{k}`, {v}" for k, v in RECIPES.items() if k in {r["recipe_name"] for r in rows})
              + ". The claims below compare a GRU and an LSTM made by the same recipe only."]
    lines += ["", "## The usual claims, checked", ""] + verdicts(rows)
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    lines += ["", "## Recipe (within one recipe, identical for every model but the architecture and size)", ""]
    for r in rows:
        lines.append(f"- `{r['bundle']}`: " + "; then ".join(f"`{c}`" for c in r["commands"] if c))
    recipe = {k: v for k, v in rows[0]["recipe"].items() if k != "hyperparameters"}
    lines += ["", "Shared settings (from the first bundle; each row's own are in its bundle.json):", "", "```",
              json.dumps({"hyperparameters": rows[0]["recipe"]["hyperparameters"], **recipe}, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.compare", __doc__)
    parser.add_argument("--data", required=True, help="the Speech Commands folder the bundles were trained on")
    add_split_arguments(parser, source="each bundle (with --train: the recipe's, salt 'kws')")
    parser.add_argument("--bundles", nargs="+", help="bundles to compare (instead of --train)")
    parser.add_argument("--train", action="store_true", help="train every architecture and size first")
    parser.add_argument("--train-dir", default="runs/compare", help="with --train: where the bundles go")
    parser.add_argument("--units", type=positive_int, nargs="+", default=[128, 64], help="with --train: sizes to train")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0], help="with --train: training seeds")
    parser.add_argument("--stream-minutes", type=positive_float, default=15.0, help="length of the validation stream")
    parser.add_argument("--out", default="docs/comparison.md", help="the report (the JSON and plots go beside it)")
    args = parser.parse_args(argv)
    if bool(args.bundles) == args.train:
        parser.error("give either --bundles or --train")
    return run_main(lambda: compare(args, argv))


def compare(args, argv: list[str] | None) -> int:
    from training.timing import machine

    paths = train_all(args) if args.train else args.bundles
    rows = [measure(p, args.data, given_split(args), args.stream_minutes, STREAM_SEED) for p in paths]
    for row, ms in zip(rows, per_hop_ms(paths)):
        row["ms_per_hop"] = round(ms, 4)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = plots(rows, out.parent, out.stem)
    command = "python -m training.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    out.write_text(report(rows, images, command, machine()))
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1, default=str))
    print(f"wrote {out}, {out.with_suffix('.json')} and {', '.join(images)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
