"""Checks when the workflow is planned (before any job): config files re-read strictly, the
device asked for exists; and a corrupt intermediate is found by verify and rebuilt."""

import subprocess
import sys

import pytest
import torch

from gnode import io

from .conftest import copy_repo, snakemake

TEST = ["--configfile", "config/test/config.yaml"]


def _mps():
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["dup.yaml"], "config file 'dup.yaml', line 2, column 1: duplicate key 'threads' (first given on line 1"),
        (["--config", 'flipflop={"data": {"n_trials": 1000000, "n_train": 999000, "n_bins": 100000}}'],
         "jobs cannot fit this machine's memory"),
        pytest.param(["--config", "device=cuda"], "config key 'device': device: cuda was asked for, but torch sees no CUDA",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        pytest.param(["--config", "device=mps"], "config key 'device': device: mps was asked for",
                     marks=pytest.mark.skipif(_mps(), reason="this machine has MPS")),
    ],
)
def test_plan_time_errors_stop_before_any_job(tmp_path, extra, needle):
    work = copy_repo(tmp_path)
    (work / "dup.yaml").write_text("threads: 1\nthreads: 2\n")
    proc = snakemake(work, *TEST, *extra, check=False)
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr
    assert not (work / "results").exists() and not (work / "logs").exists()


def test_a_flipped_byte_is_found_by_verify_deleted_and_rebuilt(tmp_path):
    work = copy_repo(tmp_path)
    target = "results/flipflop/data/3bit_fixed.parquet"
    snakemake(work, target, *TEST)
    path = work / target
    whole = path.read_bytes()
    bad = bytearray(whole)
    bad[len(bad) // 2] ^= 0x01
    path.write_bytes(bytes(bad))
    verify = [sys.executable, "-m", "gnode", "verify", "results"]
    proc = subprocess.run(verify, cwd=work, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 1 and f"CORRUPT   {target}: content sha256" in proc.stdout
    proc = subprocess.run([*verify, "--delete"], cwd=work, capture_output=True, text=True, check=False)
    assert f"deleted {target}" in proc.stdout and not path.exists()
    snakemake(work, target, *TEST)
    assert path.read_bytes() == whole and io.verify_checksum(path)  # the same trials, rebuilt
