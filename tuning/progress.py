"""Progress of one training run with an ETA: a bar on a terminal, a line per epoch elsewhere.

On a terminal (stderr is a TTY) a tqdm bar counts epochs in fractions, moving
inside an epoch batch by batch, with the time left to ``max_epochs`` (early stopping
may end the run sooner); log lines print above it. Elsewhere (a log file, CI) a bar
would write a stream of carriage returns, so one line per epoch tells the ETA.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from contextlib import ExitStack
from typing import IO, Any

log = logging.getLogger("tuning.train")


def format_duration(seconds: float) -> str:
    """``1:02:03``/``2:03`` style, rounded to seconds."""
    return str(dt.timedelta(seconds=round(max(0.0, seconds)))).removeprefix("0:")


class EpochProgress:
    """Feeds on :func:`tuning.engine.fit`'s ``on_batch`` and ``report`` callbacks.

    Use as a context manager around ``fit``::

        with EpochProgress(config.max_epochs) as progress:
            fit(config, data, report=progress.epoch_done, on_batch=progress.batch_done)
    """

    def __init__(self, max_epochs: int, *, stream: IO[str] | None = None, bar: bool | None = None) -> None:
        self.max_epochs = max_epochs
        self.stream = stream if stream is not None else sys.stderr
        self.use_bar = self.stream.isatty() if bar is None else bar
        self._bar: Any = None
        self._stack = ExitStack()
        self._start: float | None = None
        self._first_epoch: int | None = None

    def __enter__(self) -> EpochProgress:
        if self.use_bar:
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines go through tqdm.write, above the bar, instead of through it.
            self._stack.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger("tuning")]))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        self._stack.close()

    def _begin(self, epoch: int) -> None:
        """The first epoch this process trains (later than 1 on --resume)."""
        self._start, self._first_epoch = time.perf_counter(), epoch
        if self.use_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.max_epochs, initial=epoch - 1, file=self.stream, unit="epoch", dynamic_ncols=True,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total} epochs [{elapsed}<{remaining}]",
                desc=f"epoch {epoch}/{self.max_epochs}",
            )  # fmt: skip

    def batch_done(self, epoch: int, batch: int, batches: int) -> None:
        """``on_batch`` hook: ``batch`` of ``batches`` of ``epoch`` (1-based) is trained."""
        if self._start is None:
            self._begin(epoch)
        if self._bar is not None:
            self._bar.set_description_str(f"epoch {epoch}/{self.max_epochs}", refresh=False)
            self._bar.update((epoch - 1 + batch / batches) - self._bar.n)

    def epoch_done(self, metrics: dict[str, Any], run: Any = None) -> None:
        """``report`` hook: an epoch (training and validation) is over."""
        epoch = int(metrics["epoch"])
        if self._start is None:
            self._begin(epoch)
        if self._bar is not None:
            self._bar.update(epoch - self._bar.n)
            return
        assert self._start is not None and self._first_epoch is not None
        per_epoch = (time.perf_counter() - self._start) / (epoch - self._first_epoch + 1)
        left = self.max_epochs - epoch
        eta = f"ETA {format_duration(per_epoch * left)} for {left} more (early stopping may end sooner)" if left else "done"
        log.info("progress: epoch %d/%d, %.1f s per epoch, %s", epoch, self.max_epochs, per_epoch, eta)
