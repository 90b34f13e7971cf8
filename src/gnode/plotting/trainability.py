"""Figures of the trainability study (tables of :mod:`gnode.studies.trainability`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from gnode.plotting.common import MODEL_LABELS, save, style

INIT_LABELS = {"xavier": "Glorot (xavier)", "critical": "critical"}
LOSS_CEILING = 10.0  # MSE on targets in [-1, 1]: above this a model has exploded; axes stop here
DEPTH_STYLES = ["-", "--", ":", "-."]


def _init_colours(inits: Sequence[str]) -> dict[str, tuple]:
    return dict(zip(inits, sns.color_palette("colorblind", 8)[4:4 + len(inits)] if len(inits) <= 4 else
                    sns.color_palette("husl", len(inits))))


def _order(values, preferred: Sequence) -> list:
    present = list(dict.fromkeys(values))
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def _panels(df: pd.DataFrame):
    models = _order(df["model"], ["node", "gnode"])
    acts = _order(df["activation"], ["relu", "tanh"])
    inits = _order(df["init"], ["xavier", "critical"])
    return models, acts, inits


def learning_curves(history: pd.DataFrame, path, *, compare_epoch: int | None = None,
                    formats: Sequence[str] = ("png",), dpi=150):
    """Test loss per epoch (epoch 0: at init), one panel per model (rows) x nonlinearity and depth (columns).

    Thin lines: members (seeds); thick: the median over seeds, per initialisation. A diverged
    member's line stops at its divergence. The dashed line marks the claims' comparison epoch.
    Each panel's y axis ends at :data:`LOSS_CEILING` (exploded outputs leave through the top).
    """
    style()
    models, acts, inits = _panels(history)
    depths = sorted(history["depth"].unique())
    cols = [(a, d) for a in acts for d in depths]
    colours = _init_colours(inits)
    fig, axes = plt.subplots(len(models), len(cols), figsize=(3.0 * len(cols), 2.6 * len(models)), squeeze=False,
                             sharex=True)
    for i, m in enumerate(models):
        for j, (a, d) in enumerate(cols):
            ax = axes[i, j]
            cell = history[(history["model"] == m) & (history["activation"] == a) & (history["depth"] == d)]
            for init in inits:
                g = cell[cell["init"] == init]
                for _, s in g.groupby("seed"):
                    s = s.sort_values("epoch")
                    ax.plot(s["epoch"], s["test_loss"], color=colours[init], lw=0.7, alpha=0.35)
                med = g.groupby("epoch")["test_loss"].median()
                ax.plot(med.index, med.to_numpy(), color=colours[init], lw=2.0,
                        label=INIT_LABELS.get(init, init) if (i, j) == (0, 0) else None)
            if compare_epoch is not None:
                ax.axvline(compare_epoch, color="0.4", ls="--", lw=0.8)
            ax.set_yscale("log")
            finite = cell["test_loss"][np.isfinite(cell["test_loss"]) & (cell["test_loss"] > 0)]
            if len(finite):
                lo = float(finite.min())
                ax.set_ylim(lo / 1.5, max(min(float(finite.max()) * 1.5, LOSS_CEILING), lo * 2))
            ax.set_title(f"{MODEL_LABELS.get(m, m)}, L={d}, {a}", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if j == 0:
                ax.set_ylabel("test MSE")
            if i == len(models) - 1:
                ax.set_xlabel("epoch")
    fig.legend(loc="upper center", ncol=len(inits), frameon=False, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return save(fig, path, formats, dpi)


def init_diagnostics(members: pd.DataFrame, propagation: pd.DataFrame, path, *, formats: Sequence[str] = ("png",),
                     dpi=150):
    """At initialisation: eta_max per member (top) and ||dL/dh_t|| / ||dL/dh_{T-1}|| against the lag (bottom).

    One column per model x nonlinearity. Top: points are members, x the depth L, colour the
    init; the dotted line is the critical rule's target 0. Bottom: the median over seeds of the
    ratio (loss on the last bin only), colour the init, line style the depth; non-finite ratios
    (diverged forward passes) are left out.
    """
    style()
    models, acts, inits = _panels(members)
    cols = [(m, a) for m in models for a in acts]
    colours = _init_colours(inits)
    depths = sorted(members["depth"].unique())
    fig, axes = plt.subplots(2, len(cols), figsize=(3.4 * len(cols), 6.0), squeeze=False)
    for j, (m, a) in enumerate(cols):
        ax = axes[0, j]
        sel = members[(members["model"] == m) & (members["activation"] == a)]
        for k, init in enumerate(inits):
            g = sel[sel["init"] == init]
            x = g["depth"].to_numpy() + (k - (len(inits) - 1) / 2) * 0.15
            ax.scatter(x, g["eta_max"], color=colours[init], s=18, label=INIT_LABELS.get(init, init) if j == 0 else None)
        ax.axhline(0.0, color="k", ls=":", lw=0.8)
        ax.set_xticks(depths)
        ax.set_xlabel("depth L of F")
        ax.set_title(f"{MODEL_LABELS.get(m, m)}, {a}", fontsize=10)
        if j == 0:
            ax.set_ylabel("eta_max at init")
        ax = axes[1, j]
        pr = propagation[(propagation["model"] == m) & (propagation["activation"] == a)]
        pr = pr[np.isfinite(pr["ratio"]) & (pr["ratio"] > 0)]
        for init in inits:
            for k, d in enumerate(depths):
                g = pr[(pr["init"] == init) & (pr["depth"] == d)]
                if not len(g):
                    continue
                med = g.groupby("lag")["ratio"].median()
                ax.plot(med.index, med.to_numpy(), color=colours[init], ls=DEPTH_STYLES[k % len(DEPTH_STYLES)],
                        lw=1.5, label=f"L={d}" if (j == 0 and init == inits[0]) else None)
        ax.set_yscale("log")
        ax.set_xlabel("bins back from the last (lag)")
        if j == 0:
            ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
    h0, l0 = axes[0, 0].get_legend_handles_labels()
    h1, l1 = axes[1, 0].get_legend_handles_labels()
    fig.legend(h0 + h1, l0 + l1, loc="upper center", ncol=len(l0) + len(l1), frameon=False, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save(fig, path, formats, dpi)


def final_loss(members: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """Best test loss per cell: points are seeds, bars the median; one panel per model x nonlinearity.

    Diverged members have no loss; their count is printed above their cell (x marks). Losses
    above :data:`LOSS_CEILING` (exploded outputs) are drawn at the ceiling as triangles.
    """
    style()
    models, acts, inits = _panels(members)
    cols = [(m, a) for m in models for a in acts]
    colours = _init_colours(inits)
    depths = sorted(members["depth"].unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 3.4), squeeze=False, sharey=True)
    finite = members["best_test_loss"][np.isfinite(members["best_test_loss"])]
    top = min(float(finite.max()), LOSS_CEILING) * 1.5 if len(finite) else 1.0
    for j, (m, a) in enumerate(cols):
        ax = axes[0, j]
        sel = members[(members["model"] == m) & (members["activation"] == a)]
        for k, init in enumerate(inits):
            for d in depths:
                g = sel[(sel["init"] == init) & (sel["depth"] == d)]
                x = d + (k - (len(inits) - 1) / 2) * 0.25
                ok = g[g["status"] == "ok"]
                inside = ok[ok["best_test_loss"] <= LOSS_CEILING]
                ax.scatter(np.full(len(inside), x), inside["best_test_loss"], color=colours[init], s=16,
                           label=INIT_LABELS.get(init, init) if (j == 0 and d == depths[0]) else None)
                n_out = len(ok) - len(inside)
                if n_out:
                    ax.scatter(np.full(n_out, x), np.full(n_out, LOSS_CEILING), marker="^", color=colours[init], s=30)
                med = ok["best_test_loss"].median() if len(ok) else np.nan
                if np.isfinite(med) and med <= LOSS_CEILING:
                    ax.hlines(med, x - 0.1, x + 0.1, color="k", lw=2)
                n_div = int((g["status"] != "ok").sum())
                if n_div:
                    ax.scatter([x], [top], marker="x", color=colours[init], s=30)
                    ax.annotate(str(n_div), (x, top), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(depths)
        ax.set_xlabel("depth L of F")
        ax.set_title(f"{MODEL_LABELS.get(m, m)}, {a}", fontsize=10)
        if j == 0:
            ax.set_ylabel("best test MSE")
    fig.legend(loc="upper center", ncol=len(inits), frameon=False, bbox_to_anchor=(0.5, 1.04))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save(fig, path, formats, dpi)
