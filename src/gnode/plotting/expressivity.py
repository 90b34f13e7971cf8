"""Figures of the expressivity study.

Every function takes the tables of :mod:`gnode.expressivity` (fits, scores or example
trajectories) and an output path, and writes the figure twice: ``<stem>.png`` and ``<stem>.pdf``
(the suffix of ``path``, if .png or .pdf, is replaced). They return the written paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gnode.expressivity import n_needed, threshold_for
from gnode.io import read_table
from gnode.plotting.common import save

GATE_LABEL = {False: "nODE (non-gated)", True: "gnODE (gated)"}


def _save(fig, path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically (gnode.plotting.common.save)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p
    return save(fig, stem.with_name(stem.name + ".png"), ("png", "pdf"), dpi=150)


def _flows(scores: pd.DataFrame) -> list[str]:
    """Flow labels from simplest to richest."""
    return list(scores.sort_values("flow_rank").drop_duplicates("flow")["flow"])


def _gates(df: pd.DataFrame) -> list[bool]:
    return sorted(bool(g) for g in df["gated"].unique())


def plot_score_heatmaps(scores: pd.DataFrame, path, *, value: str = "auc") -> list[Path]:
    """Heatmaps of ``value`` ('auc' or 'k_star') over flow field (rows, simplest at the top) x N
    (columns), non-gated and gated side by side; cells are annotated with AUC and K*."""
    flows, ns, gates = _flows(scores), sorted(scores["n"].unique()), _gates(scores)
    vmax = 1.0 if value == "auc" else float(scores["k_max"].max())
    fig, axes = plt.subplots(1, len(gates), figsize=(1.0 + 0.9 * len(ns) * len(gates) + 2, 0.6 * len(flows) + 1.6),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, gated in zip(axes[0], gates):
        sub = scores[scores["gated"] == gated]
        grid = sub.pivot_table(index="flow", columns="n", values=value).reindex(index=flows, columns=ns)
        auc = sub.pivot_table(index="flow", columns="n", values="auc").reindex(index=flows, columns=ns)
        ks = sub.pivot_table(index="flow", columns="n", values="k_star").reindex(index=flows, columns=ns)
        annot = np.vectorize(lambda a, k: "" if math.isnan(a) else f"{a:.2f}\nK*={int(k)}")(auc.to_numpy(), ks.to_numpy())
        sns.heatmap(grid, ax=ax, vmin=0, vmax=vmax, cmap="viridis", annot=annot, fmt="", cbar=ax is axes[0][-1],
                    cbar_kws={"label": "AUC (mean median R²)" if value == "auc" else "capacity K*"},
                    annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white")  # fmt: skip
        ax.set_title(GATE_LABEL[gated])
        ax.set_xlabel("phase-space dimension N")
        ax.set_ylabel("flow field F" if ax is axes[0][0] else "")
    fig.suptitle("Expressivity over N x flow-field complexity", y=1.02)
    return _save(fig, path)


def plot_iso_expressivity(scores: pd.DataFrame, path) -> list[Path]:
    """Iso-expressivity curves: the smallest N whose capacity K* reaches K, against the flow
    field (simplest to richest), one line per K; an unreached K is drawn above the largest N."""
    flows, gates = _flows(scores), _gates(scores)
    k_max, n_top = int(scores["k_max"].max()), float(scores["n"].max())
    fig, axes = plt.subplots(1, len(gates), figsize=(4.2 * len(gates), 3.6), squeeze=False, sharey=True)
    colors = sns.color_palette("rocket_r", k_max + 1)[1:]
    for ax, gated in zip(axes[0], gates):
        for k in range(1, k_max + 1):
            need = n_needed(scores[scores["gated"] == gated], k).set_index("flow").reindex(flows)
            y = need["n_needed"].to_numpy(dtype=float)
            x = np.arange(len(flows))
            reached = np.isfinite(y)
            dy = 0.1 * (k - (k_max + 1) / 2)  # small offset so that equal curves stay visible
            y = np.where(reached, y, n_top + 1) + dy
            ax.plot(x, y, "-", color=colors[k - 1], alpha=0.5)
            ax.plot(x[reached], y[reached], "o", color=colors[k - 1], label=f"K = {k}")
            ax.plot(x[~reached], y[~reached], "^", mfc="none", color=colors[k - 1])
        ax.axhline(n_top + 0.5, color="0.7", lw=0.8, ls=":")
        ax.text(len(flows) - 1, n_top + 1.1, "not reached", fontsize=7, ha="right", va="bottom", color="0.4")
        ax.set_ylim(0.5, n_top + 1.8)
        ax.set_yticks(sorted(scores["n"].unique()))
        ax.set_xticks(range(len(flows)), flows, rotation=30, ha="right")
        ax.set_title(GATE_LABEL[gated])
        ax.set_xlabel("flow field F (simplest to richest)")
        ax.set_ylabel("N needed to reach K" if ax is axes[0][0] else "")
    axes[0][-1].legend(title="complexity", fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Iso-expressivity: dimension needed for K sinusoids", y=1.02)
    return _save(fig, path)


def plot_score_vs_params(scores: pd.DataFrame, path) -> list[Path]:
    """AUC against the parameter count per model (log scale), one line per (flow, gating)
    through increasing N; shows whether 'richer F' is more than 'more parameters'."""
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    flows = _flows(scores)
    palette = dict(zip(flows, sns.color_palette("tab10", len(flows))))
    for (flow, gated), g in scores.groupby(["flow", "gated"]):
        g = g.sort_values("n")
        ax.plot(g["n_params"], g["auc"], "-" if gated else "--", color=palette[flow], alpha=0.6)
        ax.scatter(g["n_params"], g["auc"], color=palette[flow], marker="o" if gated else "s",
                   facecolors=palette[flow] if gated else "none", zorder=3)  # fmt: skip
        for x, y, n in zip(g["n_params"], g["auc"], g["n"]):
            ax.annotate(f"{n}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6, color=palette[flow])
    ax.set_xscale("log")
    ax.set_xlabel("parameters per model")
    ax.set_ylabel("AUC (mean over K of median R²)")
    handles = [plt.Line2D([], [], color=palette[f], lw=2, label=f) for f in flows]
    handles += [plt.Line2D([], [], color="0.3", ls="-", marker="o", label="gated"),
                plt.Line2D([], [], color="0.3", ls="--", marker="s", mfc="none", label="non-gated")]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_title("Expressivity vs parameter count (labels: N)")
    return _save(fig, path)


def plot_r2_vs_k(fits: pd.DataFrame, path, *, threshold: float | str = "adaptive", flows: Sequence[str] | None = None) -> list[Path]:
    """Median R^2 over targets against K, one line per N (band: min-max over targets); panels
    flow (rows) x gating (columns); the dashed line is the threshold of K*."""
    flows = list(flows) if flows is not None else list(dict.fromkeys(fits["flow"]))
    gates, ns = _gates(fits), sorted(fits["n"].unique())
    colors = dict(zip(ns, sns.color_palette("viridis", len(ns))))
    fig, axes = plt.subplots(len(flows), len(gates), figsize=(3.4 * len(gates), 2.4 * len(flows)),
                             squeeze=False, sharex=True, sharey=True)  # fmt: skip
    ks = np.arange(1, int(fits["k"].max()) + 1)
    for i, flow in enumerate(flows):
        for j, gated in enumerate(gates):
            ax = axes[i][j]
            sub = fits[(fits["flow"] == flow) & (fits["gated"] == gated)]
            for n, g in sub.groupby("n"):
                st = g.groupby("k")["r2"].agg(["median", "min", "max"]).clip(lower=0)
                ax.plot(st.index, st["median"], "o-", color=colors[n], ms=3, label=f"N={n}")
                ax.fill_between(st.index, st["min"], st["max"], color=colors[n], alpha=0.15, lw=0)
            ax.plot(ks, threshold_for(ks, threshold), "k--", lw=0.8)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xticks(ks)
            if i == 0:
                ax.set_title(GATE_LABEL[gated], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{flow}\nmedian R²", fontsize=8)
            if i == len(flows) - 1:
                ax.set_xlabel("K (sinusoids in the target)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_example_fits(examples: pd.DataFrame, path) -> list[Path]:
    """Targets (black) and best fits (colour) of :func:`gnode.expressivity.example_fits`:
    one row per class, one column per K (first output channel)."""
    ex = examples[examples["channel"] == 0]
    keys = ["n", "depth", "width", "activation", "gated", "flow"]
    classes = list(ex[keys].drop_duplicates().itertuples(index=False))
    ks = sorted(ex["k"].unique())
    fig, axes = plt.subplots(len(classes), len(ks), figsize=(2.8 * len(ks), 1.7 * len(classes)),
                             squeeze=False, sharex=True, sharey=True)  # fmt: skip
    for i, c in enumerate(classes):
        sel = np.ones(len(ex), bool)
        for key, v in zip(keys, c):
            sel &= (ex[key] == v).to_numpy()
        for j, k in enumerate(ks):
            ax = axes[i][j]
            g = ex[sel & (ex["k"] == k).to_numpy()].sort_values("t")
            if g.empty:
                ax.axis("off")
                continue
            ax.plot(g["t"], g["target"], color="k", lw=1.2, label="target")
            ax.plot(g["t"], g["output"], color="C3" if c.gated else "C0", lw=1.0, ls="--", label="fit")
            ax.text(0.02, 0.95, f"R²={g['r2'].iloc[0]:.3f}", transform=ax.transAxes, fontsize=7, va="top")
            if i == 0:
                ax.set_title(f"K = {k}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"N={c.n}, {c.flow}\n{'gated' if c.gated else 'non-gated'}", fontsize=7)
            if i == len(classes) - 1:
                ax.set_xlabel("t (windows)")
    axes[0][0].legend(fontsize=6, loc="lower left")
    return _save(fig, path)


def plot_job(fit_paths: list[str], scores_path, examples_path, out: dict, threshold="adaptive") -> None:
    """Draw the expressivity figures; ``out`` maps figure name -> PNG path (a PDF is written beside)."""
    fits = pd.concat([read_table(p) for p in fit_paths], ignore_index=True)
    scores = read_table(scores_path)
    plot_score_heatmaps(scores, out["heatmaps"])
    plot_iso_expressivity(scores, out["iso"])
    plot_score_vs_params(scores, out["params"])
    plot_r2_vs_k(fits, out["r2"], threshold=threshold)
    plot_example_fits(read_table(examples_path), out["examples"])
