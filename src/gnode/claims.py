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
