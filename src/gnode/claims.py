"""Claims rows: each finding of the study, the statistic that tests it, and whether it holds.

Every study part has exactly one function that turns its result tables into claims rows,
``<study>_claims(<tables>, thresholds) -> DataFrame`` (registered in :data:`STUDY_CLAIMS`),
with the thresholds from its config section (``<study>.claims``); each row is a :class:`Claim`
made by :func:`claim`, and the frame has the columns and dtypes of :data:`CLAIMS_SCHEMA`
(:func:`claims_frame`). Each study's job writes its table; one rule gathers them into
``results/claims.parquet`` for the report (:func:`gather_job`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from typing import TypedDict

import pandas as pd
import pyarrow as pa

CLAIMS_SCHEMA = pa.schema(
    [
        ("study", pa.string()),  # a key of STUDY_CLAIMS
        ("claim_id", pa.string()),  # short stable identifier, e.g. "ff_gating_best_3bit_variable"
        ("claim", pa.string()),  # the finding in words
        ("statistic", pa.string()),  # what is measured, in words
        ("comparison", pa.string()),  # how value is compared with threshold: "<", "<=", ">", ">="
        ("threshold", pa.float64()),
        ("value", pa.float64()),
        ("holds", pa.bool_()),  # False also when the value could not be computed (NaN)
        ("note", pa.string()),  # context: sizes, seeds, what was missing
    ]
)

#: study -> "module:function" of its claims function (imported when asked for, so that the
#: gathering job's code hash does not cover the studies' code)
STUDY_CLAIMS: dict[str, str] = {
    "flipflop": "gnode.studies.flipflop_claims:flipflop_claims",
    "expressivity": "gnode.studies.expressivity_scores:expressivity_claims",
    "realworld": "gnode.studies.realworld_summary:realworld_claims",
    "trainability": "gnode.studies.trainability_summary:trainability_claims",
}


class Claim(TypedDict):
    """One claims row (the columns of :data:`CLAIMS_SCHEMA`); made by :func:`claim`."""

    study: str
    claim_id: str
    claim: str
    statistic: str
    comparison: str
    threshold: float
    value: float
    holds: bool
    note: str


_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_DTYPES = {name: "object" for name in CLAIMS_SCHEMA.names} | {"threshold": "float64", "value": "float64", "holds": "bool"}


def claims_function(study: str) -> Callable[..., pd.DataFrame]:
    """The claims function of ``study`` (:data:`STUDY_CLAIMS`)."""
    if study not in STUDY_CLAIMS:
        raise ValueError(f"no claims function for study {study!r}; known: {sorted(STUDY_CLAIMS)}")
    module, name = STUDY_CLAIMS[study].split(":")
    return getattr(importlib.import_module(module), name)


def claim(study: str, claim_id: str, claim: str, statistic: str, value: float, comparison: str, threshold: float,
          note: str = "") -> Claim:
    """One claims row; ``holds`` is ``value <comparison> threshold`` (False when value is NaN)."""
    if comparison not in _OPS:
        raise ValueError(f"comparison {comparison!r} is not one of {list(_OPS)}")
    value = float(value)
    holds = bool(not math.isnan(value) and _OPS[comparison](value, float(threshold)))
    return Claim(study=study, claim_id=claim_id, claim=claim, statistic=statistic, comparison=comparison,
                 threshold=float(threshold), value=value, holds=holds, note=note)


def claims_frame(rows: Iterable[Claim]) -> pd.DataFrame:
    """The rows as a DataFrame with the columns of :data:`CLAIMS_SCHEMA`, in order, and their
    dtypes (floats, bool, strings as objects), also when there are no rows."""
    return pd.DataFrame(list(rows), columns=CLAIMS_SCHEMA.names).astype(_DTYPES)


def gather(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All claims rows of the study parts in one table, ordered by study and claim; a row of a
    study without a claims function (:data:`STUDY_CLAIMS`) is an error."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return claims_frame([])
    unknown = sorted(set().union(*(f["study"] for f in parts)) - set(STUDY_CLAIMS))
    if unknown:
        raise ValueError(f"claims rows of studies without a claims function: {unknown}; known: {sorted(STUDY_CLAIMS)}")
    out = pd.concat(parts, ignore_index=True)[CLAIMS_SCHEMA.names]
    return out.sort_values(["study", "claim_id"], kind="stable").reset_index(drop=True)


def to_html(df: pd.DataFrame) -> str:
    """A readable, self-contained HTML table of the claims (holds in green, fails in red)."""
    import html

    head = "".join(f"<th>{c}</th>" for c in ["study", "claim", "statistic", "value", "test", "holds", "note"])
    rows = []
    for r in df.itertuples():
        colour = "#d8f3dc" if r.holds else "#ffd6d6"
        rows.append(
            f'<tr style="background:{colour}"><td>{html.escape(r.study)}</td><td>{html.escape(r.claim)}</td>'
            f"<td>{html.escape(r.statistic)}</td><td>{r.value:.4g}</td>"
            f"<td>value {html.escape(r.comparison)} {r.threshold:.4g}</td><td>{'yes' if r.holds else 'no'}</td>"
            f"<td>{html.escape(r.note)}</td></tr>"
        )
    if not rows:
        rows = ['<tr><td colspan="7">no claims in the results yet</td></tr>']
    n_hold = int(df["holds"].sum()) if len(df) else 0
    return (
        "<html><head><meta charset='utf-8'><title>gnode claims</title></head><body>"
        f"<h2>Claims of the study: {n_hold} of {len(df)} hold at this scale</h2>"
        "<table border='1' cellspacing='0' cellpadding='4' style='border-collapse:collapse;font-family:sans-serif'>"
        f"<tr>{head}</tr>{''.join(rows)}</table></body></html>"
    )


def gather_job(paths: list[str], out_table, out_html) -> pd.DataFrame:
    """Gather the claims files of the study parts into one Parquet table and its HTML view."""
    from gnode import io

    df = gather([io.read_table(p) for p in paths])
    io.write_table(df, out_table, CLAIMS_SCHEMA, io.provenance({"inputs": sorted(map(str, paths))}))
    with io.atomic_path(out_html) as tmp:
        tmp.write_text(to_html(df))
    return df
