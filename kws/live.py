"""The live microphone loop: PortAudio (sounddevice) input -> queue -> engine -> display.

The audio callback only copies blocks into a queue (and counts overflows);
recognition runs on the main thread. A device whose native rate is not 16 kHz is
opened at its own rate and resampled with a streaming resampler.
"""

from __future__ import annotations

import queue
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import soxr

from kws.detector import Detection
from kws.engine import Engine
from kws.errors import DeviceError
from kws.labels import SILENCE


class MicrophoneError(DeviceError):
    """No usable input device, or it went away. The message says which and why."""


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # PortAudio library missing
        raise MicrophoneError(f"PortAudio is not available ({error}); install libportaudio2") from None
    return sounddevice


def list_input_devices() -> str:
    sd = _sounddevice()
    lines = []
    default = sd.default.device[0]
    for index, device in enumerate(sd.query_devices()):
        if device["max_input_channels"] > 0:
            mark = "*" if index == default else " "
            lines.append(f"{mark} {index:3d}  {device['name']}  ({device['max_input_channels']} ch, {device['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) if lines else "no audio input devices found"


def input_device(device: str | int | None) -> tuple[int | str | None, float]:
    """Resolve a device (index, name or None for the default) and its native sample rate."""
    sd = _sounddevice()
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as error:
        what = "no default audio input device" if device is None else f"no input device {device!r}"
        raise MicrophoneError(f"{what} ({error}); see kws listen --list-devices") from None
    return device, float(info["default_samplerate"])


class LevelMeter:
    """The input level a person can read: RMS over the last `window_s` in dBFS (never
    below `floor_db`), and the highest level of the last `hold_s` (peak hold)."""

    def __init__(self, window_s: float = 0.3, hold_s: float = 1.5, floor_db: float = -90.0):
        self.window_s, self.hold_s, self.floor_db = window_s, hold_s, floor_db
        self._blocks: list[tuple[float, float]] = []  # (seconds, mean square) of recent blocks
        self._levels: list[tuple[float, float]] = []  # (clock, level_db) over the hold time
        self._clock = 0.0
        self.level_db = self.peak_db = floor_db

    def update(self, block: np.ndarray, rate: float) -> None:
        seconds = len(block) / rate
        self._clock += seconds
        self._blocks.append((seconds, float(np.mean(np.square(block, dtype=np.float64))) if len(block) else 0.0))
        while sum(s for s, _ in self._blocks[1:]) >= self.window_s:
            self._blocks.pop(0)
        total = sum(s for s, _ in self._blocks)
        power = sum(s * p for s, p in self._blocks) / total if total else 0.0
        self.level_db = max(self.floor_db, 10 * np.log10(power) if power > 0 else self.floor_db)
        self._levels = [(t, db) for t, db in self._levels if self._clock - t <= self.hold_s] + [(self._clock, self.level_db)]
        self.peak_db = max(db for _, db in self._levels)


@dataclass
class Session:
    detections: list[Detection] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)  # each detection's highest posterior while its word lasts
    overflows: int = 0
    audio_seconds: float = 0.0
    meter: LevelMeter = field(default_factory=LevelMeter)
    top: tuple[str, float] = (SILENCE, 0.0)

    def note(self, result, labels: list[str], peak_ms: float = 1000.0) -> None:
        """Record a chunk's detections, and raise the peak of each detection made in the
        last `peak_ms`: the detector fires when the smoothed score crosses the threshold,
        so its own score always reads about the threshold."""
        if not len(result.posteriors):
            return
        times = result.times_ms
        self.detections.extend(result.detections)
        self.peaks.extend(d.score for d in result.detections)
        for i in range(len(self.detections) - 1, -1, -1):
            detection = self.detections[i]
            if times[-1] - detection.time_ms > peak_ms:
                break
            column = result.posteriors[times >= detection.time_ms, labels.index(detection.label)]
            if len(column):
                self.peaks[i] = max(self.peaks[i], float(column.max()))
        last = result.posteriors[-1]
        self.top = (labels[int(last.argmax())], float(last.max()))


class Listener:
    def __init__(self, engine: Engine, device=None, block_ms: float = 20.0, record=None):
        self.engine = engine
        self.record = record  # an open soundfile.SoundFile for the 16 kHz audio the engine hears, or None
        self.device, self.rate = input_device(device)
        self.block = max(1, int(self.rate * block_ms / 1000))
        self.blocks: queue.Queue = queue.Queue()
        self.session = Session()
        target = engine.bundle.frontend.sample_rate
        self.resampler = None if int(self.rate) == target else soxr.ResampleStream(self.rate, target, 1, dtype="float32")

    def _callback(self, indata, frames, time_info, status):
        if status.input_overflow:
            self.session.overflows += 1
        self.blocks.put(indata[:, 0].copy())

    def _open(self):
        sd = _sounddevice()
        try:
            return sd.InputStream(device=self.device, channels=1, samplerate=self.rate, blocksize=self.block,
                                  dtype="float32", callback=self._callback)
        except sd.PortAudioError as error:
            raise MicrophoneError(f"cannot open input device {self.device or 'default'} at {self.rate:.0f} Hz ({error})") from None

    def run(self, on_update, max_seconds: float | None = None, stall_s: float = 10.0, stop=None) -> Session:
        """Listen until `stop` (a threading.Event, set by Ctrl-C) is set or `max_seconds`
        of audio were heard. No audio for `stall_s` seconds means the device is gone."""
        sd = _sounddevice()
        try:
            with self._open() as stream:
                on_update(self.session, [], started=True)
                waited = 0.0
                while (max_seconds is None or self.session.audio_seconds < max_seconds) and not (stop and stop.is_set()):
                    try:
                        block = self.blocks.get(timeout=0.5)
                    except queue.Empty:
                        waited += 0.5
                        if not stream.active or waited >= stall_s:
                            raise MicrophoneError(
                                f"no audio from the input device for {waited:.0f} s (disconnected?)") from None
                        continue
                    waited = 0.0
                    on_update(self.session, self._recognise(block))
        except sd.PortAudioError as error:
            raise MicrophoneError(f"the input device failed ({error})") from None
        return self.session

    def _recognise(self, block: np.ndarray) -> list[Detection]:
        self.session.audio_seconds += len(block) / self.rate
        self.session.meter.update(block, self.rate)
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block)
        if self.record is not None:
            self.record.write(block)
        result = self.engine.process(block)
        self.session.note(result, self.engine.labels)
        return result.detections


class PlainDisplay:
    """One line per detection, for pipes and logs."""

    def __call__(self, session: Session, new: list[Detection], started: bool = False):
        if started:
            print("listening... (Ctrl-C to stop)", flush=True)
        for d in new:
            print(f"{d.time_s:9.2f}s  {d.label:<8} {d.score:.2f}", flush=True)

    def close(self):
        pass


class LiveDisplay:
    """A terminal panel: input level, current top class, recent detections."""

    def __init__(self, model_name: str, refresh_s: float = 0.1):
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.model_name = model_name
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.live.start()
        self.refresh_s = refresh_s
        self.last = 0.0

    def __call__(self, session: Session, new: list[Detection], started: bool = False):
        now = time.monotonic()
        if not new and not started and now - self.last < self.refresh_s:
            return
        self.last = now
        self.live.update(self._render(session), refresh=True)

    def _render(self, session: Session):
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_row("input", meter_bar(session.meter))
        table.add_row("now", f"{session.top[0]:<8} {session.top[1]:.2f}")
        table.add_row("heard", f"{session.audio_seconds:7.1f} s   overflows {session.overflows}")
        recent = list(zip(session.detections, session.peaks))[-8:][::-1]
        for d, peak in recent:
            table.add_row(f"{d.time_s:7.2f}s", f"[bold green]{d.label:<8}[/] {peak:.2f}")
        return Panel(table, title=f"kws listen - {self.model_name} - Ctrl-C to stop")

    def close(self):
        self.live.stop()


def meter_bar(meter: LevelMeter, width: int = 30) -> str:
    """`█████|····  -32.5 dBFS (peak -20.1)`: the bar spans floor..0 dBFS, `|` marks the held peak."""
    def cells(db: float) -> int:
        return int(round(width * min(1.0, max(0.0, (db - meter.floor_db) / -meter.floor_db))))

    filled, peak = cells(meter.level_db), cells(meter.peak_db)
    bar = ["█" if i < filled else "·" for i in range(width)]
    if peak > filled:
        bar[peak - 1] = "|"
    return f"{''.join(bar)} {meter.level_db:6.1f} dBFS (peak {meter.peak_db:6.1f})"


def summary(session: Session) -> str:
    return (f"{len(session.detections)} detections in {session.audio_seconds:.1f} s of audio, "
            f"{session.overflows} input overflows")


def make_display(model_name: str, plain: bool):
    return PlainDisplay() if plain or not sys.stdout.isatty() else LiveDisplay(model_name)
