"""Flip-flop claims on tables whose answer is known: memory against the stored value, the square
task's ranking, the fixed points of the 2-bit fixed task, and which rows each task gets."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gnode import attractors as att
from gnode.config import FlipFlopClaims
from gnode.models import ModelSpec, RecurrentEnsemble
from gnode.studies import flipflop_analysis as ffa
from gnode.studies import flipflop_claims as fc

TAU, DT = 0.1, 0.05  # Euler factor dt / tau = 0.5 per bin
THRESHOLDS = FlipFlopClaims().model_dump()


def integrator(leak: float) -> RecurrentEnsemble:
    """nODE with tau dh/dt = -leak h + x U, U = I / 1.5, readout y = h.

    leak = 0: a perfect memory (three pulse bins store h = 3 * 0.5 * v / 1.5 = v and nothing
    moves afterwards); leak = 1: h relaxes to 0 by half per bin, so the model forgets within the
    settling bins and its readout then stays at 0.
    """
    spec = ModelSpec(kind="node", n_input=2, n_hidden=2, n_output=2, depth=0, activation="linear", tau=TAU, dt=DT)
    m = RecurrentEnsemble(spec, [0], dtype=torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.W_1[0] = torch.eye(2) * (1 - leak)  # F = h W + x U: tau dh/dt = F - h
        m.U_1[0] = torch.eye(2) / 1.5
        m.W_o[0] = torch.eye(2)
    return m


def memory_table(m: RecurrentEnsemble, model: str, task: str = "2bit_square", test_loss: float = 0.1) -> pd.DataFrame:
    mem = att.memory_test(m, task, n_bins=20, pulse_width=3, n_probes=64, horizons=10, settle_bins=10, samples=8,
                          seed=0)
    ev = pd.DataFrame({"member": [0], "status": ["ok"], "test_loss": [test_loss]})
    key = {"experiment": "sq", "task": task, "model": model, "n": 2}
    return ffa.memory_tables(mem, key, ev, 0, 64)[0]


def memory_rows(table: pd.DataFrame) -> dict[str, dict]:
    rows = fc.memory_rows(table, "sq", THRESHOLDS["memory_error"], THRESHOLDS["memory_drift"])
    return {r["claim_id"]: r for r in rows}


# ------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("task", ["2bit_square", "2bit_ring"])
def test_a_perfect_memory_passes_both_memory_claims(task):
    table = memory_table(integrator(0.0), "gnode", task)
    assert table[["relative_error_settle", "relative_error_1x", "relative_error_end", "relative_drift"]].to_numpy() \
        == pytest.approx(0, abs=1e-6)
    rows = memory_rows(table)
    assert rows["ff_memory_sq"]["value"] == pytest.approx(0, abs=1e-6) and rows["ff_memory_sq"]["holds"]
    assert rows["ff_memory_drift_sq"]["value"] == pytest.approx(0, abs=1e-6) and rows["ff_memory_drift_sq"]["holds"]


@pytest.mark.parametrize("task", ["2bit_square", "2bit_ring"])
def test_a_model_that_collapses_to_one_fixed_point_fails_memory_but_passes_drift(task):
    table = memory_table(integrator(1.0), "gnode", task)
    # after 10 settling bins h is 2^-10 of what the pulses left: the readout sits at the origin,
    # so its error is the norm of the stored value (relative error 1) and it no longer moves
    row = table.iloc[0]
    for col in ("relative_error_settle", "relative_error_1x", "relative_error_end"):
        assert row[col] == pytest.approx(1, abs=2e-3), col
    assert row["relative_drift"] < 2e-3
    rows = memory_rows(table)
    assert rows["ff_memory_sq"]["value"] == pytest.approx(1, abs=2e-3) and not rows["ff_memory_sq"]["holds"]
    assert rows["ff_memory_drift_sq"]["holds"]


def test_memory_claims_use_the_best_gnode_and_quote_the_other_models():
    good = memory_table(integrator(0.0), "gnode", test_loss=0.01)
    forgetful = memory_table(integrator(1.0), "gnode", test_loss=0.5).assign(n=3)  # a worse gnODE size
    node = memory_table(integrator(1.0), "node")
    rows = memory_rows(pd.concat([forgetful, good, node], ignore_index=True))
    err = rows["ff_memory_sq"]
    assert err["holds"] and "gnODE N=2" in err["note"] and "node (best, N=2): 1" in err["note"]
    assert math.isnan(memory_rows(node)["ff_memory_sq"]["value"])  # no gnODE analysed
    assert not memory_rows(node)["ff_memory_drift_sq"]["holds"]


def test_memory_error_is_the_worst_of_the_three_times():
    row = pd.Series({"relative_error_settle": 0.05, "relative_error_1x": 0.1, "relative_error_end": 0.6})
    assert fc.memory_error(row) == pytest.approx(0.6)
    assert math.isnan(fc.memory_error(row.replace(0.1, math.nan)))


# ------------------------------------------------------------------------------ square ranking
def square_summary(losses: dict[str, float]) -> pd.DataFrame:
    rows = [("sq", "2bit_square", m, 2, v, 2 * v) for m, v in losses.items()]
    rows.append(("sq", "2bit_square", "node", 6, 1e-9, 1e-9))  # another N: never compared
    return pd.DataFrame(rows, columns=["experiment", "task", "model", "n", "best_test_loss", "median_test_loss"])


def test_square_rank_counts_the_baselines_with_a_lower_best_loss():
    losses = {"rnn": 0.04, "gru": 0.02, "mgru": 0.05, "node": 0.08, "gnode": 0.03}
    row = fc.square_rank_row(square_summary(losses), "sq", 1)
    assert row["value"] == 2 and not row["holds"]  # only the GRU is better
    assert row["note"].index("gru") < row["note"].index("gnode") < row["note"].index("rnn")
    assert fc.square_rank_row(square_summary(losses), "sq", 2)["holds"]
    best = fc.square_rank_row(square_summary({**losses, "gnode": 0.01}), "sq", 1)
    assert best["value"] == 1 and best["holds"] and best["threshold"] == 1


def test_square_rank_treats_a_diverged_baseline_as_worse_and_a_missing_one_as_no_answer():
    losses = {"rnn": math.nan, "gru": 0.02, "mgru": 0.05, "node": 0.08, "gnode": 0.01}
    row = fc.square_rank_row(square_summary(losses), "sq", 1)
    assert row["value"] == 1 and row["holds"] and "rnn diverged" in row["note"]
    missing = fc.square_rank_row(square_summary({k: v for k, v in losses.items() if k != "mgru"}), "sq", 1)
    assert math.isnan(missing["value"]) and not missing["holds"] and "not trained at N=2: mgru" in missing["note"]
    no_gnode = fc.square_rank_row(square_summary({**losses, "gnode": math.nan}), "sq", 5)
    assert math.isnan(no_gnode["value"]) and not no_gnode["holds"]


# ------------------------------------------------------------------------------ 2-bit fixed
def points(readouts, *, stable=True, is_fixed=True, model="gnode", n=2) -> list[dict]:
    return [{"model": model, "n": n, "stable": stable, "is_fixed": is_fixed, "readout": list(r)} for r in readouts]


CORNERS = [(1, 1), (1, -1), (-1, 1), (-1, -1)]


def test_fixed_targets_claim_needs_a_stable_fixed_point_near_each_of_the_four_states():
    near = [(x + 0.05, y - 0.1) for x, y in CORNERS]
    extra = points([(0, 0)], stable=False) + points([(5, 5)], model="node")  # a saddle; another model
    row = fc.fixed_targets_row(pd.DataFrame(points(near) + extra), "f", 0.25)
    assert row["value"] == pytest.approx(math.hypot(0.05, 0.1)) and row["holds"] and "4 of 4" in row["note"]
    # one target missing: (-1, -1); its nearest stable fixed point is the one near (-1, +1)
    three = pd.DataFrame(points(near[:3]) + extra)
    row = fc.fixed_targets_row(three, "f", 0.25)
    assert row["value"] == pytest.approx(math.hypot(0.05, 2 - 0.1)) and not row["holds"] and "3 of 4" in row["note"]
    # the fourth point exists but is unstable, or only slow: still missing
    for flags in ({"stable": False}, {"is_fixed": False}):
        df = pd.DataFrame(points(near[:3]) + points(near[3:], **flags))
        assert not fc.fixed_targets_row(df, "f", 0.25)["holds"]
    none = fc.fixed_targets_row(pd.DataFrame(extra), "f", 0.25)
    assert math.isnan(none["value"]) and not none["holds"]


# ------------------------------------------------------------------------------ rows per task
def test_each_configured_experiment_gets_the_rows_of_its_task():
    summary = square_summary({"rnn": 0.04, "gru": 0.02, "mgru": 0.05, "node": 0.08, "gnode": 0.01})
    summary = pd.concat([summary, summary.assign(experiment="fx", task="2bit_fixed")], ignore_index=True)
    mem = memory_table(integrator(0.0), "gnode")
    fps = {"sq": pd.DataFrame(points(CORNERS)), "fx": pd.DataFrame(points(CORNERS))}
    df = fc.flipflop_claims(summary, {"sq": "2bit_square", "fx": "2bit_fixed"}, fps, {"sq": mem, "fx": mem},
                            {"sq": 1.0, "fx": 1.0}, THRESHOLDS)
    assert sorted(df["claim_id"]) == sorted(
        [f"ff_gating_{w}_{e}" for w in ("best", "median") for e in ("sq", "fx")]
        + ["ff_low_dim_r2_sq", "ff_low_dim_r2_fx", "ff_square_rank_sq", "ff_memory_sq", "ff_memory_drift_sq",
           "ff_fixed_targets_fx"]
    )
    assert df.set_index("claim_id")[["holds"]].loc[["ff_square_rank_sq", "ff_fixed_targets_fx", "ff_memory_sq"]].all().all()
    only = fc.flipflop_claims(summary, {"fx": "2bit_fixed"}, fps, {}, {}, THRESHOLDS)
    assert not only["claim_id"].str.endswith("_sq").any()  # an experiment not configured gets no row
    with pytest.raises(ValueError, match="2bit_triangle"):
        fc.flipflop_claims(summary, {"t": "2bit_triangle"}, fps, {}, {}, THRESHOLDS)


def test_memory_table_columns_match_the_schema():
    table = memory_table(integrator(0.5), "gnode")
    assert list(table.columns) == ffa.MEMORY_SCHEMA.names
    np.testing.assert_allclose(table["relative_error_end"], table["error_end"] / table["stored_norm"])
