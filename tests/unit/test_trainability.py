"""The trainability study: epochs to threshold, derived columns, claims on synthetic tables, one tiny job."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from gnode import io, plan
from gnode.config import ConfigError, validate_config
from gnode.models import RecurrentEnsemble, input_means
from gnode.studies import flipflop_data as ffd
from gnode.studies import trainability as tr
from gnode.studies import trainability_summary as trs

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = {"loss_fraction": 0.5, "compare_epoch": 3, "eta_tolerance": 0.05, "critical_ratio": 1.0,
              "gating_epochs_ratio": 1.0}


def test_epochs_to_threshold_is_the_first_epoch_at_or_below_the_fraction():
    assert trs.epochs_to_threshold([1.0, 0.8, 0.6, 0.5, 0.4], 0.5) == 3.0  # at the threshold counts
    assert trs.epochs_to_threshold([1.0, 0.4, 0.9, 0.3], 0.5) == 1.0
    assert math.isnan(trs.epochs_to_threshold([1.0, 0.8, 0.7], 0.5))  # never reached
    assert math.isnan(trs.epochs_to_threshold([1.0, np.nan, np.nan], 0.5))  # diverged
    assert math.isnan(trs.epochs_to_threshold([np.inf, 1.0], 0.5))  # no finite initial loss
    assert math.isnan(trs.epochs_to_threshold([1.0], 0.5))
    # an exploding start does not make the threshold easy: the reference is capped
    assert trs.epochs_to_threshold([1e6, 0.4, 0.2], 0.5) == 1.0
    assert trs.epochs_to_threshold([1e6, 0.4, 0.2], 0.5, cap=0.5) == 2.0
    assert trs.epochs_to_threshold([0.3, 0.2, 0.15], 0.5, cap=0.5) == 2.0  # below the cap: the initial loss


def _history(curves: dict) -> pd.DataFrame:
    rows = []
    for (model, depth, act, init, seed), losses in curves.items():
        for epoch, v in enumerate(losses):
            rows.append({"model": model, "depth": depth, "activation": act, "init": init, "seed": seed,
                         "member": seed, "epoch": epoch, "train_loss": v, "test_loss": v, "elapsed_s": 0.0})
    return pd.DataFrame(rows)


def test_derived_columns_from_the_history():
    curves = {("node", 1, "relu", "xavier", 0): [1.0, 0.7, 0.4, 0.3],
              ("node", 1, "relu", "critical", 0): [2.0, np.nan, np.nan, np.nan]}
    members = pd.DataFrame([dict(zip(tr.CELL + ["seed"], k)) for k in curves]).assign(zero_output_test_loss=0.7)
    out = trs.add_derived(members, _history(curves), 0.5, 3)
    assert out["epochs_to_threshold"].iloc[0] == 3.0 and math.isnan(out["epochs_to_threshold"].iloc[1])
    out = trs.add_derived(members.assign(zero_output_test_loss=5.0), _history(curves), 0.5, 3)
    assert out["epochs_to_threshold"].iloc[0] == 2.0
    assert out["compare_loss"].iloc[0] == 0.3 and out["compare_loss"].iloc[1] == math.inf


def _members(rows):
    base = {"status": "ok", "best_test_loss": 0.1, "grad_norm": 1.0, "grad_ratio_first": 0.5}
    return pd.DataFrame([base | dict(zip(tr.CELL + ["seed", "eta_max", "compare_loss", "epochs_to_threshold"], r))
                         for r in rows])


def test_claims_on_a_synthetic_table_hold_and_fail_as_constructed():
    nan = math.nan
    rows = [
        # model, depth, act, init, seed, eta_max, compare_loss, epochs_to_threshold
        ("node", 1, "relu", "critical", 0, 0.01, 0.1, 2), ("node", 1, "relu", "critical", 1, -0.03, 0.1, 2),
        ("node", 1, "relu", "xavier", 0, -0.5, 0.2, nan), ("node", 1, "relu", "xavier", 1, -0.6, 0.2, 6),
        ("node", 2, "relu", "critical", 0, 0.02, 0.4, 4), ("node", 2, "relu", "xavier", 0, -0.4, 0.2, 8),
        ("node", 1, "tanh", "critical", 0, 0.2, 0.1, 3), ("node", 1, "tanh", "xavier", 0, -0.3, 0.2, nan),
        ("node", 2, "tanh", "critical", 0, 0.0, 0.1, 3), ("node", 2, "tanh", "xavier", 0, -0.3, 0.2, nan),
        ("gnode", 1, "relu", "critical", 0, 0.0, 0.1, 1), ("gnode", 1, "relu", "xavier", 0, -0.3, 0.1, 2),
        ("gnode", 1, "tanh", "critical", 0, 0.0, 0.1, 1), ("gnode", 1, "tanh", "xavier", 0, -0.3, 0.1, 4),
    ]
    c = trs.trainability_claims(_members(rows), THRESHOLDS, epochs=10).set_index("claim_id")
    assert set(c.index) == {"tr_eta_critical_relu", "tr_eta_critical_tanh", "tr_critical_node",
                            "tr_gating_epochs_critical", "tr_gating_epochs_xavier"}
    assert (c["study"] == "trainability").all()
    assert c.loc["tr_eta_critical_relu", "value"] == pytest.approx(0.03) and c.loc["tr_eta_critical_relu", "holds"]
    assert c.loc["tr_eta_critical_tanh", "value"] == pytest.approx(0.2) and not c.loc["tr_eta_critical_tanh", "holds"]
    # relu: ratios 0.5 (L=1) and 2 (L=2): geometric mean 1, not lower; tanh: 0.5 at both depths
    crit = c.loc["tr_critical_node"]
    assert crit["value"] == pytest.approx(0.5) and crit["holds"] and "lowest: tanh" in crit["note"]
    assert "relu: 1" in crit["note"]
    # critical: gnODE 1, 1 vs nODE 2, 2, 4, 3, 3 -> 1 / 3; xavier: gnODE 2, 4 (median 3) vs nODE 11, 6, 8, 11, 11
    assert c.loc["tr_gating_epochs_critical", "value"] == pytest.approx(1 / 3)
    assert c.loc["tr_gating_epochs_xavier", "value"] == pytest.approx(3 / 11) and c.loc["tr_gating_epochs_xavier", "holds"]


def test_claims_do_not_hold_without_data_or_when_everything_diverged():
    rows = [("node", 1, "relu", "critical", 0, 0.0, math.inf, math.nan),
            ("node", 1, "relu", "xavier", 0, -0.3, math.inf, math.nan)]
    c = trs.trainability_claims(_members(rows), THRESHOLDS, epochs=5).set_index("claim_id")
    assert not c.loc["tr_critical_node", "holds"]  # inf / inf: no value
    assert math.isnan(c.loc["tr_gating_epochs_xavier", "value"]) and not c.loc["tr_gating_epochs_xavier", "holds"]


def test_summary_censors_never_reached_at_epochs_plus_one():
    rows = [("node", 1, "relu", "xavier", s, -0.5, 0.2, e) for s, e in enumerate([2, math.nan, math.nan])]
    s = trs.summarise(_members(rows), epochs=7)
    assert list(s.columns) == tr.SUMMARY_SCHEMA.names and len(s) == 1
    assert s["epochs_to_threshold_median"].iloc[0] == 8.0 and s["n_reached"].iloc[0] == 1


def _merged(overlay=None):
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    if overlay:
        for k, v in yaml.safe_load((ROOT / overlay).read_text()).items():
            raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    return raw


def test_the_profiles_grids_and_the_config_checks():
    assert len(tr.cells(validate_config(_merged()))) == 2 * 2 * 2
    paper = validate_config(_merged("config/paper.yaml")).trainability
    assert (paper.depths, paper.width, paper.n, set(paper.inits)) == ([1, 2, 3], 100, 100, {"xavier", "critical"})
    assert len(tr.cells(validate_config(_merged("config/paper.yaml")))) == 12
    raw = _merged()
    raw["trainability"]["claims"]["compare_epoch"] = raw["trainability"]["epochs"] + 1
    with pytest.raises(ConfigError, match="trainability"):
        validate_config(raw)
    raw = _merged()
    raw["trainability"]["models"] = ["node", "rnn"]
    with pytest.raises(ConfigError, match=r"trainability\.models"):
        validate_config(raw)
    raw = _merged()
    raw["trainability"] = None
    assert tr.cells(validate_config(raw)) == []


def _settings(**over):
    cfg = validate_config(_merged())
    s = plan.trainability_train_settings(cfg, "gnode", 1, "tanh")
    return type(s).model_validate(s.model_dump() | {"device": "cpu", "dtype": "float64", "n": 6, "width": 8,
                                                     "seeds": [0, 1], "tau": 0.1, "dt": 0.1, "epochs": 2, "batch_size": 4,
                                                     "diagnostic_trials": 4, "checkpoint_every": 0} | over)


def test_each_member_is_built_by_its_own_inits_rule():
    s = _settings()
    assert "claims" not in type(s).model_fields and s.inits == ["xavier", "critical"]
    x = torch.randn(20, 10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model, grid = tr.build_ensemble(s, x, "cpu", torch.float64)
    assert list(grid["init"]) == ["xavier", "xavier", "critical", "critical"] and list(grid["member"]) == [0, 1, 2, 3]
    assert len(set(grid["seed_init"])) == 4
    for e, row in grid.iterrows():
        mean_input, mean_first_input = input_means(x)
        alone = RecurrentEnsemble(tr.model_spec(s, row["init"], 3), [row["seed_init"]], dtype=torch.float64,
                                  mean_input=mean_input, mean_first_input=mean_first_input)
        for name, p in alone.named_parameters():
            assert torch.equal(getattr(model, name)[e], p[0]), (e, name)


def test_a_tiny_job_writes_consistent_tables(tmp_path):
    data = tmp_path / "data.parquet"
    ffd.prepare_data(ffd.FlipflopDataSettings(task="3bit_variable", base_seed=0, n_trials=12, n_train=8, n_bins=10,
                                              pulse_width=2, seed=3), data)
    out = {t: tmp_path / f"{t}.parquet" for t in tr.JOB_TABLES}
    tr.train_job(_settings(), data, out)
    t = {k: io.read_table(v) for k, v in out.items()}
    assert len(t["members"]) == 4 and set(t["members"]["init"]) == {"xavier", "critical"}
    assert len(t["history"]) == 4 * 3 and sorted(t["history"]["epoch"].unique()) == [0, 1, 2]
    start = t["history"][t["history"]["epoch"] == 0].set_index("member")["test_loss"]
    assert np.allclose(start.sort_index(), t["members"].set_index("member")["initial_test_loss"].sort_index())
    assert len(t["propagation"]) == 4 * 10 and np.allclose(t["propagation"].query("lag == 0")["ratio"], 1.0)
    assert len(t["spectrum"]) == 4 * 6
    eta = t["spectrum"].groupby("member")["real"].max()
    assert np.allclose(eta.sort_index(), t["members"].set_index("member")["eta_max"].sort_index())
    ok = t["members"][t["members"]["status"] == "ok"]
    # the best parameters are chosen among those after each epoch (not the initial ones)
    after = t["history"][t["history"]["epoch"] >= 1].groupby("member")["test_loss"].min()
    assert (ok["grad_norm"] > 0).all()
    assert np.allclose(ok.set_index("member")["best_test_loss"].sort_index(), after.loc[sorted(ok["member"])])


def test_the_test_overlay_runs_the_study_at_tiny_scale():
    t = validate_config(_merged("config/test/config.yaml")).trainability
    assert t.epochs <= 3 and t.n <= 8 and t.width <= 8 and len(t.depths) == 1
    assert t.dt == 0.05  # the tiny flip-flop data: 20 bins over [0, 1]
    assert {"xavier", "critical"} <= set(t.inits) and len(t.seeds) == 2
