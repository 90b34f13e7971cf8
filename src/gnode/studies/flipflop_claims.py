"""The flip-flop findings of the SPEC as claims rows (:mod:`gnode.claims`).

Each row names a finding, the statistic that tests it at the scale that was run, a threshold
fixed in the configuration before the run (``flipflop.claims``), and whether it holds. A claim
whose data is missing (the experiment or model was not run) is written with a NaN value and
``holds = False``, and its note says what was missing. Which rows an experiment gets depends on
its task (:data:`TASK_CLAIMS`); only configured experiments get rows. The study's claims
function is :func:`flipflop_claims`; the ``*_row``/``*_rows`` functions build its rows.

Rows (one per experiment where it applies):

- ``ff_gating_best_<exp>``: gnODE / nODE best test MSE at their largest common N (< gating_ratio).
- ``ff_gating_median_<exp>``: the same for the median over grid points and seeds (trainability:
  how much of the grid trains well).
- ``ff_small_gnode_<exp>`` (3-bit variable): smallest gnODE's best test MSE / largest gnODE's
  (<= small_vs_large_margin).
- ``ff_low_dim_r2_<exp>`` (2-bit tasks): fraction of the test targets' variance the N = 2 gnODE
  explains, 1 - MSE / Var (>= low_dim_r2).
- ``ff_square_rank_<exp>`` (2-bit square): rank of the N = 2 gnODE among the five models at
  N = 2 by best test MSE, 1 = best (<= square_rank).
- ``ff_fixed_targets_<exp>`` (2-bit fixed): the largest readout distance from a target
  (±1, ±1) to the nearest stable fixed point of the N = 2 gnODE (<= fixed_target_tol).
- ``ff_ring_radius_cv_<exp>``, ``ff_ring_coverage_<exp>`` (ring task): the attracting slow
  points of the N = 2 gnODE (sources excluded) have readouts on a circle: the coefficient of
  variation of their radius (< ring_radius_cv), and they cover the circle (fraction of 12
  angle sectors holding one, >= ring_coverage).
- ``ff_memory_<exp>`` (continuous tasks): the best gnODE's readout error against the stored
  value, relative to its norm, at its worst of three times: settling, one trial length later and
  the end of the memory test (<= memory_error). A model that forgets fails it.
- ``ff_memory_drift_<exp>`` (continuous tasks): the best gnODE's readout drift from where it
  settled to the end, relative to the stored value (<= memory_drift). A model that collapses to
  one fixed point within the settling bins also has a small drift: this row alone is no evidence
  of memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gnode import io
from gnode.claims import CLAIMS_SCHEMA, Claim, claim, claims_frame
from gnode.models import MODEL_KINDS

if TYPE_CHECKING:  # typing only: the job validates its settings (gnode.jobs); this module reads them
    from gnode.config import FlipflopClaimsSettings

STUDY = "flipflop"


def _best(summary: pd.DataFrame, exp: str, model: str, n: int | None = None, col: str = "best_test_loss") -> float:
    s = summary[(summary["experiment"] == exp) & (summary["model"] == model)]
    if n is not None:
        s = s[s["n"] == n]
    return float(s[col].iloc[0]) if len(s) else math.nan


def _sizes(summary: pd.DataFrame, exp: str, model: str) -> list[int]:
    return sorted(summary.loc[(summary["experiment"] == exp) & (summary["model"] == model), "n"].astype(int))


def gating_rows(summary: pd.DataFrame, exp: str, ratio: float) -> list[Claim]:
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


def small_vs_large_row(summary: pd.DataFrame, exp: str, margin: float) -> Claim:
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


def low_dim_row(summary: pd.DataFrame, exp: str, variance: float, threshold: float) -> Claim:
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


def ring_rows(fixed_points: pd.DataFrame, exp: str, cv_max: float, coverage_min: float) -> list[Claim]:
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


def square_rank_row(summary: pd.DataFrame, exp: str, max_rank: int) -> Claim:
    """Rank (1 = best) of the N = 2 gnODE's best test MSE among all five models at N = 2.

    A baseline whose every member diverged (NaN loss) ranks below the gnODE; a model not trained
    at N = 2 makes the rank NaN (the comparison the finding needs is not there).
    """
    s = summary[(summary["experiment"] == exp) & (summary["n"] == 2)]
    losses = {m: _best(s, exp, m) for m in MODEL_KINDS if (s["model"] == m).any()}
    missing = [m for m in MODEL_KINDS if m not in losses]
    order = sorted(losses, key=lambda m: (not math.isfinite(losses[m]), losses[m]))
    listed = ", ".join(f"{m} {losses[m]:.4g}" if math.isfinite(losses[m]) else f"{m} diverged" for m in order)
    g = losses.get("gnode", math.nan)
    if missing:
        value, note = math.nan, f"not trained at N=2: {', '.join(missing)}" + (f"; best test MSE: {listed}" if listed else "")
    elif not math.isfinite(g):
        value, note = math.nan, f"gnODE N=2 has no finite test loss; best test MSE: {listed}"
    else:
        value = 1 + sum(math.isfinite(v) and v < g for m, v in losses.items() if m != "gnode")
        note = f"N=2 best test MSE, best first: {listed}"
    return claim(
        STUDY, f"ff_square_rank_{exp}",
        f"{exp}: at N = 2 the gnODE outperforms the RNN, GRU, mGRU and nODE",
        "rank of the gnODE among the five models at N=2 by best test MSE (1 = best)",
        value, "<=", max_rank, note,
    )


def fixed_targets_row(fixed_points: pd.DataFrame, exp: str, tol: float, n_channels: int = 2) -> Claim:
    """Every stored state of a fixed-amplitude task, (±1, ..., ±1), has a stable fixed point of
    the N = 2 gnODE within ``tol`` of it in readout space.

    Value: the largest over the 2^n_channels targets of the readout distance to the nearest
    stable fixed point (``stable`` and ``is_fixed``); NaN when there is none.
    """
    fp = fixed_points[(fixed_points["model"] == "gnode") & (fixed_points["n"] == 2)]
    fp = fp[fp["stable"].astype(bool) & fp["is_fixed"].astype(bool)]
    targets = np.array(list(itertools.product((1.0, -1.0), repeat=n_channels)))
    if len(fp):
        y = np.stack(fp["readout"].map(np.asarray).to_list())
        dist = np.linalg.norm(targets[:, None, :] - y[None, :, :], axis=-1).min(axis=1)  # (targets,)
        value = float(dist.max())
        each = ", ".join(f"({', '.join(f'{v:+.0f}' for v in t)}) {d:.3g}" for t, d in zip(targets, dist))
        note = (f"{int((dist <= tol).sum())} of {len(targets)} targets within {tol:g}; {len(fp)} stable fixed "
                f"points; distance to the nearest: {each}")
    else:
        value, note = math.nan, "no stable fixed point of a gnODE N=2 found"
    return claim(
        STUDY, f"ff_fixed_targets_{exp}",
        f"{exp}: the N = 2 gnODE has a stable fixed point at each of the {len(targets)} stored states",
        "largest readout distance from a target (±1 per channel) to the nearest stable fixed point, gnODE N=2",
        value, "<=", tol, note,
    )


MEMORY_ERRORS = {"relative_error_settle": "settling", "relative_error_1x": "1 trial length later",
                 "relative_error_end": "the end"}


def _memory_best(memory: pd.DataFrame, model: str) -> pd.Series | None:
    """The memory row of a model's best member, over its sizes (lowest test loss)."""
    g = memory[(memory["model"] == model) & memory["is_best"]]
    if not len(g):
        return None
    return g.loc[g["test_loss"].idxmin()] if g["test_loss"].notna().any() else g.iloc[0]


def memory_error(row: pd.Series) -> float:
    """The worst of the relative errors at settling, one trial length later and at the end."""
    errors = [float(row[c]) for c in MEMORY_ERRORS]
    return math.nan if any(math.isnan(e) for e in errors) else max(errors)


def memory_rows(memory: pd.DataFrame, exp: str, error_max: float, drift_max: float) -> list[Claim]:
    """Two rows: the memory error against the stored value, and the drift after settling.

    Both are of the best gnODE member (lowest test loss over its sizes); the notes give the same
    statistic for the best member of every other model analysed.
    """
    row = _memory_best(memory, "gnode")
    others = {m: _memory_best(memory, m) for m in MODEL_KINDS if m != "gnode"}
    others = {m: r for m, r in others.items() if r is not None}

    def compare(stat) -> str:
        return "; ".join(f"{m} (best, N={int(r['n'])}): {stat(r):.3g}" for m, r in others.items())

    if row is not None:
        err, drift = memory_error(row), float(row["relative_drift"])
        where = f"gnODE N={int(row['n'])}, {row['duration']:.0f} trial lengths without input"
        errors = ", ".join(f"{row[c]:.3g} at {when}" for c, when in MEMORY_ERRORS.items())
        err_note = f"{where}: relative error {errors}" + (f"; {compare(memory_error)}" if others else "")
        drift_note = f"{where}" + (f"; {compare(lambda r: float(r['relative_drift']))}" if others else "")
    else:
        err = drift = math.nan
        err_note = drift_note = "no gnODE analysed"
    return [
        claim(
            STUDY, f"ff_memory_{exp}",
            f"{exp}: the gnODE holds a continuous value (approximate continuous attractor)",
            "mean ||readout - stored value|| / mean ||stored value||, worst of settling, +1 trial length and "
            "the end of the memory test, best gnODE",
            err, "<=", error_max, err_note,
        ),
        claim(
            STUDY, f"ff_memory_drift_{exp}",
            f"{exp}: the gnODE's readout stays where it settled (a model that forgets at once passes too)",
            "mean ||readout(end) - readout(settle)|| / mean ||stored value||, best gnODE",
            drift, "<=", drift_max, drift_note,
        ),
    ]


@dataclass(frozen=True)
class ClaimInputs:
    """What the claims of all experiments are computed from (dicts keyed by experiment)."""

    summary: pd.DataFrame
    fixed_points: dict[str, pd.DataFrame]
    memory: dict[str, pd.DataFrame]
    variances: dict[str, float]
    thresholds: Mapping


ClaimBuilder = Callable[[ClaimInputs, str], list[Claim]]


def _gating(d: ClaimInputs, exp: str) -> list[Claim]:
    return gating_rows(d.summary, exp, d.thresholds["gating_ratio"])


def _small_vs_large(d: ClaimInputs, exp: str) -> list[Claim]:
    return [small_vs_large_row(d.summary, exp, d.thresholds["small_vs_large_margin"])]


def _low_dim(d: ClaimInputs, exp: str) -> list[Claim]:
    return [low_dim_row(d.summary, exp, d.variances.get(exp, math.nan), d.thresholds["low_dim_r2"])]


def _square_rank(d: ClaimInputs, exp: str) -> list[Claim]:
    return [square_rank_row(d.summary, exp, d.thresholds["square_rank"])]


def _fixed_targets(d: ClaimInputs, exp: str) -> list[Claim]:
    return [fixed_targets_row(d.fixed_points[exp], exp, d.thresholds["fixed_target_tol"], n_channels=2)]


def _ring(d: ClaimInputs, exp: str) -> list[Claim]:
    return ring_rows(d.fixed_points[exp], exp, d.thresholds["ring_radius_cv"], d.thresholds["ring_coverage"])


def _memory(d: ClaimInputs, exp: str) -> list[Claim]:
    return memory_rows(d.memory[exp], exp, d.thresholds["memory_error"], d.thresholds["memory_drift"])


# the claims of each task; the continuous ones (a continuum of stored values) get the memory test
TASK_CLAIMS: dict[str, tuple[ClaimBuilder, ...]] = {
    "3bit_fixed": (_gating,),
    "3bit_variable": (_gating, _small_vs_large, _memory),
    "2bit_rectangle": (_gating, _low_dim, _memory),
    "2bit_square": (_gating, _low_dim, _square_rank, _memory),
    "2bit_disk": (_gating, _low_dim, _memory),
    "2bit_ring": (_gating, _low_dim, _ring, _memory),
    "2bit_fixed": (_gating, _low_dim, _fixed_targets),
}


def flipflop_claims(
    summary: pd.DataFrame,
    experiments: dict[str, str],
    fixed_points: dict[str, pd.DataFrame],
    memory: dict[str, pd.DataFrame],
    variances: dict[str, float],
    thresholds: Mapping,
) -> pd.DataFrame:
    """The flip-flop claims rows (:mod:`gnode.claims`) of the configured experiments.

    ``summary``: the flip-flop summary (one row per experiment, model and N); ``experiments``:
    experiment name -> task (only these get rows); ``fixed_points``, ``memory``: each
    experiment's attractor-analysis tables; ``variances``: each experiment's test-target
    variance (:func:`target_variance`); ``thresholds``: config ``flipflop.claims``.
    """
    unknown = sorted(set(experiments.values()) - set(TASK_CLAIMS))
    if unknown:
        raise ValueError(f"flipflop claims: no claims defined for task(s) {unknown}; known: {sorted(TASK_CLAIMS)}")
    inputs = ClaimInputs(summary, fixed_points, memory, variances, thresholds)
    rows: list[Claim] = []
    for exp, task in experiments.items():
        for build in TASK_CLAIMS[task]:
            rows += build(inputs, exp)
    return claims_frame(rows)


def claims_job(
    settings: FlipflopClaimsSettings,
    summary_path: str | Path,
    fixed_point_paths: list[str],
    memory_paths: list[str],
    data_paths: list[str],
    out_claims: str | Path,
    out_html: str | Path | None = None,
) -> pd.DataFrame:
    """Write the flip-flop claims table; the path lists are parallel to ``settings.experiments``."""
    experiments = settings.experiments
    summary = io.read_table(summary_path)
    fps = {e: io.read_table(p) for e, p in zip(experiments, fixed_point_paths)}
    mems = {e: io.read_table(p) for e, p in zip(experiments, memory_paths)}
    variances = {e: target_variance(io.read_table(p)) for e, p in zip(experiments, data_paths)}
    tasks = {e: settings.tasks[e] for e in experiments}
    df = flipflop_claims(summary, tasks, fps, mems, variances, settings.thresholds.model_dump())
    io.write_table(df, out_claims, CLAIMS_SCHEMA, io.provenance(settings.model_dump(mode="json")))
    if out_html:
        with io.atomic_path(out_html) as tmp:
            tmp.write_text(df.to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    return df
