"""Incremental re-runs: a change re-runs exactly the jobs it feeds (dry runs on a finished run)."""

import shutil

import pytest

from .conftest import JOBS, ROOT, models_of, planned_jobs

TEST = ["--configfile", "config/test/config.yaml"]
# the figure rules that take the figure settings; each carries the hash of its own plotting module
FIGURE_RULES = {"plot_flipflop", "plot_flipflop_attractors", "plot_flipflop_overview", "plot_realworld", "plot_trainability"}
FLIPFLOP_PLOT_RULES = {"plot_flipflop", "plot_flipflop_overview"}  # gnode.plotting.flipflop


def _edit(path):
    """Append a comment to a source file: its code changes, its behaviour does not."""
    path.write_text(path.read_text() + "\n# an edit\n")


@pytest.fixture
def finished(tiny_run, tmp_path):
    """A copy of the finished tiny run (results and Snakemake's metadata, mtimes kept), with
    its own copy of the gnode sources on PYTHONPATH so that a test may edit them."""
    work, _ = tiny_run
    dest = tmp_path / "run"
    shutil.copytree(work, dest, symlinks=True)
    shutil.copytree(ROOT / "src", dest / "src")
    env = {"PYTHONPATH": str(dest / "src")}
    assert planned_jobs(dest, *TEST, env=env) == {}, "the copied run should be complete"
    return dest, env


def test_a_figure_setting_reruns_only_the_figure_rules(finished):
    work, env = finished
    jobs = planned_jobs(work, *TEST, "--config", "figures={'formats': ['png'], 'dpi': 61}", env=env)
    assert set(jobs) == FIGURE_RULES | {"all"}


def test_one_model_setting_reruns_only_the_jobs_it_feeds(finished):
    work, env = finished
    (work / "config" / "lr.yaml").write_text(
        "flipflop:\n  experiments:\n    3bit_fixed:\n      lr: {gnode: [0.002]}\n"
    )
    jobs = planned_jobs(work, *TEST, "config/lr.yaml", env=env)
    assert models_of(jobs["train_flipflop"]) == ["gnode"]
    assert models_of(jobs["evaluate_flipflop"]) == ["gnode"]
    assert "prepare_flipflop_data" not in jobs
    # only what depends on the gnODE results follows
    assert set(jobs) - {"train_flipflop", "evaluate_flipflop"} <= {
        "summarise_flipflop", "plot_flipflop", "gather_claims", "all"
    } | {r for r in jobs if r.startswith(("analyse_flipflop", "plot_flipflop", "claims_flipflop"))}


def test_editing_gnode_source_reruns_the_jobs_whose_code_changed(finished):
    work, env = finished
    _edit(work / "src" / "gnode" / "plotting" / "flipflop.py")
    assert set(planned_jobs(work, *TEST, env=env)) == FLIPFLOP_PLOT_RULES | {"all"}

    _edit(work / "src" / "gnode" / "models.py")
    jobs = planned_jobs(work, *TEST, env=env)
    # every flip-flop training job of the tiny overlay (3-bit fixed has all five models); the
    # "Training ..." messages of the real-world jobs are left out
    flipflop = [m for m in jobs["train_flipflop"] if "flip-flop" in m]
    assert set(models_of(flipflop)) == {"rnn", "gru", "mgru", "node", "gnode"} and len(flipflop) == len(JOBS)
    assert "prepare_flipflop_data" not in jobs


def test_editing_the_scan_reruns_training_and_evaluation_but_not_the_data(finished):
    # gnode.scan is imported lazily by gnode.models: the import graph finds it
    work, env = finished
    _edit(work / "src" / "gnode" / "scan.py")
    jobs = planned_jobs(work, *TEST, env=env)
    flipflop = [m for m in jobs["train_flipflop"] if "flip-flop" in m]
    assert len(flipflop) == len(jobs["evaluate_flipflop"]) == len(JOBS)
    assert "fit_expressivity" in jobs  # the expressivity fits run the scan too
    assert "prepare_flipflop_data" not in jobs


def test_editing_the_claims_reruns_no_training(finished):
    work, env = finished
    _edit(work / "src" / "gnode" / "claims.py")
    jobs = planned_jobs(work, *TEST, env=env)
    assert {"claims_flipflop", "gather_claims"} <= set(jobs)
    trained = {"train_flipflop", "train_realworld", "fit_expressivity", "evaluate_flipflop", "prepare_flipflop_data"}
    assert not trained & set(jobs), sorted(jobs)
