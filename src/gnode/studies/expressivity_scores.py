"""The expressivity study's scoring step: capacity K* and AUC per class, and the claims rows.

Apart from the fitting jobs (:mod:`gnode.studies.expressivity`) so that editing the claims
does not re-run any fit.
"""

from __future__ import annotations

import pandas as pd

from gnode import expressivity as ex
from gnode import io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame


def _claims_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The measure's claims in the shared claims schema."""
    ids = ["ex_grows_with_n", "ex_grows_with_flow", "ex_richer_flow_lower_n", "ex_gating_helps", "ex_linear_check"]
    comparisons = [">=", ">=", ">", ">", ">="]
    rows = []
    for cid, cmp, r in zip(ids, comparisons, ex.claims(scores).itertuples()):
        rows.append(claim("expressivity", cid, r.claim, r.statistic, r.value, cmp, r.threshold,
                          note=f"N in {sorted(scores['n'].unique())}, {scores['flow'].nunique()} flow fields"))
    return claims_frame(rows)


def score_job(cfg_sweep: dict, fit_paths: list[str], out_scores, out_claims) -> pd.DataFrame:
    """Score every class from the fits of all jobs; write the scores and the claims."""
    fits = pd.concat([io.read_table(p) for p in fit_paths], ignore_index=True)
    s = ex.resolve_settings(cfg_sweep)
    scores = ex.score(fits, s["threshold"], flow_order=[ex.flow_label(f) for f in s["flows"]])
    prov = io.provenance({"sweep": cfg_sweep, "inputs": sorted(map(str, fit_paths))})
    io.write_table(scores[ex.SCORE_COLUMNS], out_scores, ex.SCORE_SCHEMA, prov)
    io.write_table(_claims_rows(scores), out_claims, CLAIMS_SCHEMA, prov)
    return scores
