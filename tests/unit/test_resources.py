"""Plan-time memory estimate: its terms follow the sizes, and a job that cannot fit is refused
with the numbers."""

import copy
from pathlib import Path

import pytest
import yaml

from gnode import resources as r
from gnode.config import validate_config
from gnode.models import ModelSpec, parameter_count

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_terms_follow_parameters_batch_and_steps():
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=10, n_output=3, depth=2, width=16)
    e = r.training_estimate(spec, members=3, batch=50, steps=100, n_eval=100, data_numbers=1000, dtype="float32")
    assert e.parameters == 3 * parameter_count(spec) * 5 * 4
    assert e.activations == 3 * 50 * 100 * (5 * 10 + 2 * 2 * 16) * 4
    assert e.evaluation == 3 * 100 * 100 * (10 + 3) * 4 and e.data == 4000
    e64 = r.training_estimate(spec, 6, 100, 100, 100, 1000, "float64")
    assert e64.activations == 8 * e.activations  # 2 x members, 2 x batch, 2 x bytes
    sub = ModelSpec(kind="gnode", n_input=3, n_hidden=10, n_output=3, depth=2, width=16, substeps=4)
    assert r.training_estimate(sub, 3, 50, 100, 100, 1000, "float32").activations == 4 * e.activations
    adj = ModelSpec(kind="gnode", n_input=3, n_hidden=10, n_output=3, depth=2, width=16, solver="dopri5", adjoint=True)
    long = r.training_estimate(adj, 3, 50, 10_000, 100, 1000, "float32")
    assert long.activations == r.training_estimate(adj, 3, 50, 10, 100, 1000, "float32").activations


def test_mem_mb_covers_base_and_rounds_up():
    e = r.Estimate(parameters=0, activations=0, evaluation=0, data=0)
    assert e.mem_mb() == r.BASE_MB
    e = r.Estimate(parameters=2**20, activations=0, evaluation=0, data=0)
    assert e.mem_mb() == r.BASE_MB + 100 and e.mem_mb() % 100 == 0


def test_shipped_config_fits_and_a_huge_one_is_refused_with_numbers():
    cfg = validate_config(BASE)
    ests = {f"{e}/{m}/{n}": r.flipflop_estimate(cfg, e, m, n)
            for e, x in cfg.flipflop.experiments.items() for m in x.models for n in x.sizes_of(m)}
    r.check_fit(ests, host=8 * 2**30)  # a laptop holds the quick profile
    assert max(x.mem_mb() for x in ests.values()) < 4000
    raw = copy.deepcopy(BASE)
    exp = raw["flipflop"]["experiments"]["3bit_fixed"]
    exp.update(sizes=[20_000], batch_size=[500], flow={"depth": 4, "width": 4096, "activation": "relu"})
    cfg = validate_config(raw)
    est = r.flipflop_estimate(cfg, "3bit_fixed", "gnode", 20_000)
    with pytest.raises(MemoryError) as err:
        r.check_fit({"3bit_fixed/gnode/20000": est}, host=64 * 2**30)
    msg = str(err.value)
    assert "3bit_fixed/gnode/20000: needs ~" in msg and "the machine has 64.0 GiB" in msg
    assert "activations kept for BPTT" in msg and f"{est.activations / 2**30:.2f} GiB" in msg
    with pytest.raises(MemoryError, match="needs ~.* GiB of GPU memory, the GPU has 1.0 GiB"):
        r.check_fit({"j": est}, host=2**50, gpu=2**30)


def test_realworld_estimate_uses_the_matched_size_and_the_limits():
    cfg = validate_config(BASE)
    task = next(iter(cfg.realworld.tasks))
    e = r.realworld_estimate(cfg, task, "gnode")
    t = cfg.realworld.tasks[task]
    assert e.parameters == pytest.approx(len(t.seeds) * t.budget * 5 * 4, rel=t.tolerance)


def test_runtime_model_reproduces_its_calibration_and_grows_with_the_work():
    cfg = validate_config(BASE)
    from gnode.studies import flipflop as ff

    exp = cfg.flipflop.experiments["3bit_variable"]
    # seconds per epoch measured on one CPU thread (2 members, batch 50, 500 + 100 trials, 100 bins)
    for kind, n, measured in [("gnode", 6, 0.42), ("gnode", 100, 1.08), ("gnode", 400, 6.76), ("gru", 100, 1.52)]:
        spec = ff.model_spec(kind, n, 3, flow=exp.flow, integration=exp.integration, initial_state=exp.initial_state)
        est = r.training_seconds(spec, 2, 50, 100, 500, 100, epochs=1)
        assert est == pytest.approx(measured, rel=0.2), (kind, n)
    spec = ff.model_spec("gnode", 100, 3, flow=exp.flow, integration=exp.integration, initial_state=exp.initial_state)
    one = r.training_seconds(spec, 2, 50, 100, 500, 100, epochs=10)
    assert r.training_seconds(spec, 2, 50, 100, 500, 100, epochs=20) == pytest.approx(2 * one)
    # per-iteration selection evaluates the test set after every step: dearer, except with one batch per epoch
    # (measured, benchmarks/p5_select_every.py: 1.19-1.28x at N = 6, F 2 x 64, batch 100)
    it = r.training_seconds(spec, 2, 50, 100, 500, 100, epochs=10, select_every="iteration")
    assert 1.1 * one < it < 3 * one
    assert r.training_seconds(spec, 2, 500, 100, 500, 100, epochs=10, select_every="iteration") == pytest.approx(
        r.training_seconds(spec, 2, 500, 100, 500, 100, epochs=10))
    assert r.runtime_min(0) == r.MIN_RUNTIME_MIN and r.runtime_min(3600) == 3 * 60
    assert r.flipflop_runtime_min(cfg, "3bit_variable", "gnode", 100) >= r.MIN_RUNTIME_MIN


def test_trainability_jobs_get_an_estimate_that_counts_every_init_and_seed():
    raw = copy.deepcopy(BASE)
    cfg = validate_config(raw)
    t = cfg.trainability
    e = r.trainability_estimate(cfg, "gnode", t.depths[-1], t.activations[0])
    spec = ModelSpec(kind="gnode", n_input=3, n_hidden=t.n, n_output=3, depth=t.depths[-1], width=t.width,
                     activation=t.activations[0], tau=t.tau, dt=t.dt, initial_state=t.initial_state)
    members = len(t.inits) * len(t.seeds)
    assert e.parameters == members * parameter_count(spec) * 5 * 4  # float32: weights, grads, 2 moments, best
    raw["trainability"]["seeds"] = list(range(2 * len(t.seeds)))
    cfg2 = validate_config(raw)
    e2 = r.trainability_estimate(cfg2, "gnode", t.depths[-1], t.activations[0])
    assert e2.parameters == 2 * e.parameters and e2.activations == 2 * e.activations
    raw["trainability"]["epochs"] = 100 * t.epochs
    assert r.trainability_runtime_min(validate_config(raw), "gnode", t.depths[-1], t.activations[0]) > \
        r.trainability_runtime_min(cfg, "gnode", t.depths[-1], t.activations[0]) >= r.MIN_RUNTIME_MIN
    assert set(r.TRAINING_JOBS) == {"flipflop", "realworld", "trainability"}
