"""scripts/compare_claims.py: two runs' claims side by side."""

import importlib.util
from pathlib import Path

from gnode.claims import claim, claims_frame

_spec = importlib.util.spec_from_file_location(
    "compare_claims", Path(__file__).resolve().parents[2] / "scripts" / "compare_claims.py"
)
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)


def test_table_aligns_claims_of_two_runs_and_counts_what_holds():
    a = claims_frame([claim("flipflop", "ff_x", "x", "s", 0.5, "<", 1.0),
                      claim("flipflop", "ff_y", "y", "s", 2.0, "<", 1.0)])
    b = claims_frame([claim("flipflop", "ff_x", "x", "s", 1.5, "<", 1.0),
                      claim("expressivity", "ex_z", "z", "s", float("nan"), ">", 0.0)])
    lines = compare.table([a, b], ["default", "converged"]).splitlines()
    assert lines[0] == "| claim | threshold | default | converged |"
    assert "| `ff_x` | < 1 | 0.5 (holds) | 1.5 (fails) |" in lines
    assert "| `ff_y` | < 1 | 2 (fails) | — |" in lines
    assert "| `ex_z` | > 0 | — | NaN (fails) |" in lines
    assert "| **flipflop** (hold / all) | | 1/2 | 0/1 |" in lines
    assert "| **expressivity** (hold / all) | | — | 0/1 |" in lines
