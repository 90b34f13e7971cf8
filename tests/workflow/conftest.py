"""Fixtures that run the real Snakefile in a temporary copy of the repository."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
COPY = ["Snakefile", "workflow", "config", "profiles"]
# the real Walker2d rollouts, where present: the tiny run trains on a few of them
WALKER_DIRS = [Path(os.environ["GNODE_WALKER2D_DIR"])] if os.environ.get("GNODE_WALKER2D_DIR") else []
WALKER_DIRS += [ROOT.parent / "shared" / "data" / "walker2d", Path("/work/shared/data/walker2d")]
N_ROLLOUTS = 24  # rollout_000..023: 18 train / 3 val / 3 test files, 523 / 99 / 141 windows


def provide_walker_rollouts(work: Path) -> list[str]:
    """Put a few Walker2d rollouts in ``work/data/walker2d`` (the test overlay's local dir).

    Real rollouts when a copy is found (checked against their published SHA-256, verify:
    present); otherwise self-made ones of the same format, and the returned extra arguments
    switch verification off for them.
    """
    dest = work / "data" / "walker2d"
    dest.mkdir(parents=True, exist_ok=True)
    src = next((d for d in WALKER_DIRS if (d / "rollout_000.npy").exists()), None)
    if src is not None:
        for i in range(N_ROLLOUTS):
            shutil.copy(src / f"rollout_{i:03d}.npy", dest)
        return []
    rng = np.random.default_rng(0)
    for i in range(N_ROLLOUTS):
        np.save(dest / f"rollout_{i:03d}.npy", rng.standard_normal((int(rng.integers(150, 400)), 17)))
    over = work / "config" / "test" / "synthetic_walker.yaml"
    over.write_text("data:\n  walker2d: {verify: none}\n")
    return ["--configfile", "config/test/config.yaml", str(over.relative_to(work))]


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
    args = provide_walker_rollouts(work) or ["--configfile", "config/test/config.yaml"]
    proc = snakemake(work, *args)
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


# what the tiny test overlay (config/test/config.yaml) trains
MODELS = ["rnn", "gru", "mgru", "node", "gnode"]
EXPERIMENTS = ["3bit_fixed", "3bit_variable", "2bit_rectangle", "2bit_disk", "2bit_ring", "2bit_fixed", "2bit_square"]
CONTINUOUS = [e for e in EXPERIMENTS if e not in ("3bit_fixed", "2bit_fixed")]  # held values are continuous
# (experiment, model, N) of the tiny overlay
JOBS = [("3bit_fixed", m, 4) for m in MODELS] + [("3bit_variable", "node", 4), ("3bit_variable", "gnode", 3),
        ("3bit_variable", "gnode", 4)] + [(e, "gnode", 2) for e in EXPERIMENTS[2:]]
