#!/usr/bin/env bash
# Create (or update) the project's virtual environment .venv: Python >= 3.11, the CPU build of
# torch pinned (requirements/torch-cpu.txt), and gnode installed in editable mode with its
# test extras. Re-running is cheap: nothing is reinstalled unless pyproject.toml or the pin
# changed. GNODE_TORCH=skip keeps whatever torch the environment already has (GPU machines).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    command -v "$cand" >/dev/null 2>&1 && { py="$cand"; break; }
  done
fi
[ -n "$py" ] || { echo "setup: no python3 found (Python >= 3.11 is needed)" >&2; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: $py is $("$py" -V 2>&1); Python >= 3.11 is needed (set PYTHON=...)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$py" -V 2>&1)"
  "$py" -m venv .venv
fi
stamp=.venv/.gnode-setup
want="$(cat pyproject.toml requirements/torch-cpu.txt | sha256sum | cut -c1-16) ${GNODE_TORCH:-pinned}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  if [ "${GNODE_TORCH:-}" != "skip" ]; then
    echo "setup: installing torch (requirements/torch-cpu.txt)"
    "${pip[@]}" -r requirements/torch-cpu.txt
  fi
  echo "setup: installing gnode and its dependencies"
  "${pip[@]}" -e ".[test]"
  echo "$want" > "$stamp"
fi
