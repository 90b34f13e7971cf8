"""gnode.compare and `python -m gnode compare`: two runs' tables value by value."""

import pandas as pd
import pyarrow as pa
import pytest

from gnode import compare, io
from gnode.__main__ import main

SCHEMA = pa.schema([("model", pa.string()), ("loss", pa.float64()), ("curve", pa.list_(pa.float64())),
                    ("elapsed_s", pa.float64())])


def _write(root, rel, loss=(0.5, float("nan")), curve=((1.0, 2.0), (3.0, 4.0)), elapsed=(1.0, 2.0), seed=0):
    df = pd.DataFrame({"model": ["gru", "gnode"], "loss": list(loss), "curve": [list(c) for c in curve],
                       "elapsed_s": list(elapsed)})
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_table(df, path, SCHEMA, io.provenance({"seed": seed}))


@pytest.fixture
def runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, elapsed, seed in ((a, (1.0, 2.0), 0), (b, (7.0, 9.0), 1)):  # timing and provenance differ
        _write(root, "flipflop/summary.parquet", elapsed=elapsed, seed=seed)
    return a, b


def test_equal_runs_differ_only_in_timing_and_provenance(runs):
    diffs, n = compare.compare_folders(*runs)
    assert (diffs, n) == ([], 1)


def test_a_changed_value_a_changed_list_cell_and_a_missing_table_are_reported(runs):
    a, b = runs
    _write(b, "flipflop/summary.parquet", loss=(0.5000001, float("nan")), curve=((1.0, 2.0), (3.0, 4.5)))
    _write(a, "realworld/summary.parquet")
    diffs, n = compare.compare_folders(a, b)
    assert n == 1
    problems = {d.path: [] for d in diffs}
    for d in diffs:
        problems[d.path].append(d.problem)
    assert problems["realworld/summary.parquet"] == [f"only in {a}"]
    loss, curve = problems["flipflop/summary.parquet"]
    assert loss.startswith("column 'loss': 1 of 2 values differ (max |diff| 1e-07)")
    assert curve == "column 'curve': 1 of 2 cells differ (max |diff| 0.5)"
    # within a tolerance the small difference goes away, the large one stays
    diffs, _ = compare.compare_folders(a, b, atol=1e-6)
    assert [d.problem for d in diffs if d.path.startswith("flipflop")] == [curve]


def test_the_command_exits_1_on_a_difference_and_0_without(runs, capsys):
    a, b = runs
    assert main(["compare", str(a), str(b)]) == 0
    assert "1 tables in both, 0 differ" in capsys.readouterr().out
    _write(b, "flipflop/summary.parquet", loss=(0.4, float("nan")))
    assert main(["compare", str(a), str(b)]) == 1
    assert "DIFFERS  flipflop/summary.parquet: column 'loss'" in capsys.readouterr().out
    assert main(["compare", str(a), str(a / "nope")]) == 2
