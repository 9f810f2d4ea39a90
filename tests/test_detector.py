import numpy as np
import pytest

from kws.detector import Detection, Detector, DetectorConfig
from kws.scoring import TruthWord, read_truth, score_stream, write_truth

LABELS = ["silence", "unknown", "yes", "no"]


def posteriors(spans: dict, n: int = 300) -> np.ndarray:
    """Frames of silence, with label -> [(start_frame, end_frame, score)] bumps."""
    p = np.zeros((n, len(LABELS)))
    p[:, 0] = 1.0
    for label, bumps in spans.items():
        for start, end, score in bumps:
            p[start:end, :] = (1 - score) / (len(LABELS) - 1)
            p[start:end, LABELS.index(label)] = score
    return p


def test_one_word_fires_once():
    detector = Detector(LABELS, DetectorConfig(average_window_ms=50, threshold=0.6, min_above_ms=30, suppression_ms=500))
    found = detector.run(posteriors({"yes": [(100, 160, 0.9)]}))
    assert [d.label for d in found] == ["yes"]
    assert 100 * 10 + 30 < found[0].time_ms < 160 * 10 + 30


def test_silence_and_unknown_never_fire():
    detector = Detector(LABELS, DetectorConfig(threshold=0.5))
    assert detector.run(posteriors({"unknown": [(10, 200, 0.99)]})) == []


def test_below_threshold_does_not_fire():
    assert Detector(LABELS, DetectorConfig(threshold=0.95)).run(posteriors({"yes": [(100, 200, 0.9)]})) == []


def test_brief_blip_is_ignored_by_min_time_above():
    config = DetectorConfig(average_window_ms=10, threshold=0.5, min_above_ms=100)
    assert Detector(LABELS, config).run(posteriors({"yes": [(100, 105, 0.99)]})) == []
    assert len(Detector(LABELS, config).run(posteriors({"yes": [(100, 120, 0.99)]}))) == 1


def test_suppression_and_rearming():
    config = DetectorConfig(average_window_ms=10, threshold=0.5, min_above_ms=10, suppression_ms=1000)
    # two words 500 ms apart: the second is inside the suppression time
    assert len(Detector(LABELS, config).run(posteriors({"yes": [(50, 80, 0.9)], "no": [(100, 130, 0.9)]}))) == 1
    # two words 1.5 s apart: both fire
    both = Detector(LABELS, config).run(posteriors({"yes": [(50, 80, 0.9)], "no": [(200, 230, 0.9)]}))
    assert [d.label for d in both] == ["yes", "no"]
    # one long word held above threshold for 3 s fires once (must drop before re-arming)
    assert len(Detector(LABELS, config).run(posteriors({"yes": [(10, 310, 0.9)]}, n=320))) == 1


def test_reset_does_not_refire_a_word_still_heard():
    config = DetectorConfig(average_window_ms=10, threshold=0.5, min_above_ms=10, suppression_ms=100)
    detector = Detector(LABELS, config)
    p = posteriors({"yes": [(10, 200, 0.9)]})
    assert len(detector.run(p[:50])) == 1
    detector.reset()
    assert detector.run(p[50:200], first_frame=50) == []
    # once the word has ended, the next one fires again
    assert len(detector.run(posteriors({"yes": [(20, 60, 0.9)]}, n=80), first_frame=300)) == 1


@pytest.mark.parametrize("bad", [dict(threshold=0), dict(threshold=1.5), dict(frame_ms=0), dict(suppression_ms=-1)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        DetectorConfig(**bad)


def test_wrong_shape_raises():
    with pytest.raises(ValueError, match="expected"):
        Detector(LABELS).update(np.ones(3), 0.0)


def test_stream_scoring():
    truth = [TruthWord("yes", 1000), TruthWord("no", 3000), TruthWord("unknown", 5000), TruthWord("yes", 7000)]
    detections = [
        Detection("yes", 0.9, 1600),  # hit, 600 ms
        Detection("yes", 0.9, 3500),  # wrong word
        Detection("no", 0.8, 5400),  # detection on an unknown word: wrong
        Detection("no", 0.8, 9900),  # nothing within 1.5 s: false alarm
    ]
    score = score_stream(detections, truth, audio_s=3600, tolerance_ms=1500)
    assert (score.hits, score.wrong, score.false_alarms, score.misses, score.commands) == (1, 2, 1, 1, 3)
    d = score.to_dict()
    assert d["false_alarms_per_hour"] == 1.0 and d["latency_ms"]["median"] == 600.0


def test_truth_csv_round_trip_and_errors(tmp_path):
    path = tmp_path / "t.csv"
    write_truth(path, [TruthWord("yes", 1000.0), TruthWord("_unknown_", 2500.5)])
    assert read_truth(path) == [TruthWord("yes", 1000.0), TruthWord("unknown", 2500.5)]
    (tmp_path / "bad.csv").write_text("yes,abc\n")
    from kws.scoring import TruthError

    with pytest.raises(TruthError, match="line 1: time_ms 'abc' is not a number"):
        read_truth(tmp_path / "bad.csv")


class ReferenceDetector:
    """The detector's rules written out plainly, one frame at a time, to check the compiled one against."""

    def __init__(self, labels, config):
        self.labels, self.c = labels, config
        self.window = max(1, int(round(config.average_window_ms / config.frame_ms)))
        self.min_above = max(1, int(round(config.min_above_ms / config.frame_ms)))
        self.armed = {label: True for label in labels}
        self.history, self.above, self.above_frames, self.last_fire = [], None, 0, -np.inf

    def update(self, posterior, time_ms):
        self.history = (self.history + [posterior])[-self.window:]
        smoothed = dict(zip(self.labels, np.mean(self.history, axis=0)))
        for label, score in smoothed.items():
            if score < self.c.threshold:
                self.armed[label] = True
        candidates = [label for label in self.labels if label not in ("silence", "unknown")]
        best = max(candidates, key=lambda label: smoothed[label])  # the first of equal scores
        if smoothed[best] < self.c.threshold:
            self.above, self.above_frames = None, 0
            return None
        self.above_frames = self.above_frames + 1 if best == self.above else 1
        self.above = best
        if self.above_frames >= self.min_above and self.armed[best] and time_ms - self.last_fire >= self.c.suppression_ms:
            self.armed[best], self.last_fire = False, time_ms
            return Detection(best, smoothed[best], time_ms)
        return None


def random_streams(rng, n, frames):
    streams = []
    for _ in range(n):
        bumps = {}
        for start in sorted(rng.integers(0, frames - 50, frames // 60)):
            bump = (int(start), int(start) + int(rng.integers(3, 40)), float(rng.uniform(0.4, 1.0)))
            bumps.setdefault(LABELS[rng.integers(1, len(LABELS))], []).append(bump)
        p = posteriors(bumps, frames) + rng.uniform(0, 0.2, (frames, len(LABELS)))
        streams.append(p / p.sum(axis=1, keepdims=True))
    return streams


def assert_same_detections(expected, got):
    assert [(d.label, d.time_ms) for d in expected] == [(d.label, d.time_ms) for d in got]
    np.testing.assert_allclose([d.score for d in expected], [d.score for d in got])


@pytest.mark.parametrize("seed", range(4))
def test_detector_equals_the_plain_reference(seed):
    rng = np.random.default_rng(seed)
    config = DetectorConfig(average_window_ms=float(rng.choice([10, 50, 200])), threshold=float(rng.uniform(0.4, 0.6)),
                            min_above_ms=float(rng.choice([10, 30, 60])), suppression_ms=float(rng.choice([0, 300, 900])))
    stream = random_streams(rng, 1, 1500)[0]
    reference = ReferenceDetector(LABELS, config)
    expected = [d for t, p in enumerate(stream) if (d := reference.update(p, t * 10.0 + 30.0))]
    assert len(expected) >= 3
    assert_same_detections(expected, Detector(LABELS, config).run(stream))
    one_by_one = Detector(LABELS, config)
    assert_same_detections(expected, [d for t, p in enumerate(stream) if (d := one_by_one.update(p, t * 10.0 + 30.0))])


def test_batch_detector_equals_one_detector_per_stream():
    from kws.detector import BatchDetector

    rng = np.random.default_rng(0)
    n, frames = 7, 600
    config = DetectorConfig(average_window_ms=50, threshold=0.55, min_above_ms=30, suppression_ms=300)
    streams = random_streams(rng, n, frames)
    expected = [Detector(LABELS, config).run(p) for p in streams]
    batch = BatchDetector(LABELS, n, config)
    got = [[] for _ in range(n)]
    for t in range(frames):
        for stream, detection in batch.update(np.stack([p[t] for p in streams]), t * 10.0 + 30.0):
            got[stream].append(detection)
    assert sum(map(len, expected)) > 10
    for e, g in zip(expected, got):
        assert_same_detections(e, g)
