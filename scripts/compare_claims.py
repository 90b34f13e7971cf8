"""Two runs' claims side by side, as a Markdown table (docs/results.md is written from it).

    .venv/bin/python scripts/compare_claims.py DEFAULT/results/claims.parquet OTHER/results/claims.parquet \
        [--names default converged]

One row per claim id of either run: its threshold and, for each run, the value and whether it
holds ("—" where a run has no such claim); then the count of claims that hold in each run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gnode import io  # noqa: E402


def cell(row) -> str:
    if row is None:
        return "—"
    v = row["value"]
    text = "NaN" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"
    return f"{text} ({'holds' if row['holds'] else 'fails'})"


def table(frames: list, names: list[str]) -> str:
    ids = sorted(set().union(*(set(f["claim_id"]) for f in frames)))
    rows = [f.set_index("claim_id") for f in frames]
    out = ["| claim | threshold | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for cid in ids:
        first = next(r.loc[cid] for r in rows if cid in r.index)
        cells = [cell(r.loc[cid] if cid in r.index else None) for r in rows]
        out.append(f"| `{cid}` | {first['comparison']} {first['threshold']:g} | " + " | ".join(cells) + " |")
    for study in sorted(set().union(*(set(f["study"]) for f in frames))):
        counts = [f"{int(f[f['study'] == study]['holds'].sum())}/{n}" if (n := int((f["study"] == study).sum())) else "—"
                  for f in frames]  # "—": the run has no claim of the study
        out.append(f"| **{study}** (hold / all) | | " + " | ".join(counts) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("claims", nargs="+", type=Path, help="claims.parquet of each run")
    ap.add_argument("--names", nargs="+", default=None, help="a column name per run (default: the paths)")
    a = ap.parse_args()
    names = a.names or [str(p) for p in a.claims]
    if len(names) != len(a.claims):
        ap.error(f"{len(a.claims)} claims files but {len(names)} names")
    print(table([io.read_table(p) for p in a.claims], names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
