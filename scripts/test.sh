#!/usr/bin/env bash
# One command for the tests: set up .venv, then run the whole suite (unit tests and a tiny
# end-to-end run of the real workflow). Extra arguments go to pytest, e.g. -k flipflop.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
