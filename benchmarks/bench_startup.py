"""Start-up and memory of the `kws` command, as a user meets them (issue: a runtime that
starts in a second and never needs TensorFlow).

    python -m benchmarks.bench_startup [--runs 5] [--minutes 60]

Each figure is the median wall time of `--runs` fresh processes, with the reference
measured in the same run: `python -c "import tensorflow"` (what every `kws` command paid
before) and `python -c pass` (the interpreter alone).
- `kws classify one.wav`: one 1 s clip, the shipped GRU, cold process;
- `kws stream missing.wav`: the error for a missing file;
- `kws stream long.wav`: resident memory sampled every 0.25 s over a `--minutes` long
  recording (speech-like tones and noise): a quarter of the way through, at the end, and the peak.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import machine, speechlike, table


def wall_s(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def write_long_recording(path: Path, minutes: float) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as out:
        for second in range(int(minutes * 60)):
            out.write(0.5 * speechlike(1.0, second) + 0.01 * rng.standard_normal(16000).astype(np.float32))


def stream_memory(kws: str, path: Path) -> dict:
    """RSS of `kws stream` sampled every 0.25 s: a quarter of the way through, at the end, and the peak."""
    process = subprocess.Popen([kws, "stream", str(path), "--format", "csv"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    samples = []
    while process.poll() is None:
        value = rss_mb(process.pid)
        if value:
            samples.append(value)
        time.sleep(0.25)
    return {"samples": len(samples), "rss_quarter_mb": round(samples[len(samples) // 4], 1),
            "rss_end_mb": round(samples[-1], 1), "rss_peak_mb": round(max(samples), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the recording for the memory figure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    kws = str(Path(sys.executable).parent / "kws")
    with tempfile.TemporaryDirectory() as folder:
        one, long = Path(folder) / "one.wav", Path(folder) / "long.wav"
        sf.write(one, speechlike(1.0, 0), 16000, subtype="PCM_16")
        write_long_recording(long, args.minutes)
        subprocess.run([kws, "classify", str(one)], capture_output=True)  # numba's cache, as after an install
        result = {
            "python_pass_s": wall_s([sys.executable, "-c", "pass"], args.runs),
            "import_tensorflow_s": wall_s([sys.executable, "-c", "import tensorflow"], args.runs),
            "classify_one_clip_s": wall_s([kws, "classify", str(one)], args.runs),
            "missing_file_error_s": wall_s([kws, "stream", str(Path(folder) / "missing.wav")], args.runs),
            "stream_minutes": args.minutes,
            **stream_memory(kws, long),
            "runs": args.runs,
            "machine": machine(),
        }
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        ref = result["import_tensorflow_s"]
        print(f"kws start-up, median of {args.runs} fresh processes, on {result['machine']}\n")
        print(table(["what", "wall s", "vs `import tensorflow`"], [
            ["`python -c pass`", result["python_pass_s"], f"{result['python_pass_s'] / ref:.2f}x"],
            ["`python -c \"import tensorflow\"` (reference)", ref, "1x"],
            ["`kws classify one.wav` (1 s clip, GRU)", result["classify_one_clip_s"], f"{result['classify_one_clip_s'] / ref:.2f}x"],
            ["`kws stream missing.wav` (error)", result["missing_file_error_s"], f"{result['missing_file_error_s'] / ref:.2f}x"],
        ]))
        print(f"\n`kws stream` over {args.minutes:g} min of audio: resident memory {result['rss_quarter_mb']} MB a "
              f"quarter of the way through, {result['rss_end_mb']} MB at the end, peak {result['rss_peak_mb']} MB "
              f"({result['samples']} samples, every 0.25 s)")
    return result


if __name__ == "__main__":
    main()
