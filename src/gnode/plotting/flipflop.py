"""Figures of the flip-flop study."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from gnode.plotting.common import MODEL_LABELS, MODEL_ORDER, PALETTE, save, style


def test_loss_per_model(evaluations: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """Test loss (log scale) of every trained member, per model and N; one panel per experiment.

    Points are members (grid points x seeds); diverged members are left out and counted in
    the panel title.
    """
    style()
    exps = sorted(evaluations["experiment"].unique())
    ncols = min(3, len(exps))  # wrapped: five tasks in one row are unreadable at page width
    nrows = -(-len(exps) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(exps):]:
        ax.set_visible(False)
    for ax, exp in zip(axes.flat, exps):
        ev = evaluations[evaluations["experiment"] == exp].copy()
        ok = ev[ev["status"] == "ok"].copy()
        order = [m for m in MODEL_ORDER if m in set(ev["model"])]
        ok["N"] = ok["n"].astype(str)
        # one hue order for both layers (numeric), so that the best-member bars sit on their points
        hue_order = [str(n) for n in sorted(ok["n"].unique())]
        sns.stripplot(data=ok, x="model", y="test_loss", hue="N", order=order, hue_order=hue_order, dodge=True, ax=ax,
                      size=5, jitter=0.15)
        best = ok.loc[ok.groupby(["model", "N"])["test_loss"].idxmin()]
        sns.stripplot(
            data=best, x="model", y="test_loss", hue="N", order=order, hue_order=hue_order, dodge=True, ax=ax,
            size=11, marker="_", linewidth=2, jitter=False, palette="dark:k", legend=False,
        )
        ax.set_yscale("log")
        ax.set_xticks(range(len(order)), [MODEL_LABELS[m] for m in order])
        n_div = int((ev["status"] != "ok").sum())
        ax.set_title(f"{exp}" + (f" ({n_div} diverged)" if n_div else ""))
        ax.set_xlabel("")
        ax.set_ylabel("test MSE (best parameters)")
    fig.tight_layout()
    return save(fig, path, formats, dpi)


def example_trial(examples: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """One test trial: inputs, targets and each model's output, one row per channel.

    Uses the largest N of each model when several were trained.
    """
    style()
    ex = examples.copy()
    ex = ex[ex["n"] == ex.groupby("model")["n"].transform("max")]
    channels = sorted(ex["channel"].unique())
    fig, axes = plt.subplots(len(channels), 1, figsize=(8, 1.9 * len(channels)), sharex=True, squeeze=False)
    ref = ex[ex["model"] == ex["model"].iloc[0]]
    for ax, c in zip(axes[:, 0], channels):
        r = ref[ref["channel"] == c].sort_values("bin")
        ax.fill_between(r["t"], 0, r["input"], step="mid", color="0.85", label="input")
        ax.plot(r["t"], r["target"], color="k", lw=2.2, label="target", drawstyle="steps-mid")
        for m in [m for m in MODEL_ORDER if m in set(ex["model"])]:
            s = ex[(ex["model"] == m) & (ex["channel"] == c)].sort_values("bin")
            ax.plot(s["t"], s["output"], color=PALETTE[m], lw=1.3, label=f"{MODEL_LABELS[m]} (N={s['n'].iloc[0]})")
        ax.set_ylabel(f"channel {c + 1}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[-1, 0].set_xlabel("time (trial units)")
    fig.suptitle(f"{ex['experiment'].iloc[0]}: test trial {int(ex['trial'].iloc[0])}")
    fig.tight_layout()
    return save(fig, path, formats, dpi)


def learning_curves(history: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """Test loss per epoch, the best member of each (model, N)."""
    style()
    h = history.dropna(subset=["test_loss"])
    best = h.groupby(["model", "n", "member"])["test_loss"].min().reset_index()
    best = best.loc[best.groupby(["model", "n"])["test_loss"].idxmin()]
    sel = h.merge(best[["model", "n", "member"]], on=["model", "n", "member"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (m, n), g in sel.groupby(["model", "n"]):
        ax.plot(g["epoch"], g["test_loss"], color=PALETTE.get(m), label=f"{MODEL_LABELS.get(m, m)} N={n}",
                ls=["-", "--", ":", "-."][sorted(sel["n"].unique()).index(n) % 4])
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test MSE")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    return save(fig, path, formats, dpi)
