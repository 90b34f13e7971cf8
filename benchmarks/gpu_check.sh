#!/usr/bin/env bash
# One command for the day a GPU machine is lent (a few minutes; every step has its own time limit,
# and all of them together BUDGET_S): the GPU and its software, the test suite's CUDA tests, P1, P2 and P6
# on the GPU, seconds per iteration of a paper-profile 3-bit variable job at batch 10/50/100, and
# the paper profile's projected cost (benchmarks/p5_paper_cost.py, where it exists).
#
#   bash benchmarks/gpu_check.sh          # on the GPU machine (DEVICE=cuda)
#   bash benchmarks/gpu_check.sh --dry    # the same steps on the CPU, tiny sizes: tests this script
#
# Environment: DEVICE (default cuda; --dry sets cpu), PYTHON (default .venv/bin/python, else
# python3), OUT (the log goes to $OUT/gpu_check.log; default benchmarks/gpu_check.log), BUDGET_S
# (default 540: a step's limit is cut to what is left of it, and a step with under 10 s left is
# skipped; the device machines allow 600 s per command).
# A failing step is logged and the next one runs; the exit status is 1 if any step failed.
set -u -o pipefail
cd "$(dirname "$0")/.."

DRY=0
case "${1:-}" in
  --dry) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry]" >&2; exit 2 ;;
esac
if [ "$DRY" = 1 ]; then DEVICE=cpu; else DEVICE=${DEVICE:-cuda}; fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${OUT:-}" ]; then LOG="$OUT/gpu_check.log"; else LOG=benchmarks/gpu_check.log; fi
mkdir -p "$(dirname "$LOG")"

FAILED=()
BUDGET_S=${BUDGET_S:-540}
START=$(date +%s)
# step NAME SECONDS COMMAND...: run COMMAND under a time limit (a shell function of this script
# is given the limit as its first argument instead), log its status and wall time
step() {
  local name=$1 limit=$2 t0 rc left
  shift 2
  echo
  left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -lt 10 ]; then
    echo "=== $name: skipped, ${left} s left of BUDGET_S=$BUDGET_S"
    FAILED+=("$name (no time left)")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit} s): $*"
  t0=$(date +%s)
  if declare -F "$1" >/dev/null; then "$1" "$limit" "${@:2}"; else timeout "$limit" "$@"; fi
  rc=$?
  echo "=== $name: exit $rc, $(( $(date +%s) - t0 )) s"
  [ "$rc" = 0 ] || FAILED+=("$name (exit $rc)")
}

# the CUDA tests: tests/unit/test_fixed_points.py::test_runs_on_cuda (skipped without CUDA) and the
# device checks of tests/unit/test_device_check.py; on DEVICE=cuda a skipped test is a failure
cuda_tests() {
  local out rc
  out=$(mktemp)
  timeout "$1" "$PYTHON" -m pytest tests/unit -k "cuda or device_check" -rs -q -p no:cacheprovider | tee "$out"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ] && [ "$DEVICE" = cuda ] && grep -q "skipped" "$out"; then
    echo "a test was skipped although DEVICE=cuda"
    rc=1
  fi
  rm -f "$out"
  return "$rc"
}

main() {
  echo "gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname); DEVICE=$DEVICE DRY=$DRY PYTHON=$PYTHON"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)')"
  if command -v nvidia-smi >/dev/null; then
    step nvidia-smi 30 nvidia-smi
  else
    echo "nvidia-smi: not found"
    [ "$DEVICE" = cuda ] && FAILED+=("nvidia-smi (not found)")
  fi
  step versions 60 "$PYTHON" - "$DEVICE" <<'EOF'
import sys, torch, gnode
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA (build)", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
print("gnode from", gnode.__file__)
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("DEVICE=cuda but torch sees no CUDA device")
EOF

  local threads=() p1=() p2=() p6=() job=()
  if [ "$DRY" = 1 ]; then
    # one thread and tiny sizes: checks that every step runs, measures nothing
    export OMP_NUM_THREADS=1
    threads=(--threads 1)
    p1=(--members 3 --steps 2)
    p2=(--members 2 --batches 1 --repeat 1 --size 256)
    p6=(--shapes small --repeat 1)
    job=(--batches 10 100 --iterations 1)
  else
    p1=(--steps 20 --large)
    p2=(--repeat 5 --size 8192)
    p6=(--repeat 5)
    job=(--batches 10 50 100)
  fi
  step "CUDA tests" 90 cuda_tests
  step P1 90 "$PYTHON" benchmarks/p1_ensemble_vs_serial.py --device "$DEVICE" "${threads[@]}" "${p1[@]}"
  step P2 60 "$PYTHON" benchmarks/p2_flops.py --device "$DEVICE" "${threads[@]}" "${p2[@]}"
  step P6 120 "$PYTHON" benchmarks/p6_torch_func.py --device "$DEVICE" "${threads[@]}" "${p6[@]}"
  step "3-bit variable job" 90 "$PYTHON" benchmarks/job_timing.py --device "$DEVICE" "${threads[@]}" "${job[@]}"
  if [ -f benchmarks/p5_paper_cost.py ]; then
    if [ "$DRY" = 1 ]; then
      step "paper cost (--help only)" 30 "$PYTHON" benchmarks/p5_paper_cost.py --help
    else
      # its flags as of 2026-12-01 (written concurrently; check them with --help if this fails)
      step "paper cost" 120 "$PYTHON" benchmarks/p5_paper_cost.py --device "$DEVICE" --cores 1 \
        --profile paper=config/paper.yaml
    fi
  else
    echo; echo "=== paper cost: benchmarks/p5_paper_cost.py not found, skipped"
  fi

  echo
  if [ "${#FAILED[@]}" = 0 ]; then
    echo "gpu_check: all steps passed"
  else
    echo "gpu_check: FAILED: ${FAILED[*]}"
    return 1
  fi
}

main 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "log: $LOG"
exit "$rc"
