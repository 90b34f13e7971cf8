"""The jobs API (gnode.jobs), its planning (gnode.plan) and ``python -m gnode <job>``: one
function per rule, called by the rule's script, run by hand with the settings Snakemake gives it."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gnode import codegraph, jobs, plan
from gnode.__main__ import main
from gnode.config import FlipflopTrainSettings, load_config_files
from gnode.io import read_table
from gnode.studies import flipflop, flipflop_analysis, flipflop_data, trainability

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "workflow" / "scripts"
BASE = str(ROOT / "config" / "config.yaml")
TEST_OVERLAY = str(ROOT / "config" / "test" / "config.yaml")


def _script_call(path: Path) -> ast.Call:
    """The one ``jobs.<name>(...)`` call of a workflow script."""
    calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name) and n.func.value.id == "jobs"]
    assert len(calls) == 1, path.name
    return calls[0]


def test_every_script_calls_its_own_job_with_the_registered_arguments():
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert {p.stem for p in scripts} == set(jobs.JOBS)
    for path in scripts:
        job, call = jobs.JOBS[path.stem], _script_call(path)
        assert call.func.attr == path.stem
        # settings first (params.<name>), then the wildcards the job takes
        assert len(call.args) == len(job.params) + len(job.takes), path.name
        given = {kw.arg: ast.unparse(kw.value) for kw in call.keywords}
        expected = {n: f"sm.input.{n}" for n in job.inputs} | {f"out_{n}": f"sm.output.{n}" for n in job.outputs}
        if job.resumable:
            expected |= {"checkpoints": "sm.params.checkpoints", "code": "sm.params.code"}
        assert given == expected, path.name
        for arg, name in zip(call.args, job.params):
            assert ast.unparse(arg) == f"sm.params.{name}", path.name
        # and the script imports nothing else of gnode than the jobs and setup_job
        imports = {ast.unparse(n) for n in ast.parse(path.read_text()).body if isinstance(n, ast.ImportFrom)}
        assert imports == {"from gnode import jobs", "from gnode.runtime import setup_job"}, path.name


def test_the_registry_reads_each_jobs_arguments_from_its_signature():
    train = jobs.JOBS["train_flipflop"]
    assert train.params == ("settings",) and train.takes == ("n",)
    assert train.inputs == ("data",) and train.outputs == ("model", "history") and train.resumable
    assert train.command == "train-flipflop" and train.wildcards == {"experiment": str, "model": str, "n": int}
    assert jobs.JOBS["plot_trainability"].params == ("figures", "compare_epoch")
    assert jobs.JOBS["summarise_flipflop"].lists == ("evaluations",) and not jobs.JOBS["summarise_flipflop"].params
    # the tables named by the studies are the job's outputs, one by one
    assert set(jobs.JOBS["analyse_flipflop_attractors"].outputs) == set(flipflop_analysis.SCHEMAS)
    assert set(jobs.JOBS["train_trainability"].outputs) == set(trainability.JOB_TABLES)
    assert set(jobs.JOBS["summarise_trainability"].lists) == set(trainability.JOB_TABLES)
    for name, job in jobs.JOBS.items():  # registration only: the function itself is what runs
        assert getattr(jobs, name) is job.run and job.run.__module__ == "gnode.jobs"


@pytest.fixture(scope="module")
def test_config():
    return load_config_files([BASE, TEST_OVERLAY])


def _every_job(cfg):
    """(rule, wildcards) of the jobs of a configuration that have settings."""
    out = [("prepare_flipflop_data", {"task": e.task}) for e in cfg.flipflop.experiments.values()]
    for e, m, n in plan.flipflop_jobs(cfg):
        out += [("train_flipflop", {"experiment": e, "model": m, "n": str(n)}), ("evaluate_flipflop", {})]
    for e in cfg.flipflop.experiments:
        out += [(r, {"experiment": e}) for r in ("plot_flipflop", "analyse_flipflop_attractors",
                                                 "plot_flipflop_attractors")]
    out += [("fit_expressivity", {"flow": str(f), "gated": str(int(g))})
            for f in range(len(cfg.expressivity.flows)) for g in cfg.expressivity.gated]
    for t, m in plan.realworld_jobs(cfg):
        out += [("prepare_realworld_data", {"task": t}), ("train_realworld", {"task": t, "model": m}),
                ("plot_realworld", {"task": t})]
    out += [("train_trainability", {"model": m, "depth": str(d), "activation": a})
            for m, d, a in trainability.cells(cfg)]
    out += [(r, {}) for r in ("plot_flipflop_overview", "claims_flipflop", "score_expressivity",
                              "examples_expressivity", "plot_expressivity", "summarise_realworld",
                              "summarise_trainability", "plot_trainability")]
    return out


def test_every_job_is_planned_with_its_settings_and_they_survive_a_settings_file(test_config):
    jobs_planned = _every_job(test_config)
    assert {r for r, _ in jobs_planned} == {n for n, j in jobs.JOBS.items() if j.params}
    for rule, wildcards in jobs_planned:
        params = plan.job_params(rule, test_config, wildcards)  # Snakemake's wildcards are text
        assert tuple(params) == jobs.JOBS[rule].params, rule
        # --print-settings writes JSON; --settings reads it back to the same values
        assert json.loads(json.dumps(params)) == params, rule
    assert plan.job_params("gather_claims", test_config) == {}
    settings = plan.job_params("train_flipflop", test_config, {"experiment": "3bit_fixed", "model": "gnode"})
    typed = plan.flipflop_train_settings(test_config, "3bit_fixed", "gnode")
    assert settings == {"settings": typed.model_dump(mode="json")}
    assert FlipflopTrainSettings.model_validate(settings["settings"]) == typed  # the job's validation: the same object
    with pytest.raises(ValueError, match="wildcard.*model"):
        plan.job_params("train_flipflop", test_config, {"experiment": "3bit_fixed"})


def test_help_lists_every_job():
    proc = subprocess.run([sys.executable, "-m", "gnode", "--help"], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert {j.command for j in jobs.JOBS.values()} | {"verify", "check-config"} <= listed


def test_a_scripts_code_hash_is_the_hash_of_its_job(monkeypatch):
    # python -m gnode <job> resumes a checkpoint written by the workflow (and back) only with this
    for path in sorted(SCRIPTS.glob("*.py")):
        assert codegraph.code_hash(path) == codegraph.code_hash("gnode.runtime", f"gnode.jobs:{path.stem}"), path.name


@pytest.fixture
def tiny_overlay(tmp_path):
    """The test overlay cut to one seed, one epoch and 24 short trials of 3-bit fixed."""
    over = tmp_path / "tiny.yaml"
    over.write_text(
        "flipflop:\n  data: {n_trials: 24, n_train: 16, n_bins: 12}\n"
        "  experiments:\n    3bit_fixed: {epochs: 1, seeds: [0], models: [gnode], sizes: [3]}\n"
    )
    return str(over)


def _run(argv, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # setup_job replaces it
    return main(argv)


def test_train_flipflop_by_hand_gives_the_study_functions_results(tmp_path, tiny_overlay, monkeypatch):
    cfg = ["--base", BASE, "--config", TEST_OVERLAY, "--config", tiny_overlay]
    data = tmp_path / "cli" / "data.parquet"
    assert _run(["prepare-flipflop-data", *cfg, "--task", "3bit_fixed", "--data-out", str(data)], monkeypatch) == 0
    assert _run(["train-flipflop", *cfg, "--experiment", "3bit_fixed", "--model", "gnode", "--n", "3",
                 "--data", str(data), "--model-out", str(tmp_path / "cli" / "model.pt"),
                 "--history-out", str(tmp_path / "cli" / "history.parquet")], monkeypatch) == 0

    # the same job through the study functions, with the settings the Snakefile plans
    c = load_config_files([BASE, TEST_OVERLAY, tiny_overlay])
    direct = tmp_path / "direct"
    flipflop_data.prepare_data(flipflop_data.data_settings(c, "3bit_fixed"), direct / "data.parquet")
    flipflop.train_job(plan.flipflop_train_settings(c, "3bit_fixed", "gnode"), 3, direct / "data.parquet",
                       direct / "model.pt", direct / "history.parquet")

    pd.testing.assert_frame_equal(read_table(data), read_table(direct / "data.parquet"))
    a = torch.load(tmp_path / "cli" / "model.pt", weights_only=True)
    b = torch.load(direct / "model.pt", weights_only=True)
    assert a["spec"] == b["spec"] and a["seeds"] == b["seeds"] and a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    untimed = lambda extra: {**extra, "results": [{k: v for k, v in r.items() if k != "train_time_s"}  # noqa: E731
                                                  for r in extra["results"]]}
    assert untimed(a["extra"]) == untimed(b["extra"]) and a["extra"]["n"] == 3
    hist = [read_table(p).drop(columns="elapsed_s") for p in (tmp_path / "cli" / "history.parquet",
                                                               direct / "history.parquet")]
    pd.testing.assert_frame_equal(*hist)
    assert hist[0]["epoch"].max() == 1


def test_a_settings_file_replaces_the_config(tmp_path, tiny_overlay, monkeypatch, capsys):
    cfg = ["--base", BASE, "--config", TEST_OVERLAY, "--config", tiny_overlay]
    assert _run(["prepare-flipflop-data", *cfg, "--task", "3bit_fixed", "--print-settings"], monkeypatch) == 0
    printed = json.loads(capsys.readouterr().out)
    c = load_config_files([BASE, TEST_OVERLAY, tiny_overlay])
    assert printed == {"settings": flipflop_data.data_settings(c, "3bit_fixed").model_dump(mode="json")}
    # edited by hand (the value alone is accepted too), then run without any config
    printed["settings"]["n_trials"] = 20
    (tmp_path / "s.json").write_text(json.dumps(printed["settings"]))
    out = tmp_path / "data.parquet"
    assert _run(["prepare-flipflop-data", "--base", str(tmp_path / "none.yaml"), "--settings",
                 str(tmp_path / "s.json"), "--data-out", str(out)], monkeypatch) == 0
    assert read_table(out)["trial"].nunique() == 20


def test_clear_errors_for_a_missing_wildcard_path_or_config_entry(tmp_path, capsys, monkeypatch):
    assert _run(["train-flipflop", "--base", BASE, "--model", "gnode", "--print-settings"], monkeypatch) == 2
    assert "--experiment" in capsys.readouterr().err
    assert _run(["train-flipflop", "--base", BASE, "--experiment", "nope", "--model", "gnode"], monkeypatch) == 2
    assert "'nope' is not in the config" in capsys.readouterr().err
    assert _run(["train-flipflop", "--base", BASE, "--experiment", "3bit_fixed", "--model", "gnode",
                 "--data", "x.parquet"], monkeypatch) == 2
    assert "needs --n, --model-out, --history-out" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"a": 1}')
    assert _run(["plot-trainability", "--settings", str(tmp_path / "bad.json")], monkeypatch) == 2
    assert "figures, compare_epoch" in capsys.readouterr().err
