"""P4: wall time of the default workflow from a clean results/, and of the paper profile's dry run.

Runs in a temporary copy of the repository, so the checkout's results/ is untouched.

    python benchmarks/p4_workflow.py [--cores 2] [--skip-run]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snakemake(work: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--skip-run", action="store_true", help="only the dry runs")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ["Snakefile", "workflow", "config", "profiles"]:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
        t_dry = snakemake(work, "-n", "--cores", str(a.cores), "--configfile", "config/paper.yaml")
        print(f"P4 paper-profile dry run: {t_dry:.1f} s (target <= 10 s)")
        if not a.skip_run:
            t_run = snakemake(work, "--cores", str(a.cores))
            print(f"P4 default workflow from a clean results/ on {a.cores} cores: {t_run:.0f} s ({t_run / 60:.1f} min)")


if __name__ == "__main__":
    main()
