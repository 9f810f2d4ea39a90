"""The clip cache (training/cache.py): built once, reused, rebuilt when the data change,
never stale, never half-written, never inside the data folder."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import soundfile as sf

from kws.audio import AudioError, fit_clip, load_audio
from training import cache
from training.cache import ClipStore, default_cache_root, folder_for, open_cache
from training.data import load_clips, scan, word_span

SR = 16000


def write_clip(path, seed: int, seconds: float = 1.0, subtype: str = "PCM_16", rate: int = SR):
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    audio = 0.01 * rng.standard_normal(n)
    audio[n // 4 : n // 2] += 0.5 * np.sin(2 * np.pi * 300 * np.arange(n // 2 - n // 4) / rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), rate, subtype=subtype)
    return path


@pytest.fixture
def layout(tmp_path):
    """A small Speech Commands folder: 3 words x 4 speakers, one clip shorter, one longer,
    one at 8 kHz float (the slow path), and two silence clips."""
    root = tmp_path / "data"
    seed = 0
    for word in ("yes", "no", "cat"):
        for speaker in ("aaaa0001", "bbbb0002", "cccc0003", "dddd0004"):
            seed += 1
            write_clip(root / word / f"{speaker}_nohash_0.wav", seed)
    write_clip(root / "yes" / "eeee0005_nohash_0.wav", 100, seconds=0.6)
    write_clip(root / "no" / "eeee0005_nohash_0.wav", 101, seconds=1.3)
    write_clip(root / "cat" / "eeee0005_nohash_0.wav", 102, subtype="FLOAT", rate=8000)
    for i in range(2):
        write_clip(root / "_silence_" / f"{i}.wav", 200 + i)
    return root


def every_clip(root):
    dataset = scan(root, ("yes", "no"), 30, 0)
    return dataset, [c.path for clips in dataset.splits.values() for c in clips]


def expected_pcm(path) -> np.ndarray:
    return cache.fit_pcm(fit_clip(load_audio(path)))


def contents(store: ClipStore, paths) -> dict:
    return {p: store.pcm[store.row(p)] for p in paths}


def count_decodes(monkeypatch) -> list:
    decoded = []
    real = cache.decode

    def counting(path):
        decoded.append(path)
        return real(path)

    monkeypatch.setattr(cache, "decode", counting)
    return decoded


def test_the_cache_is_built_once_then_reused(layout, tmp_path, monkeypatch):
    dataset, paths = every_clip(layout)
    before = sorted(p.relative_to(layout) for p in layout.rglob("*"))
    decoded = count_decodes(monkeypatch)
    first = open_cache(layout, paths, tmp_path / "cache")
    assert first.built and first.decoded == len(paths) == len(decoded) == len(first.store) == 17
    assert first.store.path.parent == folder_for(tmp_path / "cache", layout)
    for path in paths:  # exactly the samples load_audio gives, cut or padded to 1 s, as int16
        row = first.store.row(path)
        assert np.array_equal(first.store.pcm[row], expected_pcm(path)), path
        assert tuple(first.store.spans[row]) == word_span(cache.to_float(expected_pcm(path)))
    assert sorted(p.relative_to(layout) for p in layout.rglob("*")) == before  # nothing written in the data folder

    decoded.clear()
    again = open_cache(layout, paths, tmp_path / "cache")
    assert not again.built and again.decoded == 0 and decoded == []
    assert again.store.path == first.store.path
    index = json.loads((again.store.path / "index.json").read_text())
    assert index["sample_rate"] == SR and len(index["files"]) == 17
    assert {rel for rel, _, _ in index["files"]} == {p.relative_to(layout).as_posix() for p in paths}


def test_loading_through_the_cache_equals_loading_into_memory(layout, tmp_path):
    dataset, paths = every_clip(layout)
    store = open_cache(layout, paths, tmp_path / "cache").store
    for split in ("training", "validation"):
        cached = load_clips(dataset.clips(split), dataset.labels, store)
        direct = load_clips(dataset.clips(split), dataset.labels)
        assert cached.pcm.dtype == direct.pcm.dtype == np.int16
        assert cached.paths == direct.paths and np.array_equal(cached.labels, direct.labels)
        assert np.array_equal(cached.spans, direct.spans)
        for i in range(len(cached)):
            assert cached.clip(i).dtype == np.float32
            assert np.array_equal(cached.clip(i), direct.clip(i))
        assert np.array_equal(cached.audio, direct.audio) and cached.audio.dtype == np.float32
        assert np.array_equal(direct.audio[0], fit_clip(load_audio(direct.paths[0])))


@pytest.mark.parametrize("change", ["rewritten", "added", "removed", "touched"])
def test_a_change_in_the_data_makes_a_new_cache_and_only_the_changed_files_are_decoded(layout, tmp_path, monkeypatch,
                                                                                       change):
    _, paths = every_clip(layout)
    old = open_cache(layout, paths, tmp_path / "cache").store
    target = layout / "yes" / "aaaa0001_nohash_0.wav"
    if change == "rewritten":  # same size, other samples
        write_clip(target, 999)
        os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 10**9))
    elif change == "added":
        target = write_clip(layout / "no" / "ffff0006_nohash_0.wav", 998)
    elif change == "removed":
        target.unlink()
    else:  # the same samples, a new modification time: decoded again (cheap), never trusted
        os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 10**9))
    _, now = every_clip(layout)
    decoded = count_decodes(monkeypatch)
    new = open_cache(layout, now, tmp_path / "cache")
    assert new.built and new.store.key != old.key
    assert decoded == ([] if change == "removed" else [target]) and new.decoded == len(decoded)
    for path in now:
        assert np.array_equal(new.store.pcm[new.store.row(path)], expected_pcm(path)), path
    assert [p.name for p in new.store.path.parent.iterdir() if p.is_dir()] == [new.store.key]  # the old one removed


def test_the_settings_are_part_of_the_key(layout, tmp_path, monkeypatch):
    _, paths = every_clip(layout)
    first = open_cache(layout, paths, tmp_path / "cache")
    monkeypatch.setattr(cache, "CACHE_FORMAT", cache.CACHE_FORMAT + 1)
    other = open_cache(layout, paths, tmp_path / "cache")
    assert other.built and other.store.key != first.store.key


def test_an_interrupted_build_leaves_no_cache_and_the_next_run_builds_a_whole_one(layout, tmp_path, monkeypatch):
    _, paths = every_clip(layout)
    real, calls = cache.decode, []

    def failing(path):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(cache, "decode", failing)
    with pytest.raises(KeyboardInterrupt):
        open_cache(layout, paths, tmp_path / "cache")
    folder = folder_for(tmp_path / "cache", layout)
    assert [p.name for p in folder.iterdir() if p.is_dir()] == []  # no cache, no temporary folder
    monkeypatch.setattr(cache, "decode", real)
    whole = open_cache(layout, paths, tmp_path / "cache")
    assert whole.built and whole.decoded == len(paths)
    for path in paths:
        assert np.array_equal(whole.store.pcm[whole.store.row(path)], expected_pcm(path))


def test_leftovers_of_a_crashed_build_are_removed_and_a_damaged_cache_is_rebuilt(layout, tmp_path):
    _, paths = every_clip(layout)
    built = open_cache(layout, paths, tmp_path / "cache").store
    folder = built.path.parent
    dead = folder / f"{built.key}.tmp-{socket.gethostname()}-{2**22 + 12345}"  # no such process
    dead.mkdir()
    (dead / "pcm.int16").write_bytes(b"\0" * 100)
    live = folder / f"{built.key}.tmp-{socket.gethostname()}-{os.getppid()}"  # a build still running: left alone
    live.mkdir()
    with open(built.path / "pcm.int16", "r+b") as handle:  # damaged by hand: cut short
        handle.truncate(1000)
    again = open_cache(layout, paths, tmp_path / "cache")
    assert again.built and again.decoded == len(paths)
    assert not dead.exists() and live.exists()


def test_a_bad_clip_is_one_error_naming_it_and_no_cache_is_left(layout, tmp_path):
    bad = layout / "no" / "gggg0007_nohash_0.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot audio at all")
    _, paths = every_clip(layout)
    with pytest.raises(AudioError) as error:
        open_cache(layout, paths, tmp_path / "cache")
    assert str(bad) in str(error.value)
    assert [p for p in folder_for(tmp_path / "cache", layout).iterdir() if p.is_dir()] == []


def test_where_the_cache_lives(tmp_path, monkeypatch):
    monkeypatch.delenv("KWS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "kws" / "clips"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "kws" / "clips"
    monkeypatch.setenv("KWS_CACHE", str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine"
    a, b = folder_for(tmp_path, tmp_path / "x" / "data"), folder_for(tmp_path, tmp_path / "y" / "data")
    assert a != b and a.name.startswith("data-") and b.name.startswith("data-")


def test_caches_of_data_folders_that_are_gone_are_removed(layout, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(layout, other)
    _, other_paths = every_clip(other)
    gone = open_cache(other, other_paths, tmp_path / "cache").store.path.parent
    shutil.rmtree(other)
    _, paths = every_clip(layout)
    open_cache(layout, paths, tmp_path / "cache")
    assert not gone.exists()


def test_the_store_gives_its_pages_back(layout, tmp_path, monkeypatch):
    _, paths = every_clip(layout)
    store = open_cache(layout, paths, tmp_path / "cache").store
    monkeypatch.setattr(cache, "RELEASE_BYTES", 3 * cache.ROW_BYTES)
    released = []
    real = store.release
    monkeypatch.setattr(store, "release", lambda: (released.append(1), real()))
    clips = [store.read(i % len(store)) for i in range(7)]
    assert len(released) == 2 and all(c.dtype == np.int16 for c in clips)
    assert np.array_equal(store.read(3), store.pcm[3])


def test_a_cache_folder_that_cannot_be_written_is_one_error(layout, tmp_path):
    from training.cache import CacheError

    _, paths = every_clip(layout)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(CacheError) as error:
        open_cache(layout, paths, blocked / "cache")
    assert str(error.value).startswith(f"{blocked / 'cache'}: cannot write the clip cache there (")
    assert "--cache off" in str(error.value) and "\n" not in str(error.value)
