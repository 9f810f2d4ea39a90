"""`kws listen` through a real PortAudio input: PulseAudio with a null sink whose monitor
is the default source; spoken commands are played into the sink with paplay."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, run_cli

SINK = "kws_test_sink"
DETECTION = re.compile(r"^\s*([\d.]+)s\s+(\S+)\s+([\d.]+)$")


def pactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)


@contextlib.contextmanager
def null_sink(name: str = SINK):
    """A PulseAudio null sink whose monitor is the default source, for the block's duration.
    Starts the daemon if none runs, and then stops it again: the tests leave nothing running."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils)")
    we_started = subprocess.run(["pulseaudio", "--check"]).returncode != 0
    if we_started:
        started = subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True, text=True, timeout=30)
        if started.returncode != 0:
            pytest.skip(f"PulseAudio could not start: {started.stderr.strip()[-300:]}")
        time.sleep(1)
    loaded = pactl("load-module", "module-null-sink", f"sink_name={name}")
    if loaded.returncode != 0:
        pytest.skip(f"PulseAudio null sink could not be loaded: {loaded.stderr.strip()}")
    pactl("unload-module", "module-suspend-on-idle")  # an idle monitor must keep delivering audio
    previous = pactl("get-default-source").stdout.strip()
    assert pactl("set-default-source", f"{name}.monitor").returncode == 0
    try:
        yield name
    finally:
        if previous:
            pactl("set-default-source", previous)
        pactl("unload-module", loaded.stdout.strip())
        if we_started:
            subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=30)
            for _ in range(50):  # --kill returns before the daemon has gone
                if subprocess.run(["pulseaudio", "--check"]).returncode != 0:
                    break
                time.sleep(0.1)


@pytest.fixture(scope="module")
def pulse():
    with null_sink() as sink:
        yield sink


def test_the_null_sink_stops_the_daemon_it_started():
    if shutil.which("pulseaudio") and subprocess.run(["pulseaudio", "--check"]).returncode == 0:
        pytest.skip("a PulseAudio daemon was already running before this test")
    with null_sink("kws_check_sink") as sink:
        assert sink in pactl("list", "short", "sinks").stdout
    assert subprocess.run(["pulseaudio", "--check"]).returncode != 0, "the daemon the test started is still running"


def words_wav(paths: list[Path], out: Path, gap_s: float = 1.5) -> Path:
    from kws.audio import load_audio

    silence = np.zeros(int(gap_s * 16000), np.float32)
    parts = [np.zeros(32000, np.float32)]
    for path in paths:
        parts += [load_audio(path), silence]
    sf.write(out, np.concatenate(parts), 16000, subtype="PCM_16")
    return out


def listen_while_playing(model: str, wav: Path, record: Path, sink: str) -> tuple[list[tuple[str, float]], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kws.cli", "listen", "--model", model, "--plain", "--record", str(record)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("listening"), first + process.stderr.read()
        time.sleep(1.0)
        subprocess.run(["paplay", f"--device={sink}", str(wav)], check=True, timeout=120)
        time.sleep(2.0)
    finally:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    found = [(m.group(2), float(m.group(1))) for m in map(DETECTION.match, out.splitlines()) if m]
    return found, out


def is_subsequence(wanted: list[str], got: list[str]) -> bool:
    it = iter(got)
    return all(word in it for word in wanted)


def test_listen_detects_spoken_commands_through_portaudio(pulse, trained, tiny_dataset, tmp_path):
    from training.data import scan

    model = str(trained[0])
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    by_word = {}
    for clip in data.clips("training"):
        by_word.setdefault(clip.label, clip.path)
    played = ["yes", "no", "up"]
    wav = words_wav([by_word[w] for w in played], tmp_path / "played.wav")
    record = tmp_path / "heard.wav"
    found, out = listen_while_playing(model, wav, record, pulse)
    labels = [label for label, _ in found]
    assert is_subsequence(played, labels), f"played {played}, detected {found}"
    assert re.search(r"stopped: \d+ detections in [\d.]+ s of audio, \d+ input overflows", out)
    # what the live path printed is exactly what the engine gives offline on the audio it heard
    offline = run_cli("kws.cli", "stream", str(record), "--model", model, "--format", "json")
    import json

    offline_found = [(d["label"], d["time_s"]) for d in json.loads(offline.stdout)]
    assert [label for label, _ in offline_found] == labels
    assert np.allclose([t for _, t in offline_found], [t for _, t in found], atol=0.0051)  # live prints 2 decimals


def test_listen_with_real_clips_and_shipped_model(pulse, shared_data, tmp_path):
    from training.data import scan

    data = scan(shared_data, validation_percentage=15, testing_percentage=0, split_salt="kws")
    chosen, played = [], ["yes", "stop", "left", "go"]
    for word in played:
        chosen.append(next(c.path for c in data.clips("validation") if c.label == word))
    wav = words_wav(chosen, tmp_path / "played.wav")
    found, _ = listen_while_playing("gru", wav, tmp_path / "heard.wav", pulse)
    labels = [label for label, _ in found]
    hits = sum(1 for w in played if w in labels)
    assert hits >= 3, f"played {played}, detected {found}"


def test_listen_lists_devices_and_rejects_a_missing_one(pulse):
    listed = run_cli("kws.cli", "listen", "--list-devices")
    assert listed.returncode == 0 and "Hz" in listed.stdout
    missing = run_cli("kws.cli", "listen", "--device", "987", "--model", "gru")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("error: no input device 987")
