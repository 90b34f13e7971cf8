"""Figures of the attractor analysis of the flip-flop models (from the analysis tables only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from gnode.plotting.common import MODEL_LABELS, MODEL_ORDER, PALETTE, save, style

STABLE_COLOUR, UNSTABLE_COLOUR = "#1f77b4", "#d62728"


def panels(fixed_points: pd.DataFrame, trajectories: pd.DataFrame) -> list[tuple[str, int]]:
    """(model, N) drawn: every model at its smallest N, and the gnODE at every N."""
    have = trajectories[["model", "n"]].drop_duplicates()
    out = []
    for m in [m for m in MODEL_ORDER if m in set(have["model"])]:
        sizes = sorted(have.loc[have["model"] == m, "n"])
        out += [(m, n) for n in (sizes if m == "gnode" else sizes[:1])]
    gn = [p for p in out if p[0] == "gnode"]
    return gn + [p for p in out if p[0] != "gnode"]


def _label(model: str, n: int) -> str:
    return f"{MODEL_LABELS.get(model, model)} N={n}"


def _axis_names(traj: pd.DataFrame) -> list[str]:
    if traj["basis"].iloc[0] == "pca":
        frac = [float(traj[f"explained_{i}"].iloc[0]) for i in range(3)]
        return [f"PC{i + 1}" + (f" ({100 * f:.0f}%)" if np.isfinite(f) else "") for i, f in enumerate(frac)]
    return ["$h_1$", "$h_2$", "$h_3$"]


def _points(ax, fp: pd.DataFrame, three_d: bool) -> None:
    for stable, colour in ((True, STABLE_COLOUR), (False, UNSTABLE_COLOUR)):
        for fixed, size, marker in ((True, 46, "o"), (False, 14, "o")):
            sel = fp[(fp["stable"] == stable) & (fp["is_fixed"] == fixed)]
            if not len(sel):
                continue
            face = colour if fixed else "none"
            coords = [sel["coord_0"], sel["coord_1"]] + ([sel["coord_2"]] if three_d else [])
            kw = {"s": size, "marker": marker, "facecolors": face, "edgecolors": colour, "linewidths": 1.0, "zorder": 5}
            if three_d:
                kw["depthshade"] = False
            ax.scatter(*coords, **kw)


def attractor_figure(
    fixed_points: pd.DataFrame,
    trajectories: pd.DataFrame,
    speed_grid: pd.DataFrame,
    path,
    *,
    max_trials: int = 5,
    formats: Sequence[str] = ("png",),
    dpi: int = 150,
):
    """Phase portraits at zero input of the best member of each (model, N), one panel each.

    N = 2: the speed ||dh/dt|| as background (log colour scale), the flow's streamlines, test
    trajectories and the fixed (filled) and slow (open) points, blue when stable, red when not.
    N >= 3: the same in 3-D, in the state axes (N = 3) or the first three principal components
    of the test-trial states (N > 3; the axis labels give the fraction of variance of each).
    """
    style()
    keys = panels(fixed_points, trajectories)
    if not keys:
        raise ValueError("no analysed model to draw")
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig = plt.figure(figsize=(4.1 * ncol, 3.9 * nrow))
    exp = trajectories["experiment"].iloc[0]
    for i, (m, n) in enumerate(keys):
        tr = trajectories[(trajectories["model"] == m) & (trajectories["n"] == n)]
        fp = fixed_points[(fixed_points["model"] == m) & (fixed_points["n"] == n)]
        grid = speed_grid[(speed_grid["model"] == m) & (speed_grid["n"] == n)]
        names = _axis_names(tr)
        three_d = n >= 3
        ax = fig.add_subplot(nrow, ncol, i + 1, projection="3d" if three_d else None)
        if not three_d and len(grid):
            g = grid.sort_values(["h_1", "h_0"])
            k = int(round(math.sqrt(len(g))))
            x = g["h_0"].to_numpy().reshape(k, k)
            y = g["h_1"].to_numpy().reshape(k, k)
            sp = np.maximum(g["speed"].to_numpy().reshape(k, k), 1e-6)
            mesh = ax.pcolormesh(x, y, sp, norm=LogNorm(vmin=sp.min(), vmax=sp.max()), cmap="Greys",
                                 shading="gouraud", rasterized=True)
            fig.colorbar(mesh, ax=ax, shrink=0.8, pad=0.02, label="speed ||dh/dt||")
            ax.streamplot(x, y, g["u"].to_numpy().reshape(k, k), g["v"].to_numpy().reshape(k, k), color="0.45",
                          density=0.7, linewidth=0.5, arrowsize=0.6)
        for trial in sorted(tr["trial"].unique())[:max_trials]:
            t = tr[tr["trial"] == trial].sort_values("bin")
            coords = [t["coord_0"], t["coord_1"]] + ([t["coord_2"]] if three_d else [])
            ax.plot(*coords, color=PALETTE.get(m, "C0"), lw=0.6 if three_d else 0.8, alpha=0.45 if three_d else 0.6)
        _points(ax, fp, three_d)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if three_d:
            ax.set_zlabel(names[2])
            ax.tick_params(labelsize=7)
        n_fixed = int(fp["is_fixed"].sum())
        n_stable = int(fp["stable"].sum())
        ax.set_title(f"{_label(m, n)}: {n_fixed} fixed, {len(fp) - n_fixed} slow, {n_stable} stable", fontsize=9)
    handles = [
        Line2D([], [], ls="", marker="o", color=STABLE_COLOUR, label="stable fixed point"),
        Line2D([], [], ls="", marker="o", color=UNSTABLE_COLOUR, label="unstable fixed point"),
        Line2D([], [], ls="", marker="o", mfc="none", color=STABLE_COLOUR, label="stable slow point"),
        Line2D([], [], ls="", marker="o", mfc="none", color=UNSTABLE_COLOUR, label="unstable slow point"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"{exp}: zero-input dynamics of the best member")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save(fig, path, formats, dpi)


def memory_figure(memory: pd.DataFrame, curves: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """Memory test: the readout against the stored value, and its drift, per model and N.

    Left: mean error ||y(t) - v|| / mean ||v|| of the best member over the free run (trial
    lengths since the value settled; log time); 1 is what a readout that forgot scores.
    Middle: mean drift ||y(t) - y(settle)|| of the best member (log-log, floored at 1e-6); a
    model that forgot at once also has no drift.
    Right: the worst relative error of settling, +1 trial length and the end, every member (the
    statistic of the memory claim); the best member marked.
    """
    style()
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    sizes = sorted(memory["n"].unique())
    styles = ["-", "--", ":", "-."]
    norm = float(memory["stored_norm"].iloc[0])
    best = curves[curves["is_best"]]
    for (m, n), g in best.groupby(["model", "n"]):
        g = g.sort_values("t")
        kw = dict(color=PALETTE.get(m), ls=styles[sizes.index(n) % 4], label=_label(m, n))
        later = g[g["t"] > 0]  # at t = 0 the drift is 0 by definition
        ax0.plot(later["t"], later["error"] / norm, **kw)
        ax1.plot(later["t"], np.maximum(later["drift"], 1e-6), **kw)
    ax0.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax0.set_xscale("log")
    ax0.set_ylim(bottom=-0.03)  # a perfect memory (0) stays visible
    ax0.set_xlabel("time since the value settled (trial lengths)")
    ax0.set_ylabel("||y(t) - stored|| / ||stored||")
    ax0.legend(fontsize=7, ncol=2, frameon=False)
    ax1.set_yscale("log")
    ax1.set_xscale("log")
    ax1.set_xlabel("time since the value settled (trial lengths)")
    ax1.set_ylabel("readout drift ||y(t) - y(settle)||")
    ok = memory[memory["status"] == "ok"].copy()
    ok["worst"] = ok[["relative_error_settle", "relative_error_1x", "relative_error_end"]].max(axis=1)
    order = [m for m in MODEL_ORDER if m in set(ok["model"])]
    markers = "osD^v<>"
    rng = np.random.default_rng(0)
    for i, m in enumerate(order):
        sub = ok[ok["model"] == m]
        own = sorted(sub["n"].unique())
        for j, n in enumerate(own):
            s = sub[sub["n"] == n]
            x0 = i + (j - (len(own) - 1) / 2) * 0.22
            ax2.scatter(x0 + rng.uniform(-0.04, 0.04, len(s)), s["worst"], s=16,
                        color=PALETTE.get(m), alpha=0.75, marker=markers[sizes.index(n) % len(markers)])
            b = s[s["is_best"]]
            ax2.scatter([x0] * len(b), b["worst"], s=90, marker="_", color="k", linewidths=2)
    handles = [Line2D([], [], ls="", marker=markers[k % len(markers)], color="0.3", label=f"N={n}")
               for k, n in enumerate(sizes)]
    ax2.legend(handles=handles, fontsize=7, frameon=True, loc="best")
    ax2.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax2.set_ylim(bottom=-0.03)
    ax2.set_xticks(range(len(order)), [MODEL_LABELS[m] for m in order])
    ax2.set_ylabel("worst error / ||stored||")
    dur = float(memory["duration"].iloc[0])
    fig.suptitle(f"{memory['experiment'].iloc[0]}: memory test, {dur:.0f} trial lengths without input")
    fig.tight_layout()
    return save(fig, path, formats, dpi)


def gates_figure(gates: pd.DataFrame, path, *, formats: Sequence[str] = ("png",), dpi=150):
    """Adaptive time constants of the gated models (gnODE: tau/z; GRU, mGRU: dt/z).

    Left: mean gate z over units along one test trial, pulses shaded. Right: the median time
    constant over units while a pulse is present, while holding (no input), and at the slow
    points, for every bin or point (log scale).
    """
    style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
    if not len(gates):
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no gated model in this experiment", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return save(fig, path, formats, dpi)
    tr = gates[gates["source"] == "trajectory"]
    trial = int(tr["trial"].min())
    keys = [(m, n) for m, n in panels(gates, gates)]
    sizes = sorted(gates["n"].unique())
    first = tr[(tr["trial"] == trial)]
    on = first.drop_duplicates("bin").sort_values("bin")
    for b in on.loc[on["input_on"], "bin"]:
        ax1.axvspan(b - 0.5, b + 0.5, color="0.88", lw=0)
    for m, n in keys:
        g = first[(first["model"] == m) & (first["n"] == n)].sort_values("bin")
        ax1.plot(g["bin"], g["z_mean"], color=PALETTE.get(m), ls=["-", "--", ":", "-."][sizes.index(n) % 4],
                 label=_label(m, n))
    ax1.set_ylim(0, 1.02)
    ax1.set_xlabel(f"bin of test trial {trial} (pulses shaded)")
    ax1.set_ylabel("mean gate z over units")
    ax1.legend(fontsize=7, frameon=False, ncol=2)
    rows = []
    for (m, n), g in gates.groupby(["model", "n"]):
        if (m, n) not in keys:
            continue
        where = np.where(g["source"] == "fixed_point", "slow points", np.where(g["input_on"], "pulse", "holding"))
        rows.append(pd.DataFrame({"panel": _label(m, n), "where": where, "tau": g["tau_eff_median"].to_numpy()}))
    d = pd.concat(rows, ignore_index=True)
    cats = ["pulse", "holding", "slow points"]
    labels = [_label(m, n) for m, n in keys]
    width = 0.8 / len(cats)
    for j, c in enumerate(cats):
        data = [d.loc[(d["panel"] == lab) & (d["where"] == c), "tau"].to_numpy() for lab in labels]
        pos = [i + (j - 1) * width for i in range(len(labels))]
        keep = [(p, x) for p, x in zip(pos, data) if len(x)]
        if keep:
            bp = ax2.boxplot([x for _, x in keep], positions=[p for p, _ in keep], widths=width * 0.9,
                             showfliers=False, patch_artist=True)
            for patch in bp["boxes"]:
                patch.set_facecolor(["#f0a35e", "#7fb3d5", "#9b9b9b"][j])
        ax2.plot([], [], color=["#f0a35e", "#7fb3d5", "#9b9b9b"][j], lw=6, label=c)
    ax2.set_yscale("log")
    ax2.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
    ax2.set_ylabel("time constant (trial units)")
    ax2.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{gates['experiment'].iloc[0]}: gates along the trajectories and at the slow points")
    fig.tight_layout()
    return save(fig, path, formats, dpi)
