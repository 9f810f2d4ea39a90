"""The live screen's figures, without a sound card: the level meter and detection peaks."""

import numpy as np
import pytest

from kws.detector import Detection
from kws.engine import ChunkResult
from kws.live import LevelMeter, Session, meter_bar

RATE = 16000


def sine(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def feed(meter: LevelMeter, signal: np.ndarray, block: int = 320) -> None:
    for i in range(0, len(signal), block):
        meter.update(signal[i : i + block], RATE)


def test_meter_reads_rms_over_a_window_not_one_block():
    meter = LevelMeter(window_s=0.3)
    feed(meter, sine(1.0, 0.1))
    assert abs(meter.level_db - 20 * np.log10(0.1 / np.sqrt(2))) < 0.1  # -23.0 dBFS
    # one silent 20 ms block after a tone does not drop the reading to the floor
    meter.update(np.zeros(320, np.float32), RATE)
    assert meter.level_db > -25


def test_meter_has_a_floor_and_holds_its_peak():
    meter = LevelMeter(window_s=0.3, hold_s=1.5, floor_db=-90)
    feed(meter, np.zeros(RATE, np.float32))
    assert meter.level_db == meter.peak_db == -90  # not -180 or -inf
    feed(meter, sine(0.5, 0.5))
    loud = meter.level_db
    feed(meter, np.zeros(RATE, np.float32))
    assert meter.level_db == -90 and meter.peak_db == loud  # held for 1.5 s
    feed(meter, np.zeros(RATE, np.float32))
    assert meter.peak_db == -90  # then released
    assert "dBFS (peak" in meter_bar(meter)


def chunk(first_frame: int, rows: list[list[float]], detections=()) -> ChunkResult:
    return ChunkResult(np.array(rows, np.float32), list(detections), first_frame)


def test_detection_shows_the_peak_of_its_word_not_the_threshold_crossing():
    labels = ["silence", "unknown", "yes"]
    session = Session()
    fired = Detection("yes", 0.61, time_ms=30 + 2 * 10)  # fired on frame 2 at the threshold
    session.note(chunk(0, [[0.9, 0.05, 0.05], [0.5, 0.1, 0.4], [0.2, 0.1, 0.7]], [fired]), labels)
    assert session.peaks == pytest.approx([0.7])
    session.note(chunk(3, [[0.02, 0.01, 0.97], [0.3, 0.1, 0.6]]), labels)  # the word goes on
    assert session.peaks == pytest.approx([0.97]) and session.detections == [fired]
    session.note(chunk(150, [[0.0, 0.0, 1.0]]), labels)  # 1.5 s later: another word's frames
    assert session.peaks == pytest.approx([0.97]) and session.top == ("yes", 1.0)
