"""Typed job settings: what the Snakefile plans, and what the jobs compute from it, stays the same.

Two references, both written by the code before the typed settings classes existed (commit
a789e51) and kept in ``tests/unit/data``:

- ``planned_params.json``: ``repr`` of the params of every planned job of the default, test and
  paper configurations. Snakemake compares a job's params by their ``repr`` (key order and
  int/float included), so an equal ``repr`` is what keeps every result of a finished run valid.
- ``job_outputs_reference.json``: digests of the files that a few jobs of the test configuration
  write (model tensors, spec and extra; tables without their timing columns): one training job
  of each study, the flip-flop evaluation and attractor analysis, one expressivity fit and the
  examples. They are this machine's CPU results (one torch thread). ``GNODE_WRITE_REFERENCE=1``
  rewrites them; they were written by running this file against ``git archive a789e51 src
  config`` (with that commit's tests/unit/test_jobs.py), and only a commit known to compute the
  same results should ever rewrite them.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from gnode import config, jobs, plan
from gnode.__main__ import main
from gnode.config import (
    ConfigError,
    FlipflopTrainSettings,
    RealworldTrainSettings,
    load_config_files,
    validate_job_settings,
)
from gnode.io import read_table

sys.path.insert(0, str(Path(__file__).parent))
from test_jobs import _every_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
CONFIGS = {
    "default": ["config/config.yaml"],
    "test": ["config/config.yaml", "config/test/config.yaml"],
    "paper": ["config/config.yaml", "config/paper.yaml"],
}
TIMING = {"elapsed_s", "train_time_s", "fit_seconds"}


@pytest.mark.parametrize("profile", sorted(CONFIGS))
def test_every_planned_job_has_the_params_it_had_before(profile):
    before = json.loads((DATA / "planned_params.json").read_text())[profile]
    cfg = load_config_files([ROOT / p for p in CONFIGS[profile]])
    now = {f"{rule} {json.dumps(w, sort_keys=True)}": repr(plan.job_params(rule, cfg, w)) for rule, w in _every_job(cfg)}
    assert now.keys() == before.keys()
    changed = [k for k in now if now[k] != before[k]]
    assert not changed, f"{len(changed)} jobs' params changed, e.g. {changed[0]}:\n{now[changed[0]]}\n{before[changed[0]]}"


# ------------------------------------------------------------------ one class per settings argument
#: (job, settings argument) -> the class (or, for a plain value, the type) it is validated into
SETTINGS = {
    ("prepare_flipflop_data", "settings"): config.FlipflopDataSettings,
    ("train_flipflop", "settings"): config.FlipflopTrainSettings,
    ("evaluate_flipflop", "run"): config.RunSettings,
    ("plot_flipflop", "figures"): config.FigureSettings,
    ("analyse_flipflop_attractors", "settings"): config.FlipflopAnalysisSettings,
    ("plot_flipflop_attractors", "figures"): config.FigureSettings,
    ("plot_flipflop_overview", "figures"): config.FigureSettings,
    ("claims_flipflop", "settings"): config.FlipflopClaimsSettings,
    ("fit_expressivity", "settings"): config.ExpressivityFitSettings,
    ("score_expressivity", "sweep"): config.ExpressivitySweep,
    ("score_expressivity", "thresholds"): config.ExpressivityClaims,
    ("examples_expressivity", "settings"): config.ExpressivityFitSettings,
    ("plot_expressivity", "threshold"): config.Threshold,
    ("prepare_realworld_data", "settings"): config.RealworldDataSettings,
    ("train_realworld", "settings"): config.RealworldTrainSettings,
    ("summarise_realworld", "thresholds"): config.RealWorldClaims,
    ("plot_realworld", "figures"): config.FigureSettings,
    ("train_trainability", "settings"): config.TrainabilityTrainSettings,
    ("summarise_trainability", "settings"): config.TrainabilitySummarySettings,
    ("plot_trainability", "figures"): config.FigureSettings,
    ("plot_trainability", "compare_epoch"): config.PosInt,
}


def _validated_in_job(fn) -> dict[str, str]:
    """settings argument -> the name of the class that ``fn`` (or a helper of gnode.jobs it hands
    the argument to) validates it into, read from its ``validate_job_settings(Class, argument)``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    params = [a.arg for a in tree.body[0].args.args]
    out = {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)):
        args = [a.id if isinstance(a, ast.Name) else None for a in call.args]
        if call.func.id == "validate_job_settings" and args[1] in params:
            out[args[1]] = args[0]
        elif call.func.id.startswith("_") and callable(helper := getattr(jobs, call.func.id, None)):
            inner = _validated_in_job(helper)  # a helper of the jobs: its own parameter names
            names = list(inspect.signature(helper).parameters)
            out |= {a: inner[names[i]] for i, a in enumerate(args) if a in params and names[i] in inner}
    return out


def test_every_settings_argument_has_its_class_and_every_planned_value_is_one():
    every = {(name, p) for name, job in jobs.JOBS.items() for p in job.params}
    assert set(SETTINGS) == every, "a job's settings argument without a class (or a class of no job)"
    for name, job in jobs.JOBS.items():  # the job validates each argument into that class, once
        validated = _validated_in_job(job.run)
        for p in job.params:  # (every class and type is a name of gnode.config)
            assert getattr(config, validated.get(p, ""), None) is SETTINGS[name, p], (name, p)
    for profile in sorted(CONFIGS):
        cfg = load_config_files([ROOT / p for p in CONFIGS[profile]])
        for rule, w in _every_job(cfg):
            for p, value in plan.job_params(rule, cfg, w).items():
                typed = validate_job_settings(SETTINGS[rule, p], value, p)
                # the typed object is exactly the planned data: its dump is what was planned
                again = typed.model_dump(mode="json") if isinstance(typed, config.Strict) else typed
                assert again == value and repr(again) == repr(value), (profile, rule, p)


def test_new_settings_classes_refuse_bad_keys_naming_each(tmp_path):
    cfg = load_config_files([ROOT / p for p in CONFIGS["test"]])
    good = plan.job_params("claims_flipflop", cfg, {})["settings"]
    assert validate_job_settings(config.FlipflopClaimsSettings, good) == plan.flipflop_claims_settings(cfg)
    bad = good | {"experimentz": [], "tasks": good["tasks"] | {"3bit_fixed": "4bit"},
                  "thresholds": good["thresholds"] | {"gating_ratio": -1.0}}
    with pytest.raises(ConfigError) as err:
        jobs.claims_flipflop(bad, summary=tmp_path / "s.parquet", fixed_points=[], memory=[], data=[],
                             out_claims=tmp_path / "c.parquet", out_html=tmp_path / "c.html")
    text = str(err.value)
    assert "invalid FlipflopClaimsSettings" in text and "'experimentz': unknown key" in text
    assert "'tasks.3bit_fixed': got \"4bit\"" in text and "'thresholds.gating_ratio': got -1.0" in text
    with pytest.raises(ConfigError, match="tasks must name exactly the experiments"):
        validate_job_settings(config.FlipflopClaimsSettings, good | {"experiments": good["experiments"][:1]})
    # the data job's settings: the same checks as the config's flipflop.data
    data = plan.job_params("prepare_flipflop_data", cfg, {"task": "3bit_fixed"})["settings"]
    with pytest.raises(ConfigError, match="n_train .* must be smaller than n_trials"):
        jobs.prepare_flipflop_data(data | {"n_train": data["n_trials"]}, out_data=tmp_path / "d.parquet")
    # a plain value is named by its argument; a figure job's settings by their keys
    with pytest.raises(ConfigError, match=r"'compare_epoch': got 0; .*greater than or equal to 1"):
        validate_job_settings(config.PosInt, 0, "compare_epoch")
    with pytest.raises(ConfigError, match=r"'dpi': got \"150\""):
        jobs.plot_realworld({"formats": ["png"], "dpi": "150"}, evaluations=[], histories=[],
                            out_figure=tmp_path / "f.png")
    # a real-world source is the walker2d source exactly for dataset walker2d
    rw_data = plan.job_params("prepare_realworld_data", cfg, {"task": "walker2d"})["settings"]
    assert isinstance(validate_job_settings(config.RealworldDataSettings, rw_data).source, config.WalkerSource)
    no_verify = rw_data | {"source": {k: v for k, v in rw_data["source"].items() if k != "verify"}}
    with pytest.raises(ConfigError, match="verify is a key of dataset walker2d's source only"):
        validate_job_settings(config.RealworldDataSettings, no_verify)


# ------------------------------------------------------------------ outputs
def _digest_table(path) -> str:
    df = read_table(path)
    df = df.drop(columns=[c for c in df.columns if c in TIMING])
    rows = pa.Table.from_pandas(df, preserve_index=False).to_pylist()  # Python values: repr is exact
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _digest_model(path) -> dict:
    saved = torch.load(path, weights_only=True)
    h = hashlib.sha256()
    for name in sorted(saved["state"]):
        h.update(name.encode() + saved["state"][name].cpu().contiguous().numpy().tobytes())
    text = lambda v: json.dumps(v, sort_keys=True, default=str).encode()  # noqa: E731
    return {"state": h.hexdigest()[:16], "extra": hashlib.sha256(text(_untimed(saved["extra"]))).hexdigest()[:16],
            "spec": hashlib.sha256(text(saved["spec"])).hexdigest()[:16]}


def _write_rollouts(d: Path, lengths, seed=0) -> Path:
    """Synthetic Walker2d rollouts (as tests/unit/test_realworld.py)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, t in enumerate(lengths):
        arr = 3.0 * rng.standard_normal((t, 17)) + 1.0
        arr[:, 0] = np.arange(t)
        np.save(d / f"rollout_{i:03d}.npy", arr)
    return d


def _run(rule: str, cfg, wildcards: dict, *args, **files):
    params = plan.job_params(rule, cfg, wildcards)
    getattr(jobs, rule)(*params.values(), *args, **files)


def test_training_jobs_give_the_results_they_gave_before(tmp_path):
    root = _write_rollouts(tmp_path / "walker", [120, 150, 90, 200, 130, 100, 160, 110, 140, 180])
    over = tmp_path / "walker.yaml"
    over.write_text(f"data:\n  cache_dir: {tmp_path / 'cache'}\n  walker2d: {{local_dirs: [{root}], download: false, "
                    "verify: none}\n")
    cfg = load_config_files([ROOT / p for p in CONFIGS["test"]] + [over])
    t = tmp_path
    out = {}
    tr_task = cfg.trainability.task
    for task in sorted({"3bit_fixed", tr_task}):
        _run("prepare_flipflop_data", cfg, {"task": task}, out_data=t / f"{task}.parquet")
    for model in ("gnode", "gru"):
        _run("train_flipflop", cfg, {"experiment": "3bit_fixed", "model": model}, 4, data=t / "3bit_fixed.parquet",
             out_model=t / f"{model}.pt", out_history=t / f"{model}_history.parquet")
        out[f"flipflop {model}"] = {"model": _digest_model(t / f"{model}.pt"),
                                    "history": _digest_table(t / f"{model}_history.parquet")}
    evals, models = [], []
    for model in ("gnode", "gru"):
        ev = t / f"{model}_evaluation.parquet"
        _run("evaluate_flipflop", cfg, {}, model=t / f"{model}.pt", data=t / "3bit_fixed.parquet", out_evaluation=ev,
             out_examples=t / f"{model}_examples.parquet")
        out[f"flipflop {model}"] |= {"evaluation": _digest_table(ev),
                                     "examples": _digest_table(t / f"{model}_examples.parquet")}
        evals.append(ev)
        models.append(t / f"{model}.pt")
    an_out = {f"out_{k}": t / f"an_{k}.parquet"
              for k in ("fixed_points", "trajectories", "speed_grid", "gates", "memory", "memory_curve")}
    _run("analyse_flipflop_attractors", cfg, {"experiment": "3bit_fixed"}, models=models, evaluations=evals,
         data=t / "3bit_fixed.parquet", **an_out)
    out["attractors"] = {k: _digest_table(p) for k, p in an_out.items()}
    _run("examples_expressivity", cfg, {}, out_examples=t / "ex_examples.parquet")
    out["expressivity examples"] = _digest_table(t / "ex_examples.parquet")
    m, d, a = "gnode", cfg.trainability.depths[0], cfg.trainability.activations[0]
    tr_out = {f"out_{k}": t / f"tr_{k}.parquet" for k in ("members", "history", "propagation", "spectrum")}
    _run("train_trainability", cfg, {"model": m, "depth": d, "activation": a}, data=t / f"{tr_task}.parquet", **tr_out)
    out["trainability"] = {k: _digest_table(p) for k, p in tr_out.items()}
    _run("fit_expressivity", cfg, {"flow": 1, "gated": 1}, out_fits=t / "fits.parquet")
    out["expressivity"] = _digest_table(t / "fits.parquet")
    _run("prepare_realworld_data", cfg, {"task": "walker2d"}, out_data=t / "walker2d.parquet")
    _run("train_realworld", cfg, {"task": "walker2d", "model": "gnode"}, data=t / "walker2d.parquet",
         out_model=t / "rw.pt", out_history=t / "rw_history.parquet", out_evaluation=t / "rw_eval.parquet")
    out["realworld"] = {"model": _digest_model(t / "rw.pt"), "history": _digest_table(t / "rw_history.parquet"),
                        "evaluation": _digest_table(t / "rw_eval.parquet")}

    ref = DATA / "job_outputs_reference.json"
    if os.environ.get("GNODE_WRITE_REFERENCE") == "1":
        ref.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    assert out == json.loads(ref.read_text())


# ------------------------------------------------------------------ validation in the job
def test_a_job_refuses_bad_settings_naming_each_key(tmp_path, capsys, monkeypatch):
    cfg = load_config_files([ROOT / p for p in CONFIGS["test"]])
    good = plan.job_params("train_flipflop", cfg, {"experiment": "3bit_fixed", "model": "gnode"})["settings"]
    typed = validate_job_settings(FlipflopTrainSettings, good)
    assert typed == plan.flipflop_train_settings(cfg, "3bit_fixed", "gnode") and typed.model_dump(mode="json") == good
    bad = good | {"epochz": 3, "lr": [0.0], "integration": good["integration"] | {"tau": "0.1"}}
    del bad["seeds"]
    with pytest.raises(ConfigError) as err:
        jobs.train_flipflop(bad, 4, data=tmp_path / "none.parquet", out_model=tmp_path / "m.pt",
                            out_history=tmp_path / "h.parquet")
    text = str(err.value)
    assert "FlipflopTrainSettings" in text and "'epochz': unknown key" in text and "'seeds': required" in text
    assert "'lr[0]': got 0.0" in text and "'integration.tau': got \"0.1\"" in text
    # a discrete model's settings carry no flow, a continuous model's must
    gru = plan.job_params("train_flipflop", cfg, {"experiment": "3bit_fixed", "model": "gru"})["settings"]
    assert "flow" not in gru and "flow" in good
    with pytest.raises(ConfigError, match="flow must be given"):
        validate_job_settings(FlipflopTrainSettings, {k: v for k, v in good.items() if k != "flow"})
    # python -m gnode <job> --settings: the same message, exit status 2
    (tmp_path / "s.json").write_text(json.dumps(bad))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # setup_job replaces it
    assert main(["train-flipflop", "--settings", str(tmp_path / "s.json"), "--n", "4", "--data", "x.parquet",
                 "--model-out", str(tmp_path / "m.pt"), "--history-out", str(tmp_path / "h.parquet")]) == 2
    assert "'epochz': unknown key" in capsys.readouterr().err


def test_realworld_settings_carry_the_matched_spec():
    cfg = load_config_files([ROOT / p for p in CONFIGS["test"]])
    s = plan.realworld_train_settings(cfg, "walker2d", "gnode")
    again = validate_job_settings(RealworldTrainSettings, s.model_dump(mode="json"))
    assert again.spec == s.spec and (again.spec.kind, again.spec.n_hidden) == ("gnode", 8)
    wrong = s.model_dump(mode="json") | {"spec": s.spec.to_dict() | {"kind": "gru"}}
    with pytest.raises(ConfigError, match="spec.kind 'gru' is not the model 'gnode'"):
        validate_job_settings(RealworldTrainSettings, wrong)
    with pytest.raises(ConfigError, match="not a model spec"):
        validate_job_settings(RealworldTrainSettings, s.model_dump(mode="json") | {"spec": {"kind": "gnode"}})


def test_expressivity_fits_equal_those_of_the_former_hand_written_rollout(tmp_path):
    """The expressivity fits run on the models' shared Euler scan since 2026-12; before, on a
    rollout with its own hand-written backward. The test profile's fits and examples, recorded
    with that rollout (``data/expressivity_hand_written_rollout.json``), are reproduced to
    float32 rounding: the same steps, clamp hits and skipped steps, R^2 within 1e-6."""
    cfg = load_config_files([ROOT / p for p in CONFIGS["test"]])
    ref = json.loads((DATA / "expressivity_hand_written_rollout.json").read_text())
    for flow in (0, 1):
        for gated in (0, 1):
            out = tmp_path / f"fits_{flow}_{gated}.parquet"
            _run("fit_expressivity", cfg, {"flow": flow, "gated": gated}, out_fits=out)
            got, want = pd.read_parquet(out), ref[f"fits {flow} {gated}"]
            for col in ("n", "k", "target", "best_step", "clamp_hits", "skipped_steps"):
                assert got[col].tolist() == want[col], (flow, gated, col)
            for col in ("r2", "r2_final"):
                np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-6, err_msg=f"{flow} {gated} {col}")
    _run("examples_expressivity", cfg, {}, out_examples=tmp_path / "examples.parquet")
    got, want = pd.read_parquet(tmp_path / "examples.parquet"), ref["examples"]
    for col in ("n", "k", "t"):
        assert got[col].tolist() == want[col]
    np.testing.assert_allclose(got["output"], want["output"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["r2"], want["r2"], rtol=0, atol=1e-6)
