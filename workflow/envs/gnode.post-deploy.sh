#!/usr/bin/env bash
# Install the gnode package (this repository) into the freshly created conda environment.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python -m pip install --no-deps -e "$repo"
