"""Ray Tune's console status table for a sweep, pointing at the experiment folder.

Tune's classic reporter prints a "Result logdir" line naming the driver's staging
folder in Ray's temporary session directory, which is not where the results end up.
This reporter names the experiment folder instead. A module of its own so that Tune
can pickle it into ``tuner.pkl`` by reference and a resumed sweep finds it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray.tune import CLIReporter

from tuning.metrics import METRIC

LOGDIR_PREFIX = "Result logdir: "
METRIC_COLUMNS = ("epoch", METRIC, "train_loss")
"""The reported values the status table shows per trial, each once."""


class SweepReporter(CLIReporter):
    """:class:`ray.tune.CLIReporter` whose "Result logdir" line is the experiment folder.

    Args:
        experiment_path: the folder the "Results:" line names.
        parameter_columns: the searched parameters, one column each.
        kwargs: the rest of :class:`~ray.tune.CLIReporter`'s options.
    """

    def __init__(self, experiment_path: str, parameter_columns: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("metric_columns", list(METRIC_COLUMNS))
        kwargs.setdefault("max_report_frequency", 30)
        kwargs.setdefault("max_progress_rows", 12)
        super().__init__(parameter_columns=list(parameter_columns), **kwargs)
        self.experiment_path = experiment_path

    def _print(self, msg: str) -> None:
        # CLIReporter.report() prints through _print (Ray 2.60); a test reads the sweep's
        # output and fails if the line comes back.
        lines = [f"Results: {self.experiment_path}" if line.startswith(LOGDIR_PREFIX) else line for line in msg.split("\n")]
        super()._print("\n".join(lines))
