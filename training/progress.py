"""kws-train's one progress display (Keras's own bar is off: `fit(verbose=0)`).

On a terminal, one live line that rich redraws in place (shown here in two):

    epoch 4/60 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 7/15 loss 0.4123 · last val_clip_accuracy 0.8123
                                                      · best 0.8200 at epoch 2 · about 11m40s left

and above it one permanent line per finished epoch; it is erased, not completed,
when the run stops (Ctrl-C leaves no bogus full bar). Where stdout is not a
terminal (a log file, a pipe), only the permanent lines are written:

    epoch 3/60: loss 0.4123, val_clip_accuracy 0.8123; best val_clip_accuracy 0.8200 at epoch 2; 24s, about 22m50s left

The time left is for the whole run (every epoch up to --epochs; early stopping can
end it sooner), from the mean duration of the epochs this process has run,
validation included, or from the batch rate during the first epoch.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def validation_text(logs: dict) -> str:
    """The validation figures of an epoch's logs: `val_clip_accuracy 0.8123, ...`."""
    return ", ".join(f"{key} {float(value):.4f}" for key, value in logs.items() if key.startswith("val_"))


class TrainingDisplay:
    """The epochs of one `fit`, numbered from 0 as Keras does and shown from 1.

    `mode`: "live" (a rich bar redrawn in place), "lines" (one line per epoch) or "off"
    (--quiet); `None` picks "live" where the console is a terminal, else "lines".
    Use it as a context manager, so that the live bar is taken down however `fit` ends.
    """

    def __init__(self, epochs: int, first_epoch: int, n_batches: int, monitor: str, mode: str | None = None,
                 console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        self.console = console or Console(file=sys.stdout, highlight=False)
        self.mode = mode or ("live" if self.console.is_terminal else "lines")
        self.epochs, self.n_batches, self.monitor, self.clock = epochs, max(1, n_batches), monitor, clock
        self.done = first_epoch  # epochs finished (before this run, and in it)
        self.batches = 0  # batches finished in the current epoch
        self.loss: float | None = None
        self.latest = ""  # the last epoch's validation figures
        self.best: dict | None = None
        self.epoch_seconds: list[float] = []  # each epoch this process ran, validation included
        self.epoch_started_at: float | None = None
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> TrainingDisplay:
        if self.mode == "live":
            self._bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), console=self.console, transient=True,
                                 refresh_per_second=4)
            self._task = self._bar.add_task("", total=self.n_batches, epoch=self._epoch_number(), status="")
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()  # transient: the bar is erased, never drawn full
            self._bar = None

    def _epoch_number(self) -> str:
        return f"{min(self.done + 1, self.epochs)}/{self.epochs}"

    def seconds_left(self) -> float | None:
        """The whole run's remaining time: the epochs not yet run, and what is left of this one."""
        if self.epoch_seconds:
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        elif self.batches and self.epoch_started_at is not None:
            per_epoch = (self.clock() - self.epoch_started_at) / self.batches * self.n_batches
        else:
            return None
        return per_epoch * max(0.0, self.epochs - self.done - self.batches / self.n_batches)

    def _left_text(self) -> str:
        left = self.seconds_left()
        return "" if left is None else f"about {duration(left)} left"

    def _best_text(self, name: bool) -> str:
        if self.best is None:
            return ""
        return f"best {self.monitor + ' ' if name else ''}{self.best[self.monitor]:.4f} at epoch {self.best['epoch']}"

    def _refresh(self, status: str | None = None) -> None:
        if self._bar is None:
            return
        parts = [status or ("" if self.loss is None else f"loss {self.loss:.4f}"),
                 self.latest and "last " + self.latest, self._best_text(name=False), self._left_text()]
        self._bar.update(self._task, completed=self.batches, epoch=self._epoch_number(),
                         status=" · ".join(p for p in parts if p))

    def epoch_started(self, epoch: int) -> None:
        self.done, self.batches, self.loss = epoch, 0, None
        self.epoch_started_at = self.clock()
        self._refresh()

    def batch_done(self, batch: int, loss: float | None = None) -> None:
        self.batches = min(batch + 1, self.n_batches)
        if loss is not None:
            self.loss = float(loss)
        self._refresh("validating" if self.batches == self.n_batches else None)

    def epoch_done(self, epoch: int, logs: dict, best: dict) -> None:
        """`logs`: the epoch's loss and validation figures; `best`: the best epoch so far
        (its number as `epoch` and its figures)."""
        if self.epoch_started_at is not None:
            self.epoch_seconds.append(self.clock() - self.epoch_started_at)
        self.done, self.batches, self.best = epoch + 1, 0, best
        self.latest = validation_text(logs)
        if "loss" in logs:
            self.loss = float(logs["loss"])
        took = f"{duration(self.epoch_seconds[-1])}, " if self.epoch_seconds else ""
        loss = "" if self.loss is None else f"loss {self.loss:.4f}, "
        self.note(f"epoch {epoch + 1}/{self.epochs}: {loss}{self.latest}; {self._best_text(name=True)}; "
                  f"{took}{self._left_text() if self.done < self.epochs else 'done'}")
        if self.done < self.epochs:
            self._refresh()

    def note(self, text: str) -> None:
        """A permanent line (above the live bar), unless the display is off."""
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)
