"""Clips decoded once into a memory-mapped int16 cache, reused by later runs.

A full Speech Commands set (105,829 one-second clips) is 3.4 GB as int16 and twice
that as float32. Training keeps it as int16 and turns clips into float32 one at a
time, where the sequences are made (training/sequences.py).

Where: `--cache DIR`, else `$KWS_CACHE`, else `$XDG_CACHE_HOME/kws/clips` (by default
`~/.cache/kws/clips`): never inside the data folder, which may be read-only. Each data
folder gets a folder of its own there, `<name>-<hash of its absolute path>/`, holding
one cache per state of the data:

    <key>/pcm.int16    (clips, 16000) int16, row i = files[i], cut or zero-padded to 1 s
          spans.npy    (clips, 2) start/end sample of the spoken word (training.data.word_span)
          index.json   the key, the settings and the file list: [path, size, mtime_ns] per clip

The key is a hash of the file list (every clip the scan finds, whatever --words or
split), each file's size and modification time, the sample rate and clip length and
the cache format: any change of the data or the settings makes another key, so a
cache is never stale, only rebuilt. A rebuild decodes only the files that changed;
the others are copied from the folder's previous cache, which is then removed.

Writing is atomic: a cache is built in `<key>.tmp-<host>-<pid>/` and renamed into
place once complete, so a crash or Ctrl-C never leaves a half-written cache that a
later run would take for a whole one (it leaves a temporary folder, removed by the
next build once its process is gone). Two runs building the same cache at once both
finish; the second rename loses and its copy is dropped. Folders of data folders
that no longer exist are removed from the cache root when a cache is built.

Decoding runs in a thread pool (soundfile and NumPy release the GIL), each thread
writing its rows straight into the file (`os.pwrite`): no array of the whole set is
ever held in memory, and the cache's pages count against the process's memory only
while it reads them (`ClipStore` releases them as it goes).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import shutil
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from kws.audio import SAMPLE_RATE, load_audio
from kws.errors import KwsError

CACHE_FORMAT = 1
CLIP_SAMPLES = SAMPLE_RATE  # one second
ROW_BYTES = CLIP_SAMPLES * 2
MIN_SAMPLES = 480  # load_audio's shortest clip (one frame)
CHUNK = 256  # clips per task of the thread pool
RELEASE_BYTES = 256 << 20  # a store gives its mapped pages back after reading this much
OFF = "off"  # --cache off: decode into memory every run, write nothing


def default_cache_root() -> Path:
    """`$KWS_CACHE`, else `$XDG_CACHE_HOME/kws/clips`, else `~/.cache/kws/clips`."""
    if os.environ.get("KWS_CACHE"):
        return Path(os.environ["KWS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kws" / "clips"


def workers() -> int:
    """Decoding threads: reading is mostly waiting on the disk and in libsndfile (no GIL)."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


# ------------------------------------------------------------------ decoding

def fit_pcm(audio: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """float32 in [-1, 1] to int16, cut or zero-padded to `length`. Exact for 16-bit sources."""
    out = np.zeros(length, np.int16)
    n = min(length, len(audio))
    np.clip(np.rint(audio[:n] * 32768.0), -32768, 32767, out=out[:n], casting="unsafe")
    return out


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 clip(s) to float32 in [-1, 1): the same values `kws.audio.load_audio` gives."""
    return np.multiply(pcm, np.float32(1 / 32768), dtype=np.float32)


def decode(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """One clip as 1 s of int16 and the span of its spoken word, with `load_audio`'s checks.
    A 16 kHz mono 16-bit file (all of Speech Commands) is read as int16 directly; any other
    file, or one that fails a check, goes through `load_audio` (which names the problem)."""
    from training.data import word_span

    pcm = _read_pcm16(Path(path))
    if pcm is None:
        pcm = fit_pcm(load_audio(path))
    return pcm, word_span(to_float(pcm))


def _read_pcm16(path: Path) -> np.ndarray | None:
    """The fast path: None unless the file is complete 16 kHz mono PCM_16 of at least one frame."""
    from kws.audio import SOUNDFILE_ERRORS, _check_complete

    try:
        _check_complete(path)
        with sf.SoundFile(str(path)) as handle:
            if (handle.samplerate, handle.channels, handle.subtype) != (SAMPLE_RATE, 1, "PCM_16"):
                return None
            data = handle.read(CLIP_SAMPLES, dtype="int16")
    except (OSError, KwsError, *SOUNDFILE_ERRORS):
        return None
    if len(data) < MIN_SAMPLES:
        return None  # too short: load_audio says so
    if len(data) == CLIP_SAMPLES:
        return data
    out = np.zeros(CLIP_SAMPLES, np.int16)
    out[: len(data)] = data
    return out


def decode_rows(paths: Sequence[Path], write: Callable[[int, np.ndarray], None], spans: np.ndarray,
                progress: Callable[[int], None] | None = None, todo: Sequence[int] | None = None) -> None:
    """Decode `paths[i]` for each i of `todo` (default: all) in a thread pool: `write(i, pcm)`
    and `spans[i] = span`. `progress(n)` after each chunk of n clips. The first error
    (an `AudioError` naming the file) is raised once the pool has stopped."""
    todo = list(range(len(paths))) if todo is None else list(todo)
    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]

    def run(chunk: list[int]) -> int:
        for i in chunk:
            pcm, spans[i] = decode(paths[i])
            write(i, pcm)
        return len(chunk)

    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=min(workers(), len(chunks))) as pool:
        futures = [pool.submit(run, chunk) for chunk in chunks]
        try:
            for future in futures:
                done = future.result()
                if progress:
                    progress(done)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def decode_in_memory(paths: Sequence[Path], progress: Callable[[int], None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(clips, 16000) int16 and (clips, 2) spans, decoded in parallel into arrays made once."""
    pcm = np.zeros((len(paths), CLIP_SAMPLES), np.int16)
    spans = np.zeros((len(paths), 2), np.int64)

    def write(i: int, row: np.ndarray) -> None:
        pcm[i] = row

    decode_rows(paths, write, spans, progress)
    return pcm, spans


# ------------------------------------------------------------------ the store

def relative(root: Path, path: Path) -> str:
    """`path` under `root` as 'word/name.wav' (string arithmetic: pathlib is slow at 100k files)."""
    prefix, text = str(root).rstrip(os.sep) + os.sep, str(path)
    if not text.startswith(prefix):
        raise ValueError(f"{path} is not in {root}")
    return text[len(prefix) :].replace(os.sep, "/")


def listing(root: Path, paths: Sequence[Path]) -> list[list]:
    """[relative path, size, mtime_ns] of each file, sorted by path (the stat follows links,
    so a changed target of a symlink counts as a change)."""
    def stat(chunk: Sequence[Path]) -> list[list]:
        out = []
        for path in chunk:
            st = os.stat(path)
            out.append([relative(root, path), st.st_size, st.st_mtime_ns])
        return out

    chunks = [paths[i : i + 4096] for i in range(0, len(paths), 4096)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers(), len(chunks)))) as pool:  # stat releases the GIL
        rows = [row for part in pool.map(stat, chunks) for row in part]
    rows.sort(key=lambda row: row[0])
    return rows


def cache_key(files: list[list]) -> str:
    settings = {"format": CACHE_FORMAT, "sample_rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES,
                "decoder": "kws.audio.load_audio, int16, cut or zero-padded to clip_samples"}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for rel, size, mtime in files:
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:24]


def folder_for(cache_root: Path, data_root: Path) -> Path:
    """The cache root's folder for one data folder: `<name>-<hash of its absolute path>`."""
    resolved = str(Path(data_root).resolve())
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(resolved).name)[:40] or "data"
    return cache_root / f"{name}-{hashlib.sha1(resolved.encode()).hexdigest()[:12]}"


class ClipStore:
    """A complete cache, memory-mapped read-only: `pcm` (clips, 16000) int16 and `spans`,
    a row per file of `files`, found by relative path with `row`."""

    def __init__(self, path: Path, data_root: Path):
        self.path, self.data_root = path, Path(data_root)
        index = json.loads((path / "index.json").read_text())
        self.key, self.files = index["key"], index["files"]
        self.built_seconds = index.get("built_seconds")
        self._rows = {rel: i for i, (rel, _, _) in enumerate(self.files)}
        size = (path / "pcm.int16").stat().st_size
        if size != len(self.files) * ROW_BYTES:
            raise ValueError(f"{path}: pcm.int16 holds {size} bytes, the index needs {len(self.files) * ROW_BYTES}")
        with open(path / "pcm.int16", "rb") as handle:
            self._mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        buffer = self._mmap if self._mmap is not None else b""
        self.pcm = np.frombuffer(buffer, np.int16).reshape(len(self.files), CLIP_SAMPLES)
        self.spans = np.load(path / "spans.npy")
        self._read = 0

    def __len__(self) -> int:
        return len(self.files)

    def row(self, path: Path) -> int:
        return self._rows[relative(self.data_root, path)]

    def rows(self, paths: Sequence[Path]) -> np.ndarray:
        return np.array([self.row(p) for p in paths], dtype=np.int64)

    def read(self, row: int) -> np.ndarray:
        """One clip's int16 samples (a copy), giving the mapped pages back now and then, so
        that the cache counts in the process's resident memory only while being read."""
        clip = np.array(self.pcm[row])
        self._read += ROW_BYTES
        if self._read >= RELEASE_BYTES:
            self.release()
        return clip

    def release(self) -> None:
        self._read = 0
        if self._mmap is not None and hasattr(self._mmap, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)  # the page cache keeps them: the next read is no disk read


@dataclass
class CacheResult:
    store: ClipStore
    built: bool  # decoded now (else reused as it was)
    decoded: int  # clips decoded now (the others were reused)
    seconds: float


class CacheError(KwsError):
    """The clip cache cannot be written where it was asked for; the message says what to do."""

    def __init__(self, cache_root: Path, error: OSError):
        super().__init__(f"{cache_root}: cannot write the clip cache there ({error.strerror or error}): free some "
                         "space, give --cache DIR elsewhere, or --cache off to decode into memory")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(folder: Path, keep: str) -> None:
    """Other caches of this data folder (older states of the data) and temporary folders
    of builds whose process is gone."""
    host = socket.gethostname()
    for entry in folder.iterdir():
        if entry.name == keep or not entry.is_dir():
            continue
        tmp = re.fullmatch(r".+\.tmp-(.+)-(\d+)", entry.name)
        if tmp and (tmp.group(1) != host or _alive(int(tmp.group(2)))):
            continue  # another build still running (or on another machine: not ours to judge)
        shutil.rmtree(entry, ignore_errors=True)


def _prune_gone_folders(cache_root: Path) -> None:
    """Folders of data folders that no longer exist."""
    for folder in cache_root.iterdir() if cache_root.is_dir() else []:
        source = folder / "source.txt"
        if source.is_file() and not Path(source.read_text().strip()).exists():
            shutil.rmtree(folder, ignore_errors=True)


def _previous(folder: Path, data_root: Path, key: str) -> ClipStore | None:
    """The newest complete cache of this data folder, if any (to copy unchanged clips from)."""
    complete = [p for p in folder.iterdir() if p.is_dir() and p.name != key and (p / "index.json").is_file()
                and ".tmp-" not in p.name]
    for path in sorted(complete, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return ClipStore(path, data_root)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            continue
    return None


def open_cache(data_root: str | os.PathLike, paths: Sequence[Path], cache_root: str | os.PathLike | None = None,
               progress: Callable[[int, int], Callable[[int], None]] | None = None) -> CacheResult:
    """The cache of `paths` (every clip of the data folder `data_root`), built now if no
    complete cache matches the files as they are. `progress(total, reused)` is called
    before a build and returns the callback given the number of clips done after each chunk."""
    started = time.monotonic()
    data_root = Path(data_root)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    files = listing(data_root, paths)
    key = cache_key(files)
    folder = folder_for(cache_root, data_root)
    final = folder / key
    if (final / "index.json").is_file():
        try:
            return CacheResult(ClipStore(final, data_root), False, 0, time.monotonic() - started)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            shutil.rmtree(final, ignore_errors=True)  # damaged by hand: built again below
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "source.txt").write_text(str(data_root.resolve()) + "\n")
        _prune_gone_folders(cache_root)
        tmp = folder / f"{key}.tmp-{socket.gethostname()}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as error:
        raise CacheError(cache_root, error) from None
    try:
        decoded = _build(tmp, key, data_root, files, _previous(folder, data_root, key), progress)
        built_seconds = round(time.monotonic() - started, 2)
        index = {"format": CACHE_FORMAT, "key": key, "data": str(data_root.resolve()), "sample_rate": SAMPLE_RATE,
                 "clip_samples": CLIP_SAMPLES, "built_seconds": built_seconds, "decoded": decoded, "files": files}
        with open(tmp / "index.json", "w") as handle:
            json.dump(index, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.rename(tmp, final)
        except OSError:  # another run finished the same cache first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as error:  # a disk full, a folder not writable (a missing clip is an AudioError)
        shutil.rmtree(tmp, ignore_errors=True)
        raise CacheError(cache_root, error) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_leftovers(folder, key)
    return CacheResult(ClipStore(final, data_root), True, decoded, time.monotonic() - started)


def _build(tmp: Path, key: str, data_root: Path, files: list[list], previous: ClipStore | None,
           progress: Callable[[int, int], Callable[[int], None]] | None) -> int:
    """Fill `tmp/pcm.int16` and `tmp/spans.npy` in place; the number of clips decoded."""
    n = len(files)
    spans = np.zeros((n, 2), np.int64)
    reuse: dict[int, int] = {}
    if previous is not None:
        before = {rel: (i, size, mtime) for i, (rel, size, mtime) in enumerate(previous.files)}
        for i, (rel, size, mtime) in enumerate(files):
            if rel in before and before[rel][1:] == (size, mtime):
                reuse[i] = before[rel][0]
    todo = [i for i in range(n) if i not in reuse]
    tick = progress(n, len(reuse)) if progress else None
    fd = os.open(tmp / "pcm.int16", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, n * ROW_BYTES)

        def write(i: int, pcm: np.ndarray) -> None:
            data = memoryview(np.ascontiguousarray(pcm, np.int16)).cast("B")
            offset, done = i * ROW_BYTES, 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], offset + done)

        for i, old in reuse.items():
            write(i, previous.read(old))
            spans[i] = previous.spans[old]
        if previous is not None:
            previous.release()
        paths = [data_root / rel for rel, _, _ in files]
        decode_rows(paths, write, spans, tick, todo)
        os.fsync(fd)
    finally:
        os.close(fd)
    np.save(tmp / "spans.npy", spans)
    return len(todo)


def describe(result: CacheResult, n: int) -> str:
    """One line for the log: where the clips came from and how long it took."""
    if not result.built:
        return f"clips: {n:,} from the cache {result.store.path} ({result.seconds:.1f}s)"
    reused = len(result.store) - result.decoded
    also = f", {reused:,} unchanged copied from the previous cache" if reused else ""
    return (f"clips: {result.decoded:,} decoded into the cache {result.store.path} in {result.seconds:.1f}s "
            f"({workers()} threads{also})")


def is_off(cache: str | None) -> bool:
    return cache is not None and str(cache).lower() == OFF


class LoadDisplay:
    """The progress of a cache build: on a terminal a rich bar (erased when done), then one
    line saying where the clips came from; only that line elsewhere; nothing when off."""

    def __init__(self, mode: str | None = None, console=None):
        from rich.console import Console

        self.console = console or Console(file=sys.stdout, highlight=False)
        self.mode = mode or ("live" if self.console.is_terminal else "lines")
        self._bar = None

    def __call__(self, total: int, reused: int) -> Callable[[int], None]:
        """Called by `open_cache` when a build starts; returns the per-chunk callback."""
        if self.mode != "live":
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._bar = Progress(TextColumn("decoding clips into the cache"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("·"), TimeRemainingColumn(), console=self.console,
                             transient=True, refresh_per_second=4)
        task = self._bar.add_task("", total=total, completed=reused)
        self._bar.start()
        return lambda n: self._bar.advance(task, n)

    def __enter__(self) -> LoadDisplay:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def note(self, text: str) -> None:
        if self.mode != "off":
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
