#!/usr/bin/env bash
# run_slurm_test.sh -- run the workflow through REAL sbatch jobs on a one-node
# SLURM cluster on this machine (scripts/slurm_cluster.sh), with profiles/slurm.
#
#   scripts/run_slurm_test.sh                     # repo workflow, --configfile config/test/config.yaml config/test/shared_walker2d.yaml
#   scripts/run_slurm_test.sh [snakemake args...] # e.g. --directory /tmp/demo -s /tmp/demo/Snakefile
#
# Steps: start the cluster (if it is not running), run
#   timeout -s INT $SLURM_TEST_TIMEOUT snakemake --profile profiles/slurm ARGS
# print the SLURM job ids that Snakemake submitted, then stop the cluster
# (on every exit path, via a trap) -- unless it was already running before.
#
# Environment:
#   SNAKEMAKE                path of the snakemake to use (default: `command -v snakemake`)
#   SLURM_TEST_TIMEOUT       seconds before the run is interrupted (default: 1200)
#   SLURM_TEST_KEEP_CLUSTER  1 = leave the cluster running afterwards
#   SLURM_TEST_LOG           file for the run's output (default: a new /tmp/run_slurm_test.*.log)
#   GNODE_SLURM_PARTITION    partition (default here: the test cluster's, `debug`)
#
# Needs root (the cluster script installs and starts system daemons).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER="$ROOT/scripts/slurm_cluster.sh"
TIMEOUT_S="${SLURM_TEST_TIMEOUT:-1200}"
LOG="${SLURM_TEST_LOG:-$(mktemp /tmp/run_slurm_test.XXXXXX.log)}"

say() { echo "[run_slurm_test] $*"; }
die() { echo "[run_slurm_test] ERROR: $*" >&2; exit 1; }

cd "$ROOT"

# ---- which snakemake / Python ------------------------------------------------
SMK="${SNAKEMAKE:-$(command -v snakemake || true)}"
{ [ -n "$SMK" ] && [ -x "$SMK" ]; } || die "snakemake not found: activate the project's virtual environment or set SNAKEMAKE=/path/to/snakemake"
# The interpreter that runs snakemake (from the console script's shebang).
PY=$(head -n1 "$SMK" | sed -n 's/^#![[:space:]]*//p' | awk '{print $1}')
[ -x "$PY" ] || die "cannot find the Python interpreter of $SMK (shebang: $(head -n1 "$SMK"))"
# (importlib.metadata, not `snakemake --version`: importing the SLURM plugin
# runs scontrol, which waits ~10 s while no controller is up.)
pkg_version() { "$PY" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$1" 2>/dev/null; }
SMK_VERSION=$(pkg_version snakemake) || die "$PY has no snakemake package"
PLUGIN_VERSION=$(pkg_version snakemake-executor-plugin-slurm) \
    || die "snakemake-executor-plugin-slurm is not installed for $PY: $PY -m pip install snakemake-executor-plugin-slurm"
# The SLURM jobs inherit this environment (sbatch --export=ALL): put the
# interpreter's bin directory first on PATH so that `python`/`snakemake` inside
# the jobs' shell commands are this environment's, even if it was not activated.
PYBIN=$(dirname "$PY")
export PATH="$PYBIN:$PATH"
say "snakemake $SMK_VERSION ($SMK), snakemake-executor-plugin-slurm $PLUGIN_VERSION, PATH starts with $PYBIN"

# ---- arguments ---------------------------------------------------------------
if [ $# -eq 0 ]; then
    [ -f config/test/config.yaml ] || die "no arguments given and $ROOT/config/test/config.yaml does not exist"
    set -- --configfile config/test/config.yaml config/test/shared_walker2d.yaml
fi

# ---- cluster -----------------------------------------------------------------
STARTED=0
if "$CLUSTER" status >/dev/null 2>&1; then
    say "SLURM cluster already running: using it, and leaving it running afterwards"
else
    STARTED=1
fi

SMK_PID=""
# shellcheck disable=SC2317  # cleanup is only called through the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$SMK_PID" ] && kill -0 "$SMK_PID" 2>/dev/null; then
        say "interrupting snakemake (pid $SMK_PID) with SIGINT"
        kill -INT "$SMK_PID" 2>/dev/null || true
        wait "$SMK_PID" 2>/dev/null || true
    fi
    if [ "$STARTED" = 1 ] && [ "${SLURM_TEST_KEEP_CLUSTER:-0}" != 1 ]; then
        "$CLUSTER" stop || true
    else
        say "leaving the SLURM cluster running (stop it with: $CLUSTER stop)"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Snakemake only stops on SIGINT (SIGTERM just makes it wait for running jobs),
# so both Ctrl-C and a TERM sent to this script are passed on as SIGINT.
trap 'exit 130' INT TERM

"$CLUSTER" start

export GNODE_SLURM_PARTITION="${GNODE_SLURM_PARTITION:-$(sinfo -h -o %P | sed -n 's/\*$//p' | head -n1)}"
say "partition: ${GNODE_SLURM_PARTITION:-<cluster default>}; timeout: ${TIMEOUT_S}s; log: $LOG"

# ---- run -----------------------------------------------------------------------
CMD=("$SMK" --profile "$ROOT/profiles/slurm" "$@")
say "running: timeout --foreground -s INT $TIMEOUT_S ${CMD[*]}"
t0=$(date +%s)
set +e
# `timeout -s INT`: on timeout send SIGINT (SIGTERM does not stop a waiting
# snakemake), and SIGKILL 60 s later if it is still alive. --foreground: signal
# snakemake only, once; without it timeout ALSO signals its process group, the
# second SIGINT interrupts snakemake's own `scancel` of its running jobs.
# (Jobs left over anyway are cancelled by `slurm_cluster.sh stop`.)
timeout --foreground -s INT -k 60 "$TIMEOUT_S" "${CMD[@]}" > >(tee "$LOG") 2>&1 &
SMK_PID=$!
wait "$SMK_PID"
rc=$?
SMK_PID=""
set -e
wall=$(( $(date +%s) - t0 ))
sleep 0.2   # let tee flush

# ---- report --------------------------------------------------------------------
JOBIDS=$(grep -oE 'submitted with SLURM jobid [0-9]+' "$LOG" | awk '{print $NF}' | tr '\n' ' ' || true)
echo
say "snakemake exit code: $rc$([ "$rc" = 124 ] && echo " (timed out after ${TIMEOUT_S}s)")"
say "wall time: ${wall}s"
say "SLURM job ids used: ${JOBIDS:-none}"
if [ -n "${JOBIDS// /}" ]; then
    # Finished jobs stay visible to squeue for MinJobAge (300 s); no sacct here.
    squeue -t all -j "$(echo "$JOBIDS" | xargs | tr ' ' ',')" -o '%.8i %.40k %.10T %.8M %R' 2>/dev/null || true
fi
say "full log: $LOG"
exit "$rc"
