"""The real-world benchmarks' last step: the summary over seeds and the gating claims.

Apart from :mod:`gnode.studies.realworld` (data and training) so that editing the claims does
not re-run any training: the summary job imports only this module, the claims and I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from gnode import io
from gnode.claims import CLAIMS_SCHEMA, claim, claims_frame

if TYPE_CHECKING:  # typing only: the job validates its settings (gnode.jobs); this module reads them
    from gnode.config import RealWorldClaims

STUDY = "realworld"

SUMMARY_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("metric", pa.string()),
        ("n_seeds", pa.int32()),
        ("n_ok", pa.int32()),
        ("mean", pa.float64()),
        ("sd", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("n_hidden", pa.int32()),
        ("n_params", pa.int64()),
        ("budget", pa.int64()),
        ("train_time_s", pa.float64()),
    ]
)


def summarise(evaluations: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model): the test metric's mean, sd (ddof 1), min and max over seeds."""
    rows = []
    for (task, model), g in evaluations.groupby(["task", "model"], sort=True):
        ok = g.loc[g["status"] == "ok", "test_metric"].dropna()
        rows.append(
            {
                "task": task,
                "dataset": g["dataset"].iloc[0],
                "model": model,
                "metric": g["metric"].iloc[0],
                "n_seeds": len(g),
                "n_ok": len(ok),
                "mean": ok.mean() if len(ok) else math.nan,
                "sd": ok.std(ddof=1) if len(ok) > 1 else math.nan,
                "min": ok.min() if len(ok) else math.nan,
                "max": ok.max() if len(ok) else math.nan,
                "n_hidden": int(g["n_hidden"].iloc[0]),
                "n_params": int(g["n_params"].iloc[0]),
                "budget": int(g["budget"].iloc[0]),
                "train_time_s": float(g["train_time_s"].max()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_SCHEMA.names)


def realworld_claims(evaluations: pd.DataFrame, thresholds: Mapping) -> pd.DataFrame:
    """The real-world claims rows (:mod:`gnode.claims`): on each task, gnODE beats nODE (paired by seed).

    ``evaluations``: one row per (task, model, seed) (the training jobs' evaluation tables);
    ``thresholds``: config ``realworld.claims``. Per task two rows: ``rw_gating_<task>``, the mean
    improvement (nODE - gnODE test MSE, or gnODE - nODE test accuracy) > ``improvement``, and
    ``rw_gating_<task>_significant``, that mean over its standard error (paired over seeds) >
    ``t_statistic``. A task without both models, or with no paired seed, gives NaN values
    (``holds`` False) and says why.
    """
    rows = []
    for task, g in evaluations.groupby("task", sort=True):
        metric = g["metric"].iloc[0]
        ok = g[g["status"] == "ok"]
        by = ok.pivot_table(index="seed", columns="model", values="test_metric")
        if {"node", "gnode"} <= set(by.columns):
            paired = by[["node", "gnode"]].dropna()
            diff = paired["node"] - paired["gnode"] if metric == "mse" else paired["gnode"] - paired["node"]
        else:
            paired, diff = by.iloc[:0], pd.Series(dtype=float)
        n = len(diff)
        mean = diff.mean() if n else math.nan
        sd = diff.std(ddof=1) if n > 1 else math.nan
        t = mean / (sd / math.sqrt(n)) if n > 1 and sd > 0 else math.nan
        stat_word = "test MSE of nODE minus gnODE" if metric == "mse" else "test accuracy of gnODE minus nODE"

        def fmt(model):
            vals = paired[model] if model in paired else pd.Series(dtype=float)
            return f"{vals.mean():.4g} ± {vals.std(ddof=1):.2g}" if len(vals) > 1 else "n/a"

        note = (
            f"{n} paired seeds; difference {mean:.4g} ± {sd:.2g} (mean ± sd over seeds); "
            f"nODE {fmt('node')}, gnODE {fmt('gnode')} ({metric}); matched parameter budget "
            f"{int(g['budget'].iloc[0])}" + ("" if n else "; nODE or gnODE results missing")
        )
        rows.append(
            claim(STUDY, f"rw_gating_{task}", f"Gating improves nODEs on {task}",
                  f"mean over seeds of the {stat_word}", mean, ">", thresholds["improvement"], note)
        )
        rows.append(
            claim(STUDY, f"rw_gating_{task}_significant", f"The gating improvement on {task} exceeds its seed spread",
                  f"paired t statistic over seeds of the {stat_word}", t, ">", thresholds["t_statistic"], note)
        )
    return claims_frame(rows)


def summarise_job(thresholds: RealWorldClaims, eval_paths: list[str], out_summary: str | Path, out_claims: str | Path,
                  out_html: str | Path | None = None) -> pd.DataFrame:
    """Gather the evaluations into the summary and claims tables (Parquet; HTML for reading);
    ``thresholds``: config ``realworld.claims``."""
    th = thresholds.model_dump()
    ev = pd.concat([io.read_table(p) for p in eval_paths], ignore_index=True)
    summary = summarise(ev)
    prov = io.provenance({"claims": th, "inputs": sorted(map(str, eval_paths))})
    io.write_table(summary, out_summary, SUMMARY_SCHEMA, prov)
    claims = realworld_claims(ev, th)
    io.write_table(claims, out_claims, CLAIMS_SCHEMA, prov)
    if out_html:
        with io.atomic_path(out_html) as tmp:
            tmp.write_text(
                summary.to_html(index=False, float_format=lambda v: f"{v:.4g}")
                + "\n<h3>Claims</h3>\n"
                + claims.to_html(index=False, float_format=lambda v: f"{v:.4g}")
            )
    return summary
