"""The flip-flop findings of the SPEC as claims rows (:mod:`gnode.claims`).

Each row names a finding, the statistic that tests it at the scale that was run, a threshold
fixed in the configuration before the run (``flipflop.claims``), and whether it holds. A claim
whose data is missing (the experiment or model was not run) is written with a NaN value and
``holds = False``, and its note says what was missing.

Rows (one per experiment where it applies):

- ``ff_gating_best_<exp>``: gnODE / nODE best test MSE at their largest common N (< gating_ratio).
- ``ff_gating_median_<exp>``: the same for the median over grid points and seeds (trainability:
  how much of the grid trains well).
- ``ff_small_gnode_<exp>`` (3-bit variable): smallest gnODE's best test MSE / largest gnODE's
  (<= small_vs_large_margin).
- ``ff_low_dim_r2_<exp>`` (2-bit tasks): fraction of the test targets' variance the N = 2 gnODE
  explains, 1 - MSE / Var (>= low_dim_r2).
- ``ff_ring_radius_cv_<exp>``, ``ff_ring_coverage_<exp>`` (ring task): the attracting slow
  points of the N = 2 gnODE (sources excluded) have readouts on a circle: the coefficient of
  variation of their radius (< ring_radius_cv), and they cover the circle (fraction of 12
  angle sectors holding one, >= ring_coverage).
- ``ff_memory_<exp>`` (continuous tasks): the best gnODE's readout drift over the memory test
  relative to the stored value (<= memory_drift).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gnode import io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame

STUDY = "flipflop"
CONTINUOUS_TASKS = ("3bit_variable", "2bit_rectangle", "2bit_disk", "2bit_ring")


def _best(summary: pd.DataFrame, exp: str, model: str, n: int | None = None, col: str = "best_test_loss") -> float:
    s = summary[(summary["experiment"] == exp) & (summary["model"] == model)]
    if n is not None:
        s = s[s["n"] == n]
    return float(s[col].iloc[0]) if len(s) else math.nan


def _sizes(summary: pd.DataFrame, exp: str, model: str) -> list[int]:
    return sorted(summary.loc[(summary["experiment"] == exp) & (summary["model"] == model), "n"].astype(int))


def gating_claims(summary: pd.DataFrame, exp: str, ratio: float) -> list[dict]:
    common = sorted(set(_sizes(summary, exp, "gnode")) & set(_sizes(summary, exp, "node")))
    rows = []
    for col, what in (("best_test_loss", "best"), ("median_test_loss", "median")):
        if common:
            n = common[-1]
            g, o = _best(summary, exp, "gnode", n, col), _best(summary, exp, "node", n, col)
            value, note = g / o, f"N={n}: gnODE {g:.4g}, nODE {o:.4g}"
        else:
            value, note = math.nan, "gnODE and nODE not both trained at a common N"
        rows.append(
            claim(
                STUDY, f"ff_gating_{what}_{exp}",
                f"{exp}: gating improves trainability (gnODE reaches a lower test MSE than nODE)",
                f"gnODE / nODE {what} test MSE over grid points and seeds, same N",
                value, "<", ratio, note,
            )
        )
    return rows


def small_vs_large_claim(summary: pd.DataFrame, exp: str, margin: float) -> dict:
    sizes = _sizes(summary, exp, "gnode")
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        a, b = _best(summary, exp, "gnode", lo), _best(summary, exp, "gnode", hi)
        value, note = a / b, f"gnODE N={lo}: {a:.4g}; N={hi}: {b:.4g}"
    else:
        value, note = math.nan, f"needs gnODE at two sizes, got {sizes}"
    return claim(
        STUDY, f"ff_small_gnode_{exp}",
        f"{exp}: a low-dimensional gnODE keeps the performance of a large one",
        "best test MSE of the smallest gnODE / that of the largest",
        value, "<=", margin, note,
    )


def target_variance(data: pd.DataFrame) -> float:
    """Mean over channels of the variance of the test targets (the MSE of the best constant)."""
    test = data[data["split"] == "test"]
    return float(test.groupby("channel")["target"].var(ddof=0).mean())


def low_dim_claim(summary: pd.DataFrame, exp: str, variance: float, threshold: float) -> dict:
    mse = _best(summary, exp, "gnode", 2)
    value = 1 - mse / variance if variance > 0 else math.nan
    note = f"gnODE N=2 test MSE {mse:.4g}, target variance {variance:.4g}" if math.isfinite(mse) else "no gnODE at N=2"
    return claim(
        STUDY, f"ff_low_dim_r2_{exp}",
        f"{exp}: a gnODE of dimension 2 solves the task",
        "1 - test MSE / variance of the test targets, gnODE N=2",
        value, ">=", threshold, note,
    )


def ring_points(fixed_points: pd.DataFrame) -> pd.DataFrame:
    """The attracting slow points of the N = 2 gnODE: at most one unstable direction (the ring's
    tangent may be weakly unstable on an approximate ring), so sources are left out."""
    fp = fixed_points[(fixed_points["model"] == "gnode") & (fixed_points["n"] == 2)]
    return fp[fp["n_unstable"] <= 1]


def ring_claims(fixed_points: pd.DataFrame, exp: str, cv_max: float, coverage_min: float) -> list[dict]:
    pts = ring_points(fixed_points)
    if len(pts) >= 2:
        y = np.stack(pts["readout"].map(np.asarray).to_list())
        r = np.linalg.norm(y, axis=1)
        cv = float(r.std() / r.mean()) if r.mean() > 0 else math.nan
        sectors = np.floor((np.arctan2(y[:, 1], y[:, 0]) + math.pi) / (2 * math.pi / 12)).astype(int) % 12
        coverage = len(np.unique(sectors)) / 12
        note = f"{len(pts)} points, readout radius {r.mean():.3g} ± {r.std():.2g} (target 2)"
    else:
        cv = coverage = math.nan
        note = f"{len(pts)} attracting slow points of a gnODE N=2 found"
    return [
        claim(
            STUDY, f"ff_ring_radius_cv_{exp}",
            f"{exp}: the gnODE's slow points lie on a ring (an approximate continuous attractor)",
            "coefficient of variation of the readout radius of the attracting slow points, gnODE N=2",
            cv, "<", cv_max, note,
        ),
        claim(
            STUDY, f"ff_ring_coverage_{exp}",
            f"{exp}: the gnODE's slow points cover the ring",
            "fraction of 12 angle sectors of the readout holding an attracting slow point, gnODE N=2",
            coverage, ">=", coverage_min, note,
        ),
    ]


def memory_claim(memory: pd.DataFrame, exp: str, threshold: float) -> dict:
    g = memory[(memory["model"] == "gnode") & memory["is_best"]]
    if len(g):
        row = g.loc[g["test_loss"].idxmin()] if g["test_loss"].notna().any() else g.iloc[0]
        value = float(row["relative_drift"])
        others = memory[(memory["model"] == "node") & memory["is_best"]]
        extra = f"; nODE (best): {others['relative_drift'].min():.3g}" if len(others) else ""
        note = f"gnODE N={int(row['n'])}, {row['duration']:.0f} trial lengths without input{extra}"
    else:
        value, note = math.nan, "no gnODE analysed"
    return claim(
        STUDY, f"ff_memory_{exp}",
        f"{exp}: the gnODE holds a continuous value (approximate continuous attractor)",
        "readout drift over the memory test / norm of the stored value, best gnODE",
        value, "<=", threshold, note,
    )


def flipflop_claims(
    summary: pd.DataFrame,
    experiments: dict[str, str],
    fixed_points: dict[str, pd.DataFrame],
    memory: dict[str, pd.DataFrame],
    variances: dict[str, float],
    thresholds: dict,
) -> pd.DataFrame:
    """All flip-flop claims rows; ``experiments`` maps experiment name -> task."""
    rows: list[dict] = []
    for exp, task in experiments.items():
        rows += gating_claims(summary, exp, thresholds["gating_ratio"])
        if task == "3bit_variable":
            rows.append(small_vs_large_claim(summary, exp, thresholds["small_vs_large_margin"]))
        if task.startswith("2bit"):
            rows.append(low_dim_claim(summary, exp, variances.get(exp, math.nan), thresholds["low_dim_r2"]))
        if task == "2bit_ring":
            rows += ring_claims(fixed_points[exp], exp, thresholds["ring_radius_cv"], thresholds["ring_coverage"])
        if task in CONTINUOUS_TASKS:
            rows.append(memory_claim(memory[exp], exp, thresholds["memory_drift"]))
    return claims_frame(rows)


def claims_job(
    settings: dict,
    summary_path: str | Path,
    experiments: list[str],
    fixed_point_paths: list[str],
    memory_paths: list[str],
    data_paths: list[str],
    out_claims: str | Path,
    out_html: str | Path | None = None,
) -> pd.DataFrame:
    """Write the flip-flop claims table; the path lists are parallel to ``experiments``.

    ``settings``: ``tasks`` (experiment -> task) and ``thresholds`` (config flipflop.claims).
    """
    summary = io.read_table(summary_path)
    fps = {e: io.read_table(p) for e, p in zip(experiments, fixed_point_paths)}
    mems = {e: io.read_table(p) for e, p in zip(experiments, memory_paths)}
    variances = {e: target_variance(io.read_table(p)) for e, p in zip(experiments, data_paths)}
    tasks = {e: settings["tasks"][e] for e in experiments}
    df = flipflop_claims(summary, tasks, fps, mems, variances, settings["thresholds"])
    io.write_table(df, out_claims, CLAIMS_SCHEMA, io.provenance(settings))
    if out_html:
        with io.atomic_path(out_html) as tmp:
            tmp.write_text(df.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    return df
