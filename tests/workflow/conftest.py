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


def planned_jobs(workdir: Path, *args: str, env: dict | None = None) -> dict[str, list[str]]:
    """The jobs a dry run would run: rule -> the messages of its jobs (rules print their
    ``message:``, e.g. "Training gnode (N=4) on ..."); {} when nothing is to be done."""
    out = snakemake(workdir, "-n", *args, env=env).stdout
    counts: dict[str, int] = {}
    in_stats = False
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("job ") and "count" in line:
            in_stats = True
        elif in_stats and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
        elif in_stats and parts and parts[0] == "total":
            break
    messages = re.findall(r"^Job \d+: (.*)$", out, flags=re.M)
    jobs = {rule: [] for rule in counts}
    for rule in counts:
        prefix = RULE_MESSAGES.get(rule)
        jobs[rule] = [m for m in messages if prefix and m.startswith(prefix)]
    return jobs


# the first words of each rule's message, to tell its jobs apart in a dry run
RULE_MESSAGES = {"train_flipflop": "Training ", "evaluate_flipflop": "Evaluating "}


def models_of(messages: list[str]) -> list[str]:
    """The model names in messages like 'Training gnode (N=4) on ...', sorted."""
    return sorted(m.split()[1] for m in messages)
