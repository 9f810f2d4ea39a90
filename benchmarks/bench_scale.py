"""Training at full data-set scale: load time (first and cached), peak memory, seconds per epoch.

    python -m benchmarks.bench_scale [--clips 105829] [--epochs 1] [--max-clips 0] [--dir DIR]

The full Speech Commands v0.02 (105,829 clips, 35 words, 2,618 speakers) cannot be
downloaded here, so a stand-in of the same size is built: a folder per word with v0.02's
per-word counts (scaled down with `--clips N`), each file a symlink to a development clip
of the same word (../shared/data/speech_commands, cycled) under a fresh speaker id, the
speakers spread over 2,618 ids, the six background-noise recordings, and
`validation_list.txt` / `testing_list.txt` made by the data set's own hashing rule (10% /
10%), as v0.02 ships them. The audio repeats (about 3,400 distinct recordings), so what
is measured is the loader, the cache and the training loop, not accuracy: the test
figure is no result (test clips repeat training audio). The files are read from the page
cache after the first pass, so decoding speed, not a cold disk, is measured.

Measured, each in a fresh process:
- load, first: scan, build the clip cache (in an empty cache folder), load the training
  and validation clips of the default 12-class task; its wall time and peak resident memory;
- load, cached: the same again, the cache reused;
- train: `kws-train --epochs E` on the stand-in with that cache (`--max-clips` to
  shorten the epoch): its peak resident memory (ru_maxrss of the child), seconds per
  epoch (Keras fit, validation included) and wall time, and the test split it scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "speech_commands"
V002_SPEAKERS = 2618
# Clips per word in Speech Commands v0.02 (105,829 in all).
V002_COUNTS = {
    "yes": 4044, "no": 3941, "up": 3723, "down": 3917, "left": 3801, "right": 3778, "on": 3845, "off": 3745,
    "stop": 3872, "go": 3880, "zero": 4052, "one": 3890, "two": 3880, "three": 3727, "four": 3728, "five": 4052,
    "six": 3860, "seven": 3998, "eight": 3787, "nine": 3934, "bed": 2014, "bird": 2064, "cat": 2031, "dog": 2128,
    "happy": 2054, "house": 2113, "marvin": 2100, "sheila": 2022, "tree": 1759, "wow": 2123, "backward": 1664,
    "forward": 1557, "follow": 1579, "learn": 1575, "visual": 1592,
}
FULL = sum(V002_COUNTS.values())

LOAD = """
import json, resource, sys, time
started = time.perf_counter()
from training.cache import open_cache
from training.data import load_clips, scan
dataset = scan(sys.argv[1])
every = [c.path for clips in dataset.splits.values() for c in clips]
result = open_cache(dataset.root, every, sys.argv[2])
train = load_clips(dataset.clips("training"), dataset.labels, result.store)
val = load_clips(dataset.clips("validation"), dataset.labels, result.store)
print(json.dumps({"seconds": time.perf_counter() - started, "built": result.built, "decoded": result.decoded,
                  "clips": len(result.store), "train": len(train), "val": len(val),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def counts_for(total: int) -> dict[str, int]:
    """v0.02's per-word counts scaled to `total` clips (at least 8 a word)."""
    scaled = {w: max(8, round(n * total / FULL)) for w, n in V002_COUNTS.items()}
    biggest = max(scaled, key=scaled.get)
    scaled[biggest] += total - sum(scaled.values())
    return scaled


def speaker(i: int) -> str:
    return hashlib.sha1(f"bench-scale-{i}".encode()).hexdigest()[:8]


def build_standin(target: Path, total: int, source: Path = SHARED) -> dict[str, int]:
    """The stand-in layout at `target` (made afresh); the clips per word."""
    from training.data import NOISE_DIR, which_set

    if not (source / "yes").is_dir():
        sys.exit(f"the development clips are not at {source}: the stand-in is made of them")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / NOISE_DIR).symlink_to((source / NOISE_DIR).resolve(), target_is_directory=True)
    counts = counts_for(total)
    validation, testing = [], []
    n = 0
    for word, count in counts.items():
        sources = sorted((source / word).glob("*.wav"))
        folder = target / word
        folder.mkdir()
        repeats: dict[str, int] = {}
        for i in range(count):
            who = speaker(n % V002_SPEAKERS)
            n += 1
            repeats[who] = repeats.get(who, -1) + 1
            name = f"{who}_nohash_{repeats[who]}.wav"
            (folder / name).symlink_to(sources[i % len(sources)].resolve())
            rel = f"{word}/{name}"
            part = which_set(rel, 10, 10)
            (validation if part == "validation" else testing if part == "testing" else []).append(rel)
    (target / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (target / "testing_list.txt").write_text("\n".join(testing) + "\n")
    return counts


def child(command: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, wall seconds, peak resident MB of the child)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = process.stdout.read(), process.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    return subprocess.CompletedProcess(command, code, stdout, stderr), wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=FULL, help="size of the stand-in (v0.02: 105,829)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the training run (0: no training run)")
    parser.add_argument("--max-clips", type=int, default=0, help="kws-train --max-clips (0: every training clip)")
    parser.add_argument("--arch", default="gru")
    parser.add_argument("--dir", type=Path, help="where to build the stand-in, its cache and the model "
                        "(default: a new folder under the temporary directory, removed at the end)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    base = args.dir or Path(tempfile.mkdtemp(prefix="kws-scale-"))
    data, cache, out = base / "speech_commands", base / "cache", base / "model"
    for path in (cache, out, Path(str(out) + ".work")):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    counts = build_standin(data, args.clips)
    made = time.perf_counter() - started
    print(f"stand-in: {sum(counts.values()):,} clips of {len(counts)} words at {data} ({made:.0f}s to make)",
          flush=True)

    figures: dict = {"clips": sum(counts.values()), "words": len(counts), "machine": machine()}
    for name in ("first", "cached"):
        result, wall, rss = child([sys.executable, "-c", LOAD, str(data), str(cache)])
        if result.returncode:
            sys.exit(f"load ({name}) failed:\n{result.stderr[-3000:]}")
        load = json.loads(result.stdout.strip().splitlines()[-1])
        figures[f"load_{name}"] = {**load, "process_wall_s": wall, "peak_rss_mb": rss}
        print(f"load ({name}): {load['seconds']:.1f}s, peak {rss:,.0f} MB, cache built: {load['built']}", flush=True)
    figures["cached_speedup"] = figures["load_first"]["seconds"] / figures["load_cached"]["seconds"]

    if args.epochs:
        command = [sys.executable, "-m", "training.train", "--data", str(data), "--out", str(out), "--arch", args.arch,
                   "--epochs", str(args.epochs), "--cache", str(cache), "--quiet", "--stream-minutes", "1"]
        if args.max_clips:
            command += ["--max-clips", str(args.max_clips)]
        result, wall, rss = child(command)
        if result.returncode:
            sys.exit(f"training failed:\n{result.stderr[-3000:]}")
        meta = json.loads((out / "bundle.json").read_text())["training"]
        figures["train"] = {"command": " ".join(command[2:]).replace(str(base), "DIR"), "peak_rss_mb": rss,
                            "wall_s": wall, "fit_s": meta["fit_seconds"], "seconds_per_epoch": meta["seconds_per_epoch"],
                            "epochs": meta["epochs_run"], "train_clips": meta["train_clips"], "val_clips": meta["val_clips"],
                            "loading": meta["loading"], "test": meta["test"], "final_line": result.stdout.strip()}
        print(f"train: {meta['train_clips']:,} training clips, {meta['seconds_per_epoch']:.0f}s per epoch, "
              f"peak {rss:,.0f} MB, {wall:.0f}s wall", flush=True)

    print()
    print(f"machine: {figures['machine']}")
    print(f"data: stand-in of Speech Commands v0.02, {figures['clips']:,} clips, {figures['words']} words "
          f"(symlinks to {SHARED.name}'s clips under {V002_SPEAKERS} fresh speaker ids)")
    rows = [["load, first (cache built)", f"{figures['load_first']['seconds']:.1f} s",
             f"{figures['load_first']['peak_rss_mb']:,.0f} MB"],
            ["load, cached", f"{figures['load_cached']['seconds']:.1f} s "
             f"({figures['cached_speedup']:.0f}x faster)", f"{figures['load_cached']['peak_rss_mb']:,.0f} MB"]]
    if "train" in figures:
        t = figures["train"]
        rows.append([f"kws-train, {t['epochs']} epoch(s) on {t['train_clips']:,} training clips (load included)",
                     f"{t['seconds_per_epoch']:.0f} s per epoch, {t['wall_s']:.0f} s wall", f"{t['peak_rss_mb']:,.0f} MB"])
    print(table(["step", "time", "peak resident memory"], rows))
    if "train" in figures:
        print(f"kws-train's final line: {figures['train']['final_line']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
