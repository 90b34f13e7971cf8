"""Real-world benchmarks: matched parameter budgets, data tables, dt handling, training job, claims."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from gnode import io, plan
from gnode.config import (
    DATASET_NAMES,
    RealWorldClaims,
    RealworldDataSettings,
    RealWorldTask,
    validate_config,
    validate_job_settings,
)
from gnode.datasets import DATASETS
from gnode.models import MODEL_KINDS, RecurrentEnsemble
from gnode.studies import realworld as rw
from gnode.studies import realworld_summary as rws

ROOT = Path(__file__).resolve().parents[2]
MODELS = list(MODEL_KINDS)


def _task(**kw) -> RealWorldTask:
    base = dict(dataset="walker2d", models=MODELS, seeds=[0, 1], budget=3000, epochs=2, batch_size=4,
                lr={m: 1e-2 for m in MODELS}, patience=2, checkpoint_every=0)
    return RealWorldTask.model_validate(base | kw)


def _merged(overlay: str | None):
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    if overlay:
        over = yaml.safe_load((ROOT / overlay).read_text())

        def merge(a, b):
            return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                            for k, v in b.items()}}

        raw = merge(raw, over)
    return validate_config(raw)


def test_dataset_names_match_the_registry():
    assert set(DATASET_NAMES) == set(DATASETS)
    assert {n: rw.task_shape(n) for n in DATASETS} == {n: (d.n_features, d.n_output) for n, d in DATASETS.items()}


@pytest.mark.parametrize("overlay", [None, "config/test/config.yaml", "config/paper.yaml"])
def test_every_model_of_every_shipped_task_has_the_budget_within_tolerance(overlay):
    cfg = _merged(overlay)
    assert cfg.realworld.tasks
    for name, task in cfg.realworld.tasks.items():
        n_features, n_output = rw.task_shape(task.dataset)
        counts = {}
        for m in task.models:
            spec = rw.matched_size(task, m, n_features, n_output)
            counts[m] = RecurrentEnsemble(spec, [0]).member_parameter_count()  # the real model
            assert counts[m] == rw.parameter_count(spec)
            assert abs(counts[m] - task.budget) <= 0.1 * task.budget, (name, m, counts[m])
        # sizes differ per model: the budget, not N, is what is shared
        assert len({rw.matched_size(task, m, n_features, n_output).n_hidden for m in task.models}) > 1


def test_paper_profile_has_all_three_benchmarks_and_enough_seeds():
    tasks = _merged("config/paper.yaml").realworld.tasks
    assert {t.dataset for t in tasks.values()} == set(DATASET_NAMES)
    assert sorted(t.drop_rate for t in tasks.values() if t.dataset == "character_trajectories") == [0, 0.3, 0.5, 0.7]
    assert all(len(t.seeds) >= 3 for t in tasks.values())
    default = _merged(None).realworld.tasks
    assert [t.dataset for t in default.values()] == ["walker2d"]


def test_discrete_models_get_dt_as_an_input_channel_and_continuous_ones_integrate_it():
    task = _task()
    assert rw.matched_size(task, "gru", 17, 17).n_input == 18
    assert rw.matched_size(task, "gnode", 17, 17).n_input == 17
    split = rw.Split(np.ones((2, 3, 17), np.float32), np.array([[1, 2, 1], [3, 1, 1]], np.float32),
                     np.array([3, 2]), np.zeros((2, 3, 17), np.float32))
    d = rw.to_sequence_data(split, "gru", "cpu", torch.float32)
    assert d.x.shape == (2, 3, 18) and d.dt is None
    torch.testing.assert_close(d.x[..., -1], torch.as_tensor(split.dt))
    c = rw.to_sequence_data(split, "node", "cpu", torch.float32)
    assert c.x.shape == (2, 3, 17) and torch.equal(c.dt, torch.as_tensor(split.dt))
    assert torch.equal(c.lengths, torch.tensor([3, 2]))


def test_an_impossible_budget_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"change realworld\.tasks\.<task>\.budget"):
        rw.matched_size(_task(budget=30, tolerance=0.05), "gru", 17, 17)


def test_elapsed_time_from_time_stamps():
    t = np.array([[0, 2, 3, 3, 3], [4, 5, 9, 12, 12]], np.float32)
    dt = rw.elapsed_from_times(t, np.array([3, 4]))
    np.testing.assert_array_equal(dt, [[1, 2, 1, 0, 0], [5, 1, 4, 3, 0]])


# ------------------------------------------------------------------ data tables
def _write_rollouts(d: Path, lengths, seed=0):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, T in enumerate(lengths):
        arr = 3.0 * rng.standard_normal((T, 17)) + 1.0
        arr[:, 0] = np.arange(T)
        np.save(d / f"rollout_{i:03d}.npy", arr)
    return d


def _walker_settings(root: Path, tmp: Path, **over):
    cfg = validate_config(
        yaml.safe_load((ROOT / "config/config.yaml").read_text())
        | {"data": {"cache_dir": str(tmp / "cache"),
                    "walker2d": {"local_dirs": [str(root)], "download": False, "verify": "none"}}}
    )
    return _with(rw.data_settings(cfg, "walker2d"), limit={"train": None, "val": None, "test": None}, **over)


def _with(settings, **changes):
    """Data settings with some keys replaced, validated again (as the job validates them)."""
    return validate_job_settings(RealworldDataSettings, settings.model_dump(mode="json") | changes)


@pytest.fixture(scope="module")
def walker_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rw")
    root = _write_rollouts(tmp / "walker", [120, 150, 90, 200, 130, 100, 160, 110, 140, 180])
    out = tmp / "walker2d.parquet"
    settings = _walker_settings(root, tmp)
    rw.prepare_data(settings, out)
    return root, out, settings


def test_walker_table_roundtrip_standardisation_and_raw_mse(walker_table):
    from gnode.datasets import load_walker2d

    root, out, _ = walker_table
    raw = load_walker2d(root, verify=False)
    splits, meta = rw.read_data(out)
    assert meta["kind"] == "regression" and meta["seq_len"] == 64 and meta["n_input"] == meta["n_output"] == 17
    schema = pq.read_schema(out).remove_metadata()
    assert schema == rw.data_schema(64, 17, 17)
    mean, std = np.array(meta["state_mean"]), np.array(meta["state_std"])
    for s in rw.SPLITS:
        assert splits[s].x.shape == raw[s]["x"].shape
        np.testing.assert_allclose(splits[s].x * std + mean, raw[s]["x"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(splits[s].y * std + mean, raw[s]["y"], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(splits[s].dt, raw[s]["dt"])
        assert (splits[s].lengths == 64).all()
    tr = splits["train"].x.reshape(-1, 17)
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-4)
    # the weighted loss on standardised targets is the MSE of the raw state
    d = rw.to_sequence_data(splits["test"], "node", "cpu", torch.float64, meta["output_weights"])
    pred = torch.zeros(1, *d.y.shape, dtype=torch.float64)
    from gnode.training import member_loss

    raw_mse = ((mean - raw["test"]["y"]) ** 2).mean()
    assert member_loss(pred, d).item() == pytest.approx(raw_mse, rel=1e-5)


def test_limits_take_seeded_subsets(walker_table, tmp_path):
    root, _, settings = walker_table
    s = _with(settings, limit={"train": 5, "val": None, "test": 2})
    a, _ = rw.load_splits(s)
    b, _ = rw.load_splits(s)
    assert len(a["train"].x) == 5 and len(a["test"].x) == 2
    np.testing.assert_array_equal(a["train"].x, b["train"].x)


def test_walker_verify_present_checks_real_files_and_rejects_foreign_ones(tmp_path):
    import os
    import shutil

    from gnode.datasets import ChecksumError

    root = _write_rollouts(tmp_path / "w", [100, 120])
    s = _walker_settings(root, tmp_path)
    s = _with(s, source=s.source.model_dump() | {"verify": "present"})
    with pytest.raises(ChecksumError, match="corrupted or truncated file .*rollout_000.npy"):
        rw.load_splits(s)
    shared = Path(os.environ.get("GNODE_WALKER2D_DIR", "/work/shared/data/walker2d"))
    if not (shared / "rollout_000.npy").exists():
        pytest.skip("no copy of the real Walker2d rollouts")
    real = tmp_path / "real"
    real.mkdir()
    for i in range(12):
        shutil.copy(shared / f"rollout_{i:03d}.npy", real)
    s = _with(s, source=s.source.model_dump() | {"local_dirs": [str(real)]})
    splits, meta = rw.load_splits(s)
    assert meta["rollouts"] == 12 and sum(meta["n_files"].values()) == 12


def test_classification_table_from_self_made_ts_files(tmp_path):
    from test_datasets_character import write_uea

    write_uea(tmp_path / "ct")
    cfg = validate_config(
        yaml.safe_load((ROOT / "config/config.yaml").read_text())
        | {"data": {"character_trajectories": {"local_dirs": [str(tmp_path / "ct")], "download": False}},
           "realworld": {"tasks": {"chars": {"dataset": "character_trajectories", "drop_rate": 0.5,
                                             "models": ["gnode"], "seeds": [0], "budget": 1000, "epochs": 1,
                                             "lr": {"gnode": 0.01}}}}}
    )
    out = tmp_path / "chars.parquet"
    rw.prepare_data(rw.data_settings(cfg, "chars"), out)
    splits, meta = rw.read_data(out)
    assert meta["kind"] == "classification" and meta["n_output"] == 0 and len(meta["classes"]) == 3
    assert "y" not in pq.read_schema(out).names
    tr = splits["train"]
    assert tr.y.dtype == np.int64 and tr.y.ndim == 1
    # half the points dropped: bins have widths >= 1 up to the length, 0 after it
    valid = np.arange(tr.x.shape[1]) < tr.lengths[:, None]
    assert (tr.dt[valid] >= 1).all() and (tr.dt[~valid] == 0).all()
    assert tr.dt[valid].mean() > 1.5


def test_missing_dataset_fails_naming_the_config_key(tmp_path):
    from gnode.datasets import DatasetUnavailable

    cfg = validate_config(
        yaml.safe_load((ROOT / "config/config.yaml").read_text())
        | {"data": {"speech_commands": {"local_dirs": [str(tmp_path)], "download": False}},
           "realworld": {"tasks": {"sc": {"dataset": "speech_commands", "models": ["gnode"], "seeds": [0],
                                          "budget": 1000, "epochs": 1, "lr": {"gnode": 0.01}}}}}
    )
    with pytest.raises(DatasetUnavailable, match=r"data\.speech_commands\.local_dirs"):
        rw.prepare_data(rw.data_settings(cfg, "sc"), tmp_path / "sc.parquet")


# ------------------------------------------------------------------ training job and summaries
def test_train_job_writes_history_model_and_evaluation(walker_table, tmp_path):
    _, data, _ = walker_table
    raw = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    raw["realworld"]["tasks"]["walker2d"] |= {"budget": 600, "epochs": 3, "batch_size": 8, "seeds": [0, 1]}
    cfg = validate_config(raw | {"device": "cpu"})
    settings = plan.realworld_train_settings(cfg, "walker2d", "gnode")
    ev = rw.train_job(settings, data, tmp_path / "m.pt", tmp_path / "h.parquet", tmp_path / "e.parquet")
    assert pq.read_schema(tmp_path / "e.parquet").remove_metadata() == rw.EVAL_SCHEMA
    assert pq.read_schema(tmp_path / "h.parquet").remove_metadata() == rw.HISTORY_SCHEMA
    assert list(ev["seed"]) == [0, 1] and (ev["metric"] == "mse").all()
    assert np.isfinite(ev["test_metric"]).all() and (ev["test_metric"] == ev["test_loss"]).all()
    assert (abs(ev["n_params"] - 600) <= 60).all() and (ev["width"] == ev["n_hidden"]).all()
    hist = io.read_table(tmp_path / "h.parquet")
    assert set(hist["epoch"]) <= {1, 2, 3} and hist["val_loss"].notna().all()
    from gnode.models import load_model

    model, extra = load_model(tmp_path / "m.pt")
    assert model.n_members == 2 and extra["model"] == "gnode"


def _evals(values: dict[str, list[float]], metric="mse", task="walker2d"):
    rows = []
    for model, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"task": task, "dataset": "walker2d", "model": model, "seed": seed, "metric": metric,
                         "test_metric": v, "status": "ok" if np.isfinite(v) else "diverged", "n_hidden": 4,
                         "n_params": 100, "budget": 100, "train_time_s": 1.0})
    return pd.DataFrame(rows)


def test_summary_is_mean_and_sd_over_seeds():
    s = rws.summarise(_evals({"node": [1.0, 2.0, 3.0], "gnode": [1.0, 1.0, math.nan]}))
    node = s.set_index("model").loc["node"]
    assert node["mean"] == 2.0 and node["sd"] == 1.0 and node["n_ok"] == 3
    gn = s.set_index("model").loc["gnode"]
    assert gn["n_seeds"] == 3 and gn["n_ok"] == 2 and gn["mean"] == 1.0


def test_realworld_claims_pair_seeds_and_respect_the_metric_direction():
    ev = pd.concat([
        _evals({"node": [2.0, 2.2, 2.4], "gnode": [1.0, 1.1, 1.3]}),
        _evals({"node": [0.9, 0.8, 0.85], "gnode": [0.95, 0.9, 0.9]}, metric="accuracy", task="chars"),
        _evals({"rnn": [1.0, 2.0]}, task="only_rnn"),
    ])
    c = rws.realworld_claims(ev, RealWorldClaims().model_dump()).set_index("claim_id")
    w = c.loc["rw_gating_walker2d"]
    assert w["value"] == pytest.approx(np.mean([1.0, 1.1, 1.1])) and w["holds"]
    assert c.loc["rw_gating_walker2d_significant"]["value"] > 2 and c.loc["rw_gating_walker2d_significant"]["holds"]
    ch = c.loc["rw_gating_chars"]
    assert ch["value"] == pytest.approx(np.mean([0.05, 0.1, 0.05])) and ch["holds"]
    missing = c.loc["rw_gating_only_rnn"]
    assert math.isnan(missing["value"]) and not missing["holds"] and "missing" in missing["note"]
    # the thresholds are the config's: a gain of 0.2 is more than the chars task shows
    strict = rws.realworld_claims(ev, {"improvement": 0.2, "t_statistic": 1e3}).set_index("claim_id")
    assert strict.loc["rw_gating_walker2d", "holds"] and not strict.loc["rw_gating_chars", "holds"]
    assert strict.loc["rw_gating_chars", "value"] == ch["value"] and strict.loc["rw_gating_chars", "threshold"] == 0.2
    assert not strict.loc["rw_gating_walker2d_significant", "holds"]


def test_the_test_overlay_overrides_every_default_task_at_tiny_scale():
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    test = yaml.safe_load((ROOT / "config/test/config.yaml").read_text())
    assert set(test["realworld"]["tasks"]) == set(base["realworld"]["tasks"])
    for task in _merged("config/test/config.yaml").realworld.tasks.values():
        assert task.epochs <= 3 and task.budget <= 1000
        assert all(n is not None and n <= 50 for n in task.limit.model_dump().values())


def test_a_damaged_data_table_is_refused_naming_the_file(walker_table, tmp_path):
    from gnode.io import CorruptFileError

    _, out, _ = walker_table
    copy = tmp_path / out.name
    raw = bytearray(out.read_bytes())
    copy.write_bytes(bytes(raw))
    (tmp_path / (out.name + ".sha256")).write_bytes((out.parent / (out.name + ".sha256")).read_bytes())
    assert rw.read_data(copy)[1]["seq_len"] == 64  # the intact copy with its record reads
    raw[len(raw) // 3] ^= 0x01
    copy.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=out.name):
        rw.read_data(copy)
