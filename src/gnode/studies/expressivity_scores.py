"""The expressivity study's scoring step: capacity K* and AUC per class, and the claims rows.

Apart from the fitting jobs (:mod:`gnode.studies.expressivity`) so that editing the claims
does not re-run any fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gnode import expressivity as ex
from gnode import io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame

if TYPE_CHECKING:  # typing only: the job validates its settings (gnode.jobs); this module reads them
    from gnode.config import ExpressivityClaims, ExpressivitySweep

STUDY = "expressivity"


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    if len(x) < 2 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(x.rank().corr(y.rank()))


def expressivity_claims(scores: pd.DataFrame, thresholds: Mapping) -> pd.DataFrame:
    """The expressivity claims rows (:mod:`gnode.claims`) from the scores (one row per class,
    :func:`gnode.expressivity.score`).

    ``thresholds``: config ``expressivity.claims``. AUC differences below ``auc_tol`` carry no
    signal (e.g. every class of a group fits every target): such groups and pairs are left out
    of rows 1, 2 and 4. Rows:

    1. ``ex_grows_with_n``: AUC grows with N at fixed flow field: median over (flow, gated) of
       Spearman(N, AUC) >= ``spearman_n``.
    2. ``ex_grows_with_flow``: AUC grows with the flow field at fixed N: median over
       (N >= 2, gated) of Spearman(flow rank, AUC) >= ``spearman_flow``.
    3. ``ex_richer_flow_lower_n``: a richer F reaches a given K at lower N: mean over (K, gated)
       of sign(N needed by the simplest flow - N needed by the richest flow) > ``richer_flow_sign``,
       with an N never reached counted as (largest N + 1) and pairs that neither flow reaches
       dropped.
    4. ``ex_gating_helps``: median over (N >= 2, flow) of AUC(gated) - AUC(non-gated) >
       ``gating_auc_gain``.
    5. ``ex_linear_check``, analytic: a linear non-gated F has K* = min(floor(N / 2), k_max) for
       a fraction >= ``linear_fraction`` of the N.

    A claim whose statistic cannot be computed (e.g. a single flow) has value NaN and
    ``holds = False``.
    """
    th = thresholds
    tol = th["auc_tol"]
    note = f"N in {sorted(scores['n'].unique())}, {scores['flow'].nunique()} flow fields"
    rows = []

    def spread(g):
        return g["auc"].max() - g["auc"].min() >= tol

    rhos = [_spearman(g["n"], g["auc"]) for _, g in scores.groupby(["flow_rank", "gated"]) if spread(g)]
    v = float(np.nanmedian(rhos)) if rhos and np.isfinite(rhos).any() else math.nan
    rows.append(claim(
        STUDY, "ex_grows_with_n", "Expressivity grows with the phase-space dimension N at a fixed flow field F",
        f"median over (flow, gated) of the Spearman correlation between N and AUC (groups with AUC range < {tol} "
        "left out)", v, ">=", th["spearman_n"], note))

    big = scores[scores["n"] >= 2]
    rhos = [_spearman(g["flow_rank"], g["auc"]) for _, g in big.groupby(["n", "gated"]) if spread(g)]
    v = float(np.nanmedian(rhos)) if rhos and np.isfinite(rhos).any() else math.nan
    rows.append(claim(
        STUDY, "ex_grows_with_flow", "Expressivity grows with the flow-field complexity (depth, width) at a fixed N",
        "median over (N >= 2, gated) of the Spearman correlation between flow rank (simplest to richest) and AUC "
        f"(groups with AUC range < {tol} left out)", v, ">=", th["spearman_flow"], note))

    signs = []
    if scores["flow_rank"].nunique() >= 2:
        lo_rank, hi_rank = scores["flow_rank"].min(), scores["flow_rank"].max()
        cap = scores["n"].max() + 1
        for k in range(1, int(scores["k_max"].max()) + 1):
            need = ex.n_needed(scores, k)
            for _gated, g in need.groupby("gated"):
                a = g.loc[g["flow_rank"] == lo_rank, "n_needed"]
                b = g.loc[g["flow_rank"] == hi_rank, "n_needed"]
                if a.empty or b.empty or (a.isna().all() and b.isna().all()):
                    continue
                signs.append(np.sign(a.fillna(cap).iloc[0] - b.fillna(cap).iloc[0]))
    v = float(np.mean(signs)) if signs else math.nan
    rows.append(claim(
        STUDY, "ex_richer_flow_lower_n", "A richer flow field reaches a given complexity K at a lower N",
        "mean over (K, gated) of sign(N needed by the simplest flow - N needed by the richest flow); "
        "N not reached = largest N + 1; pairs neither reaches dropped", v, ">", th["richer_flow_sign"], note))

    diffs = []
    for _, g in big.groupby(["n", "flow_rank"]):
        if g["gated"].nunique() == 2:
            d = g.loc[g["gated"], "auc"].iloc[0] - g.loc[~g["gated"], "auc"].iloc[0]
            if abs(d) >= tol:
                diffs.append(d)
    v = float(np.median(diffs)) if diffs else math.nan
    rows.append(claim(
        STUDY, "ex_gating_helps", "Gating increases expressivity at the same N and flow field",
        f"median over (N >= 2, flow) of AUC(gated) - AUC(non-gated) (pairs closer than {tol} left out)",
        v, ">", th["gating_auc_gain"], note))

    lin = scores[(scores["activation"] == "linear") & (scores["depth"] == 0) & (~scores["gated"])]
    v = float(np.mean(lin["k_star"] == np.minimum(lin["n"] // 2, lin["k_max"]))) if len(lin) else math.nan
    rows.append(claim(
        STUDY, "ex_linear_check", "Analytic check: a linear flow field of dimension N has capacity K* = floor(N/2)",
        "fraction of N (linear F, non-gated) with K* = min(floor(N/2), k_max)", v, ">=", th["linear_fraction"], note))
    return claims_frame(rows)


def score_job(sweep: ExpressivitySweep, thresholds: ExpressivityClaims, fit_paths: list[str], out_scores,
              out_claims) -> pd.DataFrame:
    """Score every class from the fits of all jobs; write the scores and the claims
    (``thresholds``: config ``expressivity.claims``)."""
    fits = pd.concat([io.read_table(p) for p in fit_paths], ignore_index=True)
    scores = ex.score(fits, sweep.threshold, flow_order=[ex.flow_label(f.model_dump()) for f in sweep.flows])
    th = thresholds.model_dump()
    prov = io.provenance({"sweep": sweep.model_dump(mode="json"), "claims": th, "inputs": sorted(map(str, fit_paths))})
    io.write_table(scores[ex.SCORE_COLUMNS], out_scores, ex.SCORE_SCHEMA, prov)
    io.write_table(expressivity_claims(scores, th), out_claims, CLAIMS_SCHEMA, prov)
    return scores
