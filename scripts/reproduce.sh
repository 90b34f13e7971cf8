#!/usr/bin/env bash
# One command for the default reproduction: set up .venv, then run the workflow with the
# default (quick, CPU) profile. Extra arguments go to snakemake, e.g.
#   bash scripts/reproduce.sh --configfile config/paper.yaml --profile profiles/gpu
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/snakemake "$@"
