"""Compare two runs' results: every Parquet table under two folders, value by value.

What a reproducibility check needs: the same tables with the same rows and values, timing
columns (:data:`TIMING_COLUMNS`) and the provenance metadata aside. Floats are equal when
``|a - b| <= atol + rtol |b|`` (both 0 by default: bit-identical), NaN equals NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gnode import io

#: wall-clock columns: they differ between any two runs
TIMING_COLUMNS = frozenset({"elapsed_s", "train_time_s", "fit_seconds"})


@dataclass(frozen=True)
class Difference:
    """One table that differs: its path relative to the folders and what differs."""

    path: str
    problem: str


def _flat(value):
    """Nested list/array cells as one flat float array (None for non-numeric cells)."""
    try:
        return np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None


def _column_diff(a: pd.Series, b: pd.Series, atol: float, rtol: float) -> str | None:
    """Why two columns differ, or None when equal within tolerance."""
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        x, y = a.to_numpy(float), b.to_numpy(float)
        bad = ~(np.isclose(x, y, atol=atol, rtol=rtol, equal_nan=True) | (x == y))
        if bad.any():
            return f"{int(bad.sum())} of {len(x)} values differ (max |diff| {np.nanmax(np.abs(x - y)[bad]):.3g})"
        return None
    worst, n_bad = 0.0, 0
    for u, v in zip(a, b, strict=True):
        fu, fv = _flat(u), _flat(v)
        if fu is not None and fv is not None and fu.shape == fv.shape:
            close = np.isclose(fu, fv, atol=atol, rtol=rtol, equal_nan=True)
            if not close.all():
                n_bad += 1
                worst = max(worst, float(np.nanmax(np.abs(fu - fv)[~close])))
        elif not (u == v or (u is None and v is None)):
            n_bad += 1
    return f"{n_bad} of {len(a)} cells differ" + (f" (max |diff| {worst:.3g})" if worst else "") if n_bad else None


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, *, atol: float = 0.0, rtol: float = 0.0,
                   ignore: frozenset[str] = TIMING_COLUMNS) -> list[str]:
    """What differs between two tables (empty: equal), timing columns aside."""
    ca, cb = [c for c in a.columns if c not in ignore], [c for c in b.columns if c not in ignore]
    if ca != cb:
        return [f"columns differ: only in the first {sorted(set(ca) - set(cb))}, only in the second {sorted(set(cb) - set(ca))}"
                if set(ca) != set(cb) else "columns in another order"]
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"]
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return [f"column {c!r}: {why}" for c in ca if (why := _column_diff(a[c], b[c], atol, rtol))]


def compare_folders(first: str | Path, second: str | Path, *, atol: float = 0.0, rtol: float = 0.0,
                    ignore: frozenset[str] = TIMING_COLUMNS) -> tuple[list[Difference], int]:
    """Compare every ``*.parquet`` under two folders; returns (differences, tables compared)."""
    first, second = Path(first), Path(second)
    pa_, pb_ = ({p.relative_to(root).as_posix() for p in root.rglob("*.parquet")} for root in (first, second))
    diffs = [Difference(p, "only in " + str(first if p in pa_ else second)) for p in sorted(pa_ ^ pb_)]
    for rel in sorted(pa_ & pb_):
        for why in compare_tables(io.read_table(first / rel), io.read_table(second / rel), atol=atol, rtol=rtol,
                                  ignore=ignore):
            diffs.append(Difference(rel, why))
    return diffs, len(pa_ & pb_)
