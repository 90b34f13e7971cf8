"""Claims rows: each finding of the study, the statistic that tests it, and whether it holds.

Every part of the study writes its claims as a table with :data:`CLAIMS_SCHEMA`; one rule
gathers them into ``results/claims.parquet`` for the report.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

CLAIMS_SCHEMA = pa.schema(
    [
        ("study", pa.string()),  # flipflop | expressivity | realworld
        ("claim_id", pa.string()),  # short stable identifier, e.g. "ff_gating_3bit_variable"
        ("claim", pa.string()),  # the finding in words
        ("statistic", pa.string()),  # what is measured, in words
        ("comparison", pa.string()),  # how value is compared with threshold: "<", "<=", ">", ">="
        ("threshold", pa.float64()),
        ("value", pa.float64()),
        ("holds", pa.bool_()),  # False also when the value could not be computed (NaN)
        ("note", pa.string()),  # context: sizes, seeds, what was missing
    ]
)

_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def claim(study: str, claim_id: str, claim: str, statistic: str, value: float, comparison: str, threshold: float,
          note: str = "") -> dict:
    """One claims row; ``holds`` is ``value <comparison> threshold`` (False when value is NaN)."""
    if comparison not in _OPS:
        raise ValueError(f"comparison {comparison!r} is not one of {list(_OPS)}")
    value = float(value)
    holds = bool(not math.isnan(value) and _OPS[comparison](value, float(threshold)))
    return {
        "study": study,
        "claim_id": claim_id,
        "claim": claim,
        "statistic": statistic,
        "comparison": comparison,
        "threshold": float(threshold),
        "value": value,
        "holds": holds,
        "note": note,
    }


def claims_frame(rows: list[dict]) -> pd.DataFrame:
    """A DataFrame with the columns of :data:`CLAIMS_SCHEMA` (empty rows allowed)."""
    return pd.DataFrame(rows, columns=CLAIMS_SCHEMA.names)


def gather(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """All claims rows of the study parts in one table, ordered by study and claim."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return claims_frame([])
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
