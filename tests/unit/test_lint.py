"""The code stays lint-clean: ruff on the Python sources, snakefmt on the Snakemake rules
(both configured in pyproject.toml and installed with the test extras)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    proc = _run("ruff", "check", "--no-cache", "src", "tests", "workflow/scripts", "benchmarks", "scripts")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_rules_are_formatted_by_snakefmt():
    proc = _run("snakefmt", "--check", "Snakefile", "workflow/rules")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
