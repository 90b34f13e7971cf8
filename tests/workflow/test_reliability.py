"""Reliability of the workflow: bad configs stop before any job, a SIGKILLed training resumes
from its checkpoint to the same result, runs are deterministic, the report builds."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from gnode import io

from .conftest import copy_repo, snakemake

TIMING_COLUMNS = {"elapsed_s", "train_time_s"}


@pytest.mark.parametrize(
    "override,needle",
    [
        (["device=gpu"], "config key 'device': got \"gpu\"; allowed: 'auto', 'cpu', 'cuda' or 'mps'"),
        (["threads=0"], "config key 'threads': got 0"),
    ],
)
def test_a_bad_config_stops_before_any_job_and_creates_nothing(tmp_path, override, needle):
    work = copy_repo(tmp_path)
    proc = snakemake(work, "--configfile", "config/test/config.yaml", "--config", *override, check=False)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (work / "results").exists() and not (work / "logs").exists()


def _tables(work):
    """Every Parquet file of a run, as DataFrames without timing columns."""
    out = {}
    for p in sorted((work / "results").rglob("*.parquet")):
        df = io.read_table(p)
        out[str(p.relative_to(work))] = df.drop(columns=[c for c in df.columns if c in TIMING_COLUMNS])
    return out


def test_same_seeds_give_identical_tables_another_seed_different(tiny_run, tmp_path):
    first, _ = tiny_run
    # a second run of one model's chain (data, training, evaluation) is enough to compare
    target = ["--", "results/flipflop/3bit_fixed/gnode_N4/evaluation.parquet"]
    again = copy_repo(tmp_path / "again")
    snakemake(again, "--configfile", "config/test/config.yaml", *target)
    a, b = _tables(first), _tables(again)
    assert len(b) == 4  # data, history, evaluation, examples
    for name in b:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    other = copy_repo(tmp_path / "other")
    snakemake(other, "--configfile", "config/test/config.yaml", "--config", "seed=1", *target)
    c = _tables(other)
    assert not a["results/flipflop/data/3bit_fixed.parquet"].equals(c["results/flipflop/data/3bit_fixed.parquet"])
    assert not np.allclose(
        a["results/flipflop/3bit_fixed/gnode_N4/evaluation.parquet"]["test_loss"],
        c["results/flipflop/3bit_fixed/gnode_N4/evaluation.parquet"]["test_loss"],
    )


KILL_CONFIG = """
flipflop:
  experiments:
    3bit_fixed:
      models: [gnode]
      epochs: 40
      checkpoint_every: 1
"""
TARGET = "results/flipflop/3bit_fixed/gnode_N4/evaluation.parquet"


def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    reference = copy_repo(tmp_path / "reference")
    killed = copy_repo(tmp_path / "killed")
    for work in (reference, killed):
        (work / "config" / "kill.yaml").write_text(KILL_CONFIG)
    args = ["--configfile", "config/test/config.yaml", "config/kill.yaml", "--", TARGET]
    snakemake(reference, *args)

    ckpt = killed / "results/checkpoints/flipflop/3bit_fixed/gnode_N4/batch8.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args],
        cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 5 <= killed_at < 40
    assert not (killed / TARGET).exists()

    snakemake(killed, "--unlock", *args)
    snakemake(killed, *args)
    log = (killed / "logs/train_flipflop/3bit_fixed/gnode_N4.log").read_text()
    assert "resumed from checkpoint" in log
    ref_model = torch.load(reference / "results/flipflop/3bit_fixed/gnode_N4/model.pt", weights_only=True)
    new_model = torch.load(killed / "results/flipflop/3bit_fixed/gnode_N4/model.pt", weights_only=True)
    for name, value in ref_model["state"].items():
        assert torch.equal(value, new_model["state"][name]), name
    a = io.read_table(reference / TARGET).drop(columns=["train_time_s"])
    b = io.read_table(killed / TARGET).drop(columns=["train_time_s"])
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_report_holds_every_figure_and_the_claims(tiny_run, tmp_path):
    work, _ = tiny_run
    report = tmp_path / "report.html"
    snakemake(work, "--configfile", "config/test/config.yaml", "--report", str(report))
    text = report.read_text(errors="replace")
    assert report.stat().st_size > 50_000
    for name in ["3bit_fixed_test_loss.png", "3bit_fixed_example.png", "claims.html", "summary.html"]:
        assert name in text, name
