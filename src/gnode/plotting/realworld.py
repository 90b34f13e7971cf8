"""Figures of the real-world benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import LogLocator, ScalarFormatter

from gnode.plotting.common import MODEL_LABELS, MODEL_ORDER, PALETTE, save, style

METRIC_LABEL = {"mse": "test MSE (lower is better)", "accuracy": "test accuracy (higher is better)"}


def task_figure(evaluations: pd.DataFrame, history: pd.DataFrame, path, *, formats: Sequence[str] = ("png",),
                dpi: int = 150):
    """One task: the test metric of every seed per model with mean ± sd (left), and the
    validation loss per epoch, mean over seeds (right).

    ``evaluations`` and ``history`` hold the rows of one task (gnode.studies.realworld tables).
    """
    style()
    task = evaluations["task"].iloc[0]
    metric = evaluations["metric"].iloc[0]
    order = [m for m in MODEL_ORDER if m in set(evaluations["model"])]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    rng = np.random.default_rng(0)  # jitter only
    for i, m in enumerate(order):
        ev = evaluations[evaluations["model"] == m]
        ok = ev.loc[ev["status"] == "ok", "test_metric"].dropna().to_numpy()
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(ok)), ok, color=PALETTE[m], s=22, alpha=0.8, zorder=3)
        if len(ok):
            sd = ok.std(ddof=1) if len(ok) > 1 else 0.0
            ax.errorbar(i + 0.28, ok.mean(), yerr=sd, fmt="_", color="k", ms=14, capsize=3, lw=1.4, zorder=4)
        n_bad = int((ev["status"] != "ok").sum())
        if n_bad:
            ax.annotate(f"{n_bad} diverged", (i, 0.02), xycoords=("data", "axes fraction"), ha="center", fontsize=7)
    labels = []
    for m in order:
        row = evaluations[evaluations["model"] == m].iloc[0]
        labels.append(f"{MODEL_LABELS[m]}\nN={int(row['n_hidden'])}\n{int(row['n_params'])} p")
    ax.set_xticks(range(len(order)), labels, fontsize=8)
    ax.set_xlim(-0.5, len(order) - 0.3)
    ax.set_ylabel(METRIC_LABEL.get(metric, metric))
    n_seeds = evaluations.groupby("model")["seed"].nunique().max()
    ax.set_title(f"{task}: {n_seeds} seeds, budget {int(evaluations['budget'].iloc[0])} parameters", fontsize=10)

    h = history.dropna(subset=["val_loss"])
    for m in order:
        g = h[h["model"] == m].groupby("epoch")["val_loss"]
        mean, sd = g.mean(), g.std().fillna(0.0)
        bx.plot(mean.index, mean.to_numpy(), color=PALETTE[m], label=MODEL_LABELS[m])
        bx.fill_between(mean.index, (mean - sd).to_numpy(), (mean + sd).to_numpy(), color=PALETTE[m], alpha=0.15)
    bx.set_yscale("log")
    bx.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bx.yaxis.set_major_formatter(ScalarFormatter())
    bx.yaxis.set_minor_formatter(ScalarFormatter() if bx.get_ylim()[1] / bx.get_ylim()[0] < 3 else "")
    bx.set_xlabel("epoch")
    bx.set_ylabel("validation loss" + (" (MSE)" if metric == "mse" else " (cross-entropy)"))
    bx.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, path, formats, dpi)
