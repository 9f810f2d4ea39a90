"""kws-train's progress display, without TensorFlow: a fake clock and a captured console."""

import io
import json

import pytest
from rich.console import Console

from training.progress import TrainingDisplay, duration
from training.train import MONITORS, Progress, ResumeError, parse_args, run_settings

MONITOR = "val_clip_accuracy"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def run_epochs(display: TrainingDisplay, clock: Clock, epochs: range, n_batches: int, stop_at: int | None = None):
    """Drive the display as the Keras callback does: 1 s per batch, 2 s of validation."""
    best = None
    for epoch in epochs:
        display.epoch_started(epoch)
        for batch in range(n_batches):
            if epoch == stop_at and batch == n_batches // 2:
                return  # Ctrl-C: the callback stops reporting; fit returns mid-epoch
            clock.now += 1
            display.batch_done(batch, 1.0 / (epoch + 1))
        clock.now += 2
        logs = {"loss": 1.0 / (epoch + 1), MONITOR: 0.5 + 0.1 * (epoch % 2)}
        best = best if best is not None and best[MONITOR] >= logs[MONITOR] else {"epoch": epoch + 1, **logs}
        display.epoch_done(epoch, logs, best)


def test_one_line_per_epoch_with_validation_best_and_time_left_for_the_whole_run(capsys):
    clock = Clock()
    with TrainingDisplay(5, 0, 4, MONITOR, mode="lines", clock=clock) as display:
        run_epochs(display, clock, range(3), 4)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "epoch 1/5: loss 1.0000, val_clip_accuracy 0.5000; best val_clip_accuracy 0.5000 at epoch 1; 6s, about 24s left",
        "epoch 2/5: loss 0.5000, val_clip_accuracy 0.6000; best val_clip_accuracy 0.6000 at epoch 2; 6s, about 18s left",
        "epoch 3/5: loss 0.3333, val_clip_accuracy 0.5000; best val_clip_accuracy 0.6000 at epoch 2; 6s, about 12s left",
    ]


def test_estimate_during_the_first_epoch_and_after_a_resume():
    clock = Clock()
    display = TrainingDisplay(10, 4, 8, MONITOR, mode="off", clock=clock)  # resumed after epoch 4
    assert display.seconds_left() is None  # nothing measured yet
    display.epoch_started(4)
    for batch in range(2):
        clock.now += 0.5
        display.batch_done(batch)
    # 0.5 s a batch: 4 s an epoch; 6 of the 8 batches and epochs 6-10 are left
    assert display.seconds_left() == pytest.approx(4 * (5 + 6 / 8))


def test_quiet_prints_nothing(capsys):
    clock = Clock()
    with TrainingDisplay(3, 0, 4, MONITOR, mode="off", clock=clock) as display:
        run_epochs(display, clock, range(3), 4)
        display.note("early stop: no improvement for 2 epochs")
    assert capsys.readouterr() == ("", "")


def test_live_bar_on_a_terminal_is_taken_down_not_drawn_full_on_ctrl_c():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    assert TrainingDisplay(5, 0, 10, MONITOR, console=console).mode == "live"
    clock = Clock()
    with TrainingDisplay(5, 0, 10, MONITOR, console=console, clock=clock) as display:
        run_epochs(display, clock, range(5), 10, stop_at=1)
        display._bar.refresh()
        shown = out.getvalue()
        assert "epoch 2/5" in shown and "5/10 loss 0.5000 · " in shown  # the bar, mid-epoch, batch by batch
        assert "last val_clip_accuracy 0.5000 · best 0.5000 at epoch 1 · about 42s left" in shown
    final = out.getvalue()[len(shown):]
    assert "10/10" not in final  # no bogus full bar at the end
    assert final.endswith("\x1b[1A\x1b[2K")  # the bar's line is erased
    assert out.getvalue().count("epoch 1/5: loss") == 1  # each epoch's line once, permanent above the bar


def test_duration():
    assert [duration(s) for s in (0, 42.4, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def write_progress(work, state):
    work.mkdir()
    (work / "progress.json").write_text(json.dumps(state))


def test_resume_with_other_settings_is_refused_in_one_line(tmp_path):
    args = parse_args(["--data", "D", "--out", str(tmp_path / "o"), "--monitor", "clip", "--units", "32"])
    work = tmp_path / "o.work"
    best = {"epoch": 1, "val_clip_accuracy": 0.5, "weights": "best-0001.weights.h5"}
    write_progress(work, {"epochs_done": 1, "best": best, "history": [best], "checkpoint": "resume-0001.keras",
                          "settings": run_settings(args)})
    assert Progress(work, MONITORS["clip"], run_settings(args)).state["epochs_done"] == 1  # the same: resumed
    other = parse_args(["--data", "D", "--out", str(tmp_path / "o"), "--monitor", "both", "--units", "64"])
    with pytest.raises(ResumeError) as refused:
        Progress(work, MONITORS["both"], run_settings(other))
    assert str(refused.value) == (f"{work}/ holds an interrupted run with --monitor clip (this run: both), --units 32 "
                                  f"(this run: 64): give the same settings to resume it, or delete {work}/ to start afresh")
    other_data = parse_args(["--data", "D", "--out", str(tmp_path / "o"), "--monitor", "clip", "--units", "32",
                             "--seed", "1", "--extra-data", "A", "--extra-data", "B"])
    with pytest.raises(ResumeError, match=r"--seed 0 \(this run: 1\), --extra-data none \(this run: A B\): give"):
        Progress(work, MONITORS["clip"], run_settings(other_data))
    other_flags = parse_args(["--data", "E", "--out", str(tmp_path / "o"), "--monitor", "clip", "--units", "32",
                              "--channel", "--init", "I"])
    with pytest.raises(ResumeError, match=r"--data D \(this run: E\), --init none \(this run: I\), --channel off "
                                          r"\(this run: on\): give"):
        Progress(work, MONITORS["clip"], run_settings(other_flags))


def test_resume_of_a_work_folder_without_recorded_settings_checks_the_monitor(tmp_path):
    work = tmp_path / "o.work"
    best = {"epoch": 2, "val_clip_accuracy": 0.5, "weights": "best-0002.weights.h5"}
    write_progress(work, {"epochs_done": 2, "best": best, "history": [best], "checkpoint": "resume-0002.keras"})
    assert Progress(work, MONITORS["clip"], {"monitor": "clip"}).state["epochs_done"] == 2
    with pytest.raises(ResumeError, match="with --monitor other than stream: give the same settings"):
        Progress(work, MONITORS["stream"], {"monitor": "stream"})
