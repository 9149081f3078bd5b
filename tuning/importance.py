"""Which hyperparameters mattered: Optuna's PED-ANOVA on a sweep's trials.

PED-ANOVA (Optuna's default evaluator, no scikit-learn needed) asks how much the
distribution of each parameter among the best trials differs from its distribution
among all trials. Optuna evaluates COMPLETE trials only; under ASHA most trials are
PRUNED, so every trial that reported a finite value counts here, with its best value
(the number the sweep ranks trials by). Failed and diverged trials do not.

With few trials the result is noise: below :data:`MIN_TRIALS` trials, or with a
single searched parameter, :func:`param_importance` says why it skipped instead.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from tuning.metrics import METRIC
from tuning.optuna_study import direction

IMPORTANCE_JSON = "importance.json"
IMPORTANCE_CSV = "importance.csv"
IMPORTANCE_PNG = "importance.png"
MIN_TRIALS = 5
"""Fewer trials with a value than this give no importance: the top group would be one or two trials."""
TOP_TRIALS = 5
"""Trials PED-ANOVA should find in its top quantile (Optuna's docs advise at least 5)."""


@dataclass(frozen=True)
class Importance:
    """Importance per searched parameter (summing to 1), or why none was computed."""

    importances: dict[str, float]
    n_trials: int
    evaluator: str = "PED-ANOVA"
    target_quantile: float | None = None
    basis: str = f"best {METRIC} of every trial that reported a finite value (completed and ASHA-stopped)"
    skipped: str | None = None
    params: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Text for the console."""
        if self.skipped:
            return [f"importance: skipped: {self.skipped}"]
        out = [f"hyperparameter importance ({self.evaluator}, {self.n_trials} trials, top {self.target_quantile:.0%}):"]
        width = max(len(name) for name in self.importances)
        for name, value in self.importances.items():
            out.append(f"  {name:<{width}}  {value:6.1%}  {'#' * round(value * 40)}")
        return out


def _usable(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Completed and ASHA-stopped trials with a finite value, as COMPLETE trials for Optuna."""
    out = []
    for t in trials:
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None and math.isfinite(t.value):
            out.append(optuna.trial.create_trial(value=t.value, params=t.params, distributions=t.distributions))
    return out


def param_importance(trials: Sequence[FrozenTrial], params: Sequence[str]) -> Importance:
    """PED-ANOVA importance of ``params`` over ``trials`` (see the module docstring)."""
    usable = _usable(trials)
    params = list(params)
    if len(params) < 2:
        only = params[0] if params else "none"
        return Importance({}, len(usable), skipped=f"the space searches one parameter ({only}); importance ranks two or more",
                          params=params)  # fmt: skip
    if len(usable) < MIN_TRIALS:
        return Importance({}, len(usable), params=params, skipped=(
            f"{len(usable)} trial(s) reported a finite value; importance needs at least {MIN_TRIALS} (run more --num-samples)"
        ))  # fmt: skip
    # The top quantile should hold TOP_TRIALS trials, but at most half of them.
    quantile = min(0.5, max(0.1, TOP_TRIALS / len(usable)))
    study = optuna.create_study(direction=direction())
    study.add_trials(usable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample warnings: the thresholds above stand in for them
        raw = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile),
            params=params,
            normalize=False,
        )
    total = sum(raw.values())
    if not total > 0:
        return Importance({}, len(usable), target_quantile=quantile, params=params, skipped=(
            "the best trials' parameters look like everyone else's (all importances 0); run more trials"
        ))  # fmt: skip
    values = {name: raw[name] / total for name in sorted(raw, key=lambda n: -raw[n])}
    return Importance(values, len(usable), target_quantile=quantile, params=params)


def write_importance(result: Importance, folder: str | Path) -> list[Path]:
    """``importance.json`` (everything), ``importance.csv`` (one row per parameter) and ``importance.png``."""
    folder = Path(folder)
    written = [folder / IMPORTANCE_JSON, folder / IMPORTANCE_CSV]
    written[0].write_text(json.dumps(asdict(result), indent=2))
    rows = [{"param": name, "importance": result.importances.get(name, math.nan)} for name in result.params]
    frame = pd.DataFrame(rows, columns=["param", "importance"]).sort_values("importance", ascending=False, na_position="last")
    frame.to_csv(written[1], index=False)
    png = folder / IMPORTANCE_PNG
    if result.skipped:
        png.unlink(missing_ok=True)  # an older sweep state's plot would mislead
    else:
        written.append(plot_importance(result, png))
    return written


def plot_importance(result: Importance, out: Path) -> Path:
    """Horizontal bars, the most important parameter on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.importances)[::-1]
    values = [result.importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.6))
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=3)
    ax.set_xlim(0, max(values) * 1.18)
    ax.set_xlabel("importance (share of the total)")
    ax.set_title(
        f"Hyperparameter importance ({result.evaluator}, {result.n_trials} trials)\n"
        f"what sets the top {result.target_quantile:.0%} apart by best {METRIC}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
