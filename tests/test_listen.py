"""`kws listen` through a real PortAudio input: PulseAudio with a null sink whose monitor
is the default source; spoken commands are played into the sink with paplay."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, run_cli

SINK = f"kws_test_sink_{os.getpid()}"  # one per test run: concurrent runs never hear each other
DETECTION = re.compile(r"^\s*([\d.]+)s\s+(\S+)\s+([\d.]+)$")


def pactl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)


@contextlib.contextmanager
def null_sink(name: str = SINK):
    """A private PulseAudio daemon (its own runtime folder, so neither the user's daemon
    nor another test run is touched) with a null sink, for the block's duration. A
    listener hears what is played into the sink by taking its monitor as the source
    (PULSE_SOURCE=<sink>.monitor). The daemon is stopped at the end: nothing is left running."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils)")
    runtime = tempfile.mkdtemp(prefix="kws-pulse-")
    previous = os.environ.get("PULSE_RUNTIME_PATH")
    os.environ["PULSE_RUNTIME_PATH"] = runtime  # pactl, paplay and PortAudio's ALSA plugin follow it
    try:
        started = subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], capture_output=True, text=True, timeout=30)
        if started.returncode != 0:
            pytest.skip(f"PulseAudio could not start: {started.stderr.strip()[-300:]}")
        loaded = pactl("load-module", "module-null-sink", f"sink_name={name}")
        if loaded.returncode != 0:
            pytest.skip(f"PulseAudio null sink could not be loaded: {loaded.stderr.strip()}")
        pactl("unload-module", "module-suspend-on-idle")  # an idle monitor must keep delivering audio
        yield name
    finally:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=30)
        for _ in range(50):  # --kill returns before the daemon has gone
            if subprocess.run(["pulseaudio", "--check"], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        if previous is None:
            os.environ.pop("PULSE_RUNTIME_PATH", None)
        else:
            os.environ["PULSE_RUNTIME_PATH"] = previous
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def pulse():
    with null_sink() as sink:
        yield sink


def test_the_null_sink_stops_the_daemon_it_started():
    with null_sink("kws_check_sink") as sink:
        runtime = os.environ["PULSE_RUNTIME_PATH"]
        assert sink in pactl("list", "short", "sinks").stdout
    still = subprocess.run(["pulseaudio", "--check"], env={**os.environ, "PULSE_RUNTIME_PATH": runtime})
    assert still.returncode != 0, "the daemon the test started is still running"
    assert "PULSE_RUNTIME_PATH" not in os.environ or os.environ["PULSE_RUNTIME_PATH"] != runtime


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
        env={**os.environ, "PYTHONPATH": str(ROOT), "PULSE_SOURCE": f"{sink}.monitor"},
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
