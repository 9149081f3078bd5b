"""The standard plots of a sweep: learning curves and the metric against each hyperparameter.

Both read :func:`tuning.analysis.load_sweep`/:func:`~tuning.analysis.load_curves`
frames and mark the best trial and the documented defaults' trial. Under ASHA most
trials stop after an epoch or two, and a trial's best value then mostly says how
long it ran; so the metric-vs-parameter figure shows each trial's value at a
common epoch (one every trial reached) beside its best value, and tells stopped
trials apart from those that ran their budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuning.analysis import BEST_COLUMN, common_epoch, values_at_epoch
from tuning.metrics import METRIC
from tuning.spaces import Param, SearchSpace


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finite(values: pd.Series) -> np.ndarray:
    return np.isfinite(values.to_numpy(dtype=float))


def _marked(trials: pd.DataFrame | None) -> tuple[str | None, str | None]:
    """The best trial's id and the defaults' trial id (None where there is none)."""
    if trials is None or trials.empty:
        return None, None
    ok = trials[_finite(trials[BEST_COLUMN])]
    best = str(ok.iloc[0]["trial_id"]) if len(ok) else None
    defaults = trials[trials["is_default"].astype(bool)]
    return best, str(defaults.iloc[0]["trial_id"]) if len(defaults) else None


def plot_learning_curves(curves: pd.DataFrame, out: Path, *, trials: pd.DataFrame | None = None) -> Path:
    """Write :func:`learning_curves_figure` to ``out``."""
    return _save(learning_curves_figure(curves, trials=trials), out)


def plot_metric_vs_params(trials: pd.DataFrame, curves: pd.DataFrame, space: SearchSpace, out: Path) -> Path:
    """Write :func:`metric_vs_params_figure` to ``out``."""
    return _save(metric_vs_params_figure(trials, curves, space), out)


def _save(fig: Any, out: Path) -> Path:
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def learning_curves_figure(curves: pd.DataFrame, *, trials: pd.DataFrame | None = None) -> Any:
    """Validation metric against epoch, one line per trial, coloured by the trial's best value.

    The best trial and the defaults' trial are drawn thick and named in the legend;
    an ``x`` ends the curves ASHA cut short.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    best, defaults = _marked(trials)
    stopped = set(trials.loc[trials["stopped_by_asha"].astype(bool), "trial_id"]) if trials is not None else set()
    finite = curves[_finite(curves[METRIC])]
    fig, ax = plt.subplots(figsize=(8.5, 5))
    if finite.empty:
        ax.text(0.5, 0.5, "no trial reported a finite value", ha="center", transform=ax.transAxes)
    else:
        lows = finite.groupby("trial_id")[METRIC].min()
        norm = plt.Normalize(float(lows.min()), float(lows.max()) if lows.max() > lows.min() else float(lows.min()) + 1e-12)
        cmap = plt.get_cmap("viridis")
        cut_marker = False
        for trial_id, group in finite.groupby("trial_id"):
            special = trial_id in (best, defaults)
            if trial_id == best:
                style: dict[str, Any] = {"color": "crimson", "lw": 2.8, "zorder": 5, "label": f"best ({trial_id})"}
            elif trial_id == defaults:
                style = {"color": "black", "lw": 2.2, "ls": "--", "zorder": 4, "label": f"defaults ({trial_id})"}
            else:
                style = {"color": cmap(norm(lows[trial_id])), "lw": 1.2, "alpha": 0.85}
            ax.plot(group["epoch"], group[METRIC], marker="o", markersize=3 if not special else 4, **style)
            if trial_id in stopped:
                cut_marker = True
                last = group.iloc[-1]
                ax.plot(last["epoch"], last[METRIC], "x", color=style["color"], markersize=8, mew=2, zorder=6)
        if cut_marker:
            ax.plot([], [], "x", color="grey", markersize=8, mew=2, label="stopped by ASHA")
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"trial's best {METRIC}")
        ax.legend(loc="upper right", fontsize=9)
        if finite[METRIC].max() > 20 * finite[METRIC].min() > 0:
            ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {METRIC}")
    ax.set_title(f"Learning curves ({curves['trial_id'].nunique()} trials)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


_RING: dict[str, dict[str, Any]] = {
    "defaults": {"marker": "o", "s": 150, "facecolors": "none", "edgecolors": "red", "linewidths": 1.8},
    "best": {"marker": "*", "s": 170, "facecolors": "none", "edgecolors": "black", "linewidths": 1.2},
}


def _legend_handles(any_crossed: bool, any_clipped: bool) -> list[Any]:
    """Grey stand-ins: the colours in the panels mean epochs run, not the kind of point."""
    from matplotlib.lines import Line2D

    def mark(marker: str, label: str, **kw: Any) -> Line2D:
        return Line2D([], [], ls="none", marker=marker, color="grey", label=label, **kw)

    handles = [mark("o", "ran its budget")]
    if any_crossed:
        handles.append(mark("x", "stopped by ASHA", mew=1.8))
    if any_clipped:
        handles.append(mark("^", "stopped by ASHA, off the scale above"))
    handles.append(mark("o", "defaults' trial", markersize=12, mfc="none", mec="red", mew=1.8))
    handles.append(mark("*", "best trial", markersize=13, mfc="none", mec="black"))
    return handles


def _x_positions(p: Param, values: pd.Series) -> tuple[np.ndarray, dict[str, Any]]:
    """Where each value goes on the x-axis and how to set the axis up."""
    if p.distribution == "choice":
        labels = [str(v) for v in p.values]
        index = {str(v): i for i, v in enumerate(p.values)}
        pos = np.array([index.get(str(v), np.nan) for v in values], dtype=float)
        # a small fixed spread so equal choices don't hide each other
        pos = pos + (np.arange(len(pos)) % 5 - 2) * 0.05
        return pos, {"ticks": list(range(len(labels))), "labels": labels, "lim": (-0.5, len(labels) - 0.5)}
    assert p.low is not None and p.high is not None
    margin = (p.high / p.low) ** 0.04 if p.log else 0.0
    lim = (p.low / margin, p.high * margin) if p.log else (p.low - 0.04 * (p.high - p.low), p.high + 0.04 * (p.high - p.low))
    return values.to_numpy(dtype=float), {"log": p.log, "lim": lim}


def _setup_x(ax: Any, name: str, axis: dict[str, Any]) -> None:
    if "ticks" in axis:
        ax.set_xticks(axis["ticks"], axis["labels"])
    elif axis["log"]:
        ax.set_xscale("log")
        if axis["lim"][1] / axis["lim"][0] < 30:
            # Under a decade and a half, 10^k ticks are too few: 1-2-5 steps, plainly written.
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(*axis["lim"])
    ax.set_xlabel(name + (" (log scale)" if axis.get("log") else ""))


def metric_vs_params_figure(trials: pd.DataFrame, curves: pd.DataFrame, space: SearchSpace) -> Any:
    """Two panels per searched parameter: the value at a common epoch, and the best value.

    Left: every trial's METRIC at the last epoch all of them reached, comparable across
    trials. Right: each trial's best value; circles ran their budget (or stopped
    early on their own), crosses were stopped by ASHA. The y-range follows the trials
    that were not cut; cut trials above it sit on the top edge as triangles. Colour:
    epochs run (colour bar); a red ring marks the defaults, a star the best trial.
    """
    plt = _pyplot()
    from matplotlib.colors import BoundaryNorm

    params = list(space.parameters)
    best, defaults = _marked(trials)
    ok = trials[_finite(trials[BEST_COLUMN])].reset_index(drop=True)
    epoch = common_epoch(curves)
    at_epoch = values_at_epoch(curves, epoch) if epoch is not None else pd.Series(dtype=float)
    epochs = ok["epochs_run"].astype(float)
    most = int(epochs.max()) if len(epochs) else 1
    # one colour per whole number of epochs
    cmap = plt.get_cmap("viridis", most)
    norm = BoundaryNorm(np.arange(0.5, most + 1.5), cmap.N)
    cut = ok["stopped_by_asha"].astype(bool).to_numpy()

    clipped_any = crossed_any = False
    fig, axes = plt.subplots(len(params), 2, figsize=(10, 2.9 * len(params) + 0.9), squeeze=False)
    for row, name in enumerate(params):
        x, axis = _x_positions(space.parameters[name], ok[name])
        left, right = axes[row]
        # --- left: at the common epoch
        y_epoch = ok["trial_id"].map(at_epoch).to_numpy(dtype=float)
        has = np.isfinite(y_epoch)
        left.scatter(x[has], y_epoch[has], c=epochs[has], cmap=cmap, norm=norm, s=30, edgecolors="none")
        # --- right: best value, cut trials apart
        y_best = ok[BEST_COLUMN].to_numpy(dtype=float)
        top = None
        if (~cut).sum() >= 2:
            lo, hi = y_best[~cut].min(), y_best[~cut].max()
            pad = 0.15 * (hi - lo) if hi > lo else 0.05 * abs(hi)
            top = hi + pad
            right.set_ylim(lo - pad, top)
        clipped = cut & (y_best > top) if top is not None else np.zeros(len(ok), bool)
        clipped_any = clipped_any or bool(clipped.any())
        crossed_any = crossed_any or bool((cut & ~clipped).any())
        shown = np.where(clipped, top if top is not None else 0.0, y_best)
        for mask, marker in ((~cut, "o"), (cut & ~clipped, "x"), (clipped, "^")):
            if mask.any():
                kw = {"edgecolors": "none"} if marker != "x" else {"linewidths": 1.8}
                right.scatter(
                    x[mask], shown[mask], c=epochs[mask], cmap=cmap, norm=norm, s=36, marker=marker, clip_on=False, **kw
                )
        for ax, ys in ((left, y_epoch), (right, shown)):
            for trial_id, kind in ((defaults, "defaults"), (best, "best")):
                hit = (ok["trial_id"] == trial_id).to_numpy() & np.isfinite(ys)
                if hit.any():
                    ax.scatter(x[hit], ys[hit], zorder=5, clip_on=False, **_RING[kind])
            _setup_x(ax, name, axis)
            ax.grid(alpha=0.3)
        left.set_ylabel(f"{METRIC} at epoch {epoch}" if epoch is not None else METRIC)
        right.set_ylabel(f"best {METRIC}")
    if len(params):
        axes[0][0].set_title(f"every trial at epoch {epoch} (comparable)", fontsize=10)
        axes[0][1].set_title("best value over the epochs each trial ran", fontsize=10)
        fig.legend(handles=_legend_handles(bool(crossed_any), bool(clipped_any)), loc="upper center", ncol=5, fontsize=9,
                   bbox_to_anchor=(0.45, 1.0), frameon=False)  # fmt: skip
    top_margin = 1 - 0.45 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 0.9, top_margin))
    cax = fig.add_axes((0.92, 0.15, 0.018, 0.7))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, label="epochs run", ticks=range(1, most + 1))
    return fig
