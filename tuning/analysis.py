"""Sweep results as pandas DataFrames and boundary warnings (plots: :mod:`tuning.plots`).

Reads the files Tune writes (the newest ``experiment_state-*.json`` for the trial
list and status, each trial's ``result.json`` for its curve) plus the sweep's own
``sweep/`` folder, without importing Ray, so it works on a finished, an
interrupted and a resumed sweep alike, and on a machine without Ray running.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuning import storage
from tuning.config import TrainConfig
from tuning.errors import UserError
from tuning.metrics import METRIC
from tuning.storage import ASHA_FILE, load_stopped

BEST_COLUMN = f"best_{METRIC}"
"""The column :func:`load_sweep` ranks trials by: each trial's best validation MAE."""

CURVE_COLUMNS = [
    "trial_id", "epoch", "val_loss", "val_mae", "val_rmse", "val_mape", "train_loss", "learning_rate",
    "grad_norm", "time_total_s", "timestamp",
]  # fmt: skip
TRIAL_COLUMNS = [
    "trial_id", "trial_index", "status", "finished", "is_default", "epochs_run", BEST_COLUMN, "best_epoch", "best_val_loss",
    "best_val_rmse", "last_val_loss", "last_val_mae", "last_train_loss", "stopped_by_asha", "diverged",
    "stopped_early", "error", "time_total_s", "logdir",
]  # fmt: skip
"""Columns of :func:`load_sweep` besides one column per searched config field."""

ERRORED = "ERROR"
"""Tune's status of a trial that raised (after its retries); it counts as finished."""
DONE_STATUSES = ("TERMINATED", ERRORED)
ERROR_FILE = "error.txt"
"""Where Tune writes the error of each failure of a trial, in the trial's folder."""


def _experiment_dir(path: str | Path) -> Path:
    exp = Path(path)
    if not exp.is_dir():
        raise UserError(f"experiment folder not found: {exp}; pass the folder a sweep wrote (storage path / name)")
    if not any(exp.glob("experiment_state-*.json")) and not any(exp.glob("*/result.json")):
        raise UserError(f"{exp} holds no Tune experiment (no experiment_state-*.json); check --name and --storage-path")
    return exp


def newest_snapshot(exp: str | Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(trial, runtime) records of Tune's newest experiment snapshot; empty before the first.

    ``exp`` is the experiment folder or its URI. The file name carries the session's
    start time; mtimes don't help, because Tune syncs the older sessions' files back on resume.
    """
    states = [n for n in storage.list_names(str(exp)) if n.startswith("experiment_state-") and n.endswith(".json")]
    if not states:
        return []
    newest = f"{exp}/{max(states)}"
    try:
        doc = json.loads(storage.read_text(newest))
        return [(json.loads(trial), json.loads(runtime)) for trial, runtime in doc["trial_data"]]
    except (ValueError, KeyError, TypeError) as e:  # JSON and Unicode errors are ValueErrors
        raise UserError(
            f"Tune's experiment snapshot {newest} is truncated or corrupt ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); if the sweep is still running try again, else restore it from a backup"
        ) from e


def _trial_states(exp: Path) -> list[dict[str, Any]]:
    """Trial id, status, config and folder of every trial Tune knows of."""
    trials: list[dict[str, Any]] = []
    for t, _runtime in newest_snapshot(exp):
        trials.append({"trial_id": t["trial_id"], "status": t["status"], "config": t.get("config", {}),
                       "logdir": str(exp / t["relative_logdir"]), "tag": t.get("experiment_tag", "")})  # fmt: skip
    known = {Path(t["logdir"]).name for t in trials}
    for result in sorted(exp.glob("*/result.json")):  # trials that ran after the last snapshot
        if result.parent.name not in known:
            rows = _read_results(result)
            if rows:
                trials.append({"trial_id": rows[0]["trial_id"], "status": "UNKNOWN", "config": rows[0].get("config", {}),
                               "logdir": str(result.parent), "tag": ""})  # fmt: skip
    return trials


def _read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))  # json reads Ray's Infinity/NaN
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
    return rows


def _error_line(logdir: str) -> str | None:
    """The last line of the trial's Tune error file: the exception's type and message."""
    path = Path(logdir) / ERROR_FILE
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else None


def _curve_rows(trial_id: str, logdir: str) -> pd.DataFrame:
    rows = _read_results(Path(logdir) / "result.json")
    frame = pd.DataFrame([{c: r.get(c, np.nan) for c in CURVE_COLUMNS[1:]} for r in rows], columns=CURVE_COLUMNS[1:])
    frame.insert(0, "trial_id", trial_id)
    # A trial resumed from its checkpoint may report an epoch twice; the later report counts.
    return frame.drop_duplicates("epoch", keep="last").sort_values("epoch")


def load_curves(path: str | Path) -> pd.DataFrame:
    """One row per trial and epoch: the metrics each trial reported (:data:`CURVE_COLUMNS`).

    ``path`` is the experiment folder, or its URI on remote storage (``s3://...``).
    """
    if storage.is_uri(str(path)):
        with storage.local_view(str(path)) as folder:
            return load_curves(folder)
    exp = _experiment_dir(path)
    frames = [_curve_rows(t["trial_id"], t["logdir"]) for t in _trial_states(exp)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def load_sweep(path: str | Path) -> pd.DataFrame:
    """One row per trial: config, best and last metrics, epochs, status and why it ended.

    Columns: :data:`TRIAL_COLUMNS` plus one per searched config field. ``best_*``
    come from the epoch with the lowest validation loss; ``stopped_by_asha`` marks
    trials the scheduler cut short, ``diverged`` those whose loss became NaN/Inf,
    ``stopped_early`` those that early stopping (patience) ended. ``path`` is the
    experiment folder, or its URI on remote storage (``s3://...``); ``logdir`` then
    holds the trials' URIs.
    """
    if storage.is_uri(str(path)):
        with storage.local_view(str(path)) as folder:
            return relocate(load_sweep(folder), folder, str(path))
    exp = _experiment_dir(path)
    stopped = load_stopped(str(exp / ASHA_FILE))
    defaults = TrainConfig().to_dict()
    rows = []
    for t in _trial_states(exp):
        results = _read_results(Path(t["logdir"]) / "result.json")
        curve = _curve_rows(t["trial_id"], t["logdir"])
        finite = curve[np.isfinite(curve[METRIC].astype(float))] if len(curve) else curve
        best = finite.loc[finite[METRIC].astype(float).idxmin()] if len(finite) else None
        last = results[-1] if results else {}
        row: dict[str, Any] = {
            "trial_id": t["trial_id"],
            # Tune's experiment tag starts with the trial's 1-based creation index.
            "trial_index": int(t["tag"].split("_", 1)[0]) if t["tag"][:1].isdigit() else None,
            "status": t["status"],
            "finished": t["status"] in DONE_STATUSES,
            "is_default": all(defaults.get(k) == v for k, v in t["config"].items()),
            "epochs_run": int(curve["epoch"].max()) if len(curve) else 0,
            # The ranking column: the best METRIC (val_mae); inf for a trial that only diverged.
            BEST_COLUMN: float(best[METRIC]) if best is not None else math.inf if results else math.nan,
            "best_epoch": int(best["epoch"]) if best is not None else None,
            "best_val_loss": float(best["val_loss"]) if best is not None else math.nan,
            "best_val_rmse": float(best["val_rmse"]) if best is not None else math.nan,
            "last_val_loss": float(last.get("val_loss", math.nan)),
            "last_val_mae": float(last.get("val_mae", math.nan)),
            "last_train_loss": float(last.get("train_loss", math.nan)),
            "stopped_by_asha": t["trial_id"] in stopped,
            "diverged": bool(any(r.get("diverged") for r in results)),
            "stopped_early": bool(last.get("stopped_early", False)),
            # What an errored trial raised (a trial that errored and then finished on its retry has none).
            "error": _error_line(t["logdir"]) if t["status"] == ERRORED else None,
            "time_total_s": float(last.get("time_total_s", math.nan)),
            "logdir": t["logdir"],
            **t["config"],
        }
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    return frame.sort_values(BEST_COLUMN, na_position="last").reset_index(drop=True)


def usable(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a best config and the defaults' metrics may come from: a finite value, and not errored.

    An errored trial's values are real but partial, and its config is one that crashed.
    """
    if trials.empty:
        return trials
    finite = np.isfinite(trials[BEST_COLUMN].to_numpy(dtype=float))
    return trials[finite & (trials["status"] != ERRORED).to_numpy()] if "status" in trials else trials[finite]


def relocate(trials: pd.DataFrame, folder: Path, uri: str) -> pd.DataFrame:
    """``trials`` read from a local copy of the experiment at ``uri``, with ``logdir`` pointing there."""
    if len(trials):
        trials["logdir"] = [f"{uri.rstrip('/')}/{Path(d).relative_to(folder).as_posix()}" for d in trials["logdir"]]
    return trials


@dataclass(frozen=True)
class BoundaryWarning:
    parameter: str
    value: float
    bound: str
    low: float
    high: float

    def __str__(self) -> str:
        return (
            f"best {self.parameter}={self.value:.4g} lies at the {self.bound} edge of its range "
            f"[{self.low:g}, {self.high:g}]; widen the range in the space file and search again"
        )


def boundary_warnings(trials: pd.DataFrame, space: Any, tolerance: float = 0.05) -> list[BoundaryWarning]:
    """Flag searched numbers whose best value sits within ``tolerance`` of a range edge.

    The distance is measured on the parameter's own scale (log for log ranges);
    for a choice of numbers, the smallest or largest value counts as an edge.
    """
    ok = trials[np.isfinite(trials[BEST_COLUMN].astype(float))]
    if ok.empty:
        return []
    best = ok.iloc[0]
    out = []
    for name, p in space.parameters.items():
        value = best.get(name)
        if value is None or isinstance(value, str) or isinstance(value, bool):
            continue
        if p.distribution == "choice":
            numbers = [v for v in p.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) < 3:
                continue
            low, high = min(numbers), max(numbers)
            frac = 0.0 if value == low else 1.0 if value == high else 0.5
        else:
            low, high = p.low, p.high
            scale = np.log if p.log else (lambda x: x)
            frac = (scale(value) - scale(low)) / (scale(high) - scale(low))
        if frac <= tolerance:
            out.append(BoundaryWarning(name, float(value), "lower", low, high))
        elif frac >= 1 - tolerance:
            out.append(BoundaryWarning(name, float(value), "upper", low, high))
    return out


def common_epoch(curves: pd.DataFrame) -> int | None:
    """The last epoch every trial with a finite value reached (ASHA's first rung, usually)."""
    ok = curves[np.isfinite(curves[METRIC].to_numpy(dtype=float))]
    if ok.empty:
        return None
    return int(ok.groupby("trial_id")["epoch"].max().min())


def values_at_epoch(curves: pd.DataFrame, epoch: int) -> pd.Series:
    """Each trial's METRIC at ``epoch`` (trial id -> value); trials without a finite one left out."""
    at = curves[(curves["epoch"] == epoch) & np.isfinite(curves[METRIC].to_numpy(dtype=float))]
    return at.set_index("trial_id")[METRIC].astype(float)


@dataclass(frozen=True)
class DefaultsComparison:
    """The best trial against the documented defaults' trial, at an epoch both reached.

    Their best values alone mislead when ASHA stopped the defaults after one epoch
    and the best trial ran four: the comparison is made at ``epoch``, the last epoch
    both ran.
    """

    best_trial: str
    defaults_trial: str
    epoch: int
    best_value: float
    defaults_value: float
    best_epochs: int
    defaults_epochs: int
    defaults_stopped_by_asha: bool

    def lines(self) -> list[str]:
        change = (self.best_value - self.defaults_value) / abs(self.defaults_value) if self.defaults_value else math.nan
        at = f"at epoch {self.epoch}: best {self.best_value:.5g} vs defaults {self.defaults_value:.5g} {METRIC} ({change:+.1%})"
        if self.best_trial == self.defaults_trial:
            return ["  the documented defaults were the best trial"]
        if self.defaults_epochs == self.best_epochs:
            return [f"  both ran {self.epoch} epochs; {at}"]
        why = " (stopped by ASHA)" if self.defaults_stopped_by_asha else ""
        return [
            f"  the defaults ran {self.defaults_epochs} epoch(s){why}, the best trial {self.best_epochs}: "
            "their best values are not comparable;",
            f"  {at}",
        ]


def compare_with_defaults(trials: pd.DataFrame, curves: pd.DataFrame) -> DefaultsComparison | None:
    """The best and the defaults' trial at the last epoch both reached; None without both (errored trials left out)."""
    ok = usable(trials)
    defaults = ok[ok["is_default"].astype(bool)]
    if ok.empty or defaults.empty:
        return None
    best, dflt = ok.iloc[0], defaults.iloc[0]
    finite = curves[np.isfinite(curves[METRIC].to_numpy(dtype=float))]
    last = finite.groupby("trial_id")["epoch"].max()
    epoch = int(min(last.get(best["trial_id"], 0), last.get(dflt["trial_id"], 0)))
    values = values_at_epoch(curves, epoch)
    if epoch < 1 or best["trial_id"] not in values or dflt["trial_id"] not in values:
        return None
    return DefaultsComparison(
        best_trial=str(best["trial_id"]), defaults_trial=str(dflt["trial_id"]), epoch=epoch,
        best_value=float(values[best["trial_id"]]), defaults_value=float(values[dflt["trial_id"]]),
        best_epochs=int(best["epochs_run"]), defaults_epochs=int(dflt["epochs_run"]),
        defaults_stopped_by_asha=bool(dflt["stopped_by_asha"]),
    )  # fmt: skip
