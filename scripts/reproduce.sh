#!/usr/bin/env bash
# One command for the default reproduction: set up .venv, then run the workflow with the
# default (quick, CPU) profile. Extra arguments go to snakemake, e.g.
#   bash scripts/reproduce.sh --configfile config/paper.yaml --profile profiles/gpu
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
# Snakemake stops with a traceback (or a message naming no file) on a missing config file, a
# folder, an empty one or `--config device` without a value: check the arguments first, in one line.
.venv/bin/python -m gnode check-config -- "$@" || exit 2
exec .venv/bin/snakemake "$@"
