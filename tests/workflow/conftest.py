"""Fixtures that run the real Snakefile in a temporary copy of the repository."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPY = ["Snakefile", "workflow", "config", "profiles"]


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; the output is returned (and shown when it fails)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    run_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900, env=run_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole default workflow, run once with the tiny test overlay."""
    work = copy_repo(tmp_path_factory.mktemp("tiny"))
    proc = snakemake(work, "--configfile", "config/test/config.yaml")
    return work, proc


def planned_jobs(workdir: Path, *args: str, env: dict | None = None) -> dict[str, list[dict]]:
    """The jobs a dry run would run: rule -> list of wildcard dicts."""
    out = snakemake(workdir, "-n", *args, env=env).stdout
    jobs: dict[str, list[dict]] = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if m:
            current = m.group(1)
            jobs.setdefault(current, []).append({})
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and current:
            jobs[current][-1] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
    return jobs
