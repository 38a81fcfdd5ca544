#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage functions run indirectly (stage -> timeout -> bash -c)
# tools/gpu_check.sh — flowcore's CUDA checks on a machine with an NVIDIA GPU, in under 5 minutes.
#
#   tools/gpu_check.sh [WHEEL_DIR]        (or: GPU_WHEEL_PARTS=WHEEL_DIR tools/gpu_check.sh)
#
# WHEEL_DIR holds the onnxruntime-gpu wheel, whole (onnxruntime_gpu-*.whl) or in parts
# (NAME.whl.part*, joined in sorted order), and optionally a *.sha256 file ("HASH [name]") that
# the joined wheel must match. Any other *.whl there is installed first (--no-deps).
#
# What it does: without a working `nvidia-smi`, says so and exits 0. Otherwise it
#   1. joins (and checks) the wheel;
#   2. makes a virtual environment WITHOUT the system site packages (they hold the CPU build of
#      onnxruntime, which hides the CUDA provider), links numpy / onnx / numba / pytest / torch ...
#      from this machine's python3 into it (tools/_gpu_venv.py: nothing is downloaded), removes
#      any onnxruntime, installs the GPU wheel and flowcore from this tree with --no-deps;
#   3. runs `flowcore doctor --json --bundle <demo>`, the `cuda`-marked tests, the GPU rows of
#      the benchmark (`tools/bench_engines.py --device cuda --quick`, when that script exists) and,
#      with an exported TAEF2 bundle carried ($GPU_CHECK_TAEF2/taef2_256), the paper-scale TAEF2 run
#      (`tools/bench_taef2.py --device cuda --sizes 256 --foundation`);
#   4. writes everything under $OUT (./gpu_out when OUT is unset): results.json (summary),
#      doctor.json, pytest_cuda.log, bench.log, bench/, gpu_check.log.
# Every stage runs under `timeout`, inside one budget (GPU_CHECK_BUDGET seconds, default 280).
# Exit code: 0 when every stage passed (or there is no GPU), 1 when one failed, 2 without a wheel.
#
# Environment: GPU_WHEEL_PARTS, OUT, GPU_CHECK_BUDGET, GPU_CHECK_PYTHON (default python3: the
# interpreter whose packages are linked), GPU_CHECK_TORCH (default 1: link torch for the peers).

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=${OUT:-$PWD/gpu_out}
BUDGET=${GPU_CHECK_BUDGET:-280}
PY=${GPU_CHECK_PYTHON:-python3}
DEADLINE=$(($(date +%s) + BUDGET))

if ! command -v nvidia-smi >/dev/null 2>&1 || ! timeout 30 nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here; nothing to do"
  exit 0
fi

mkdir -p "$OUTDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export ROOT OUTDIR PY WORK
LOG="$OUTDIR/gpu_check.log"
STAGES="$WORK/stages.tsv"
: >"$LOG"
: >"$STAGES"
timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$WORK/nvidia-smi.txt" 2>&1
cat "$WORK/nvidia-smi.txt"

say() { echo "gpu_check: $*" | tee -a "$LOG"; }

record() {  # record NAME RC SECONDS LOGNAME
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STAGES"
}

stage() {  # stage NAME CAP LOGFILE CMD... : run CMD under timeout (CAP, capped by what is left)
  local name=$1 cap=$2 logfile=$3
  shift 3
  local left=$((DEADLINE - $(date +%s)))
  if ((left < 5)); then
    say "[$name] not run: the ${BUDGET}s budget is spent"
    record "$name" 124 0 "$(basename "$logfile")"
    return 124
  fi
  ((cap > left)) && cap=$left
  say "[$name] (limit ${cap}s)"
  local t0 rc=0
  t0=$(date +%s)
  # a shell function runs in a child bash (timeout runs programs): functions and variables exported
  if declare -F "$1" >/dev/null; then
    timeout --kill-after=5 "$cap" bash -c '"$@"' _ "$@" >>"$logfile" 2>&1 || rc=$?
  else
    timeout --kill-after=5 "$cap" "$@" >>"$logfile" 2>&1 || rc=$?
  fi
  record "$name" "$rc" "$(($(date +%s) - t0))" "$(basename "$logfile")"
  ((rc == 0)) || say "[$name] failed (exit $rc; 124 = timed out); see $(basename "$logfile")"
  return "$rc"
}

finish() {  # finish EXIT_CODE: results.json, then exit
  "$PY" "$ROOT/tools/_gpu_venv.py" summary "$OUTDIR" "$STAGES" "$WORK/nvidia-smi.txt" | tee -a "$LOG"
  rm -rf "$WORK"
  say "results in $OUTDIR/results.json"
  exit "$1"
}

# ---- 1. the wheel ------------------------------------------------------------------------------
PARTS_DIR=${1:-${GPU_WHEEL_PARTS:-}}
export PARTS_DIR
if [[ -z "$PARTS_DIR" || ! -d "$PARTS_DIR" ]]; then
  say "no wheel folder: pass the folder with the onnxruntime-gpu wheel (or its parts) as the first argument or GPU_WHEEL_PARTS"
  record wheel 2 0 gpu_check.log
  finish 2
fi

join_wheel() {  # -> $WORK/joined.whl
  local first prefix
  first=$(find "$PARTS_DIR" -maxdepth 1 -name '*.whl.part*' | LC_ALL=C sort | head -n 1)
  if [[ -n "$first" ]]; then
    prefix=${first%.part*}
    echo "joining $(find "$PARTS_DIR" -maxdepth 1 -name "$(basename "$prefix").part*" | wc -l) parts of $(basename "$prefix")"
    find "$PARTS_DIR" -maxdepth 1 -name "$(basename "$prefix").part*" | LC_ALL=C sort | xargs cat >"$WORK/joined.whl" || return 1
  else
    first=$(find "$PARTS_DIR" -maxdepth 1 -name 'onnxruntime_gpu-*.whl' | head -n 1)
    [[ -n "$first" ]] || { echo "no *.whl.part* and no onnxruntime_gpu-*.whl in $PARTS_DIR"; return 1; }
    cp "$first" "$WORK/joined.whl" || return 1
  fi
  local sums want got
  sums=$(find "$PARTS_DIR" -maxdepth 1 -name '*.sha256' | head -n 1)
  if [[ -n "$sums" ]]; then
    want=$(awk 'NR == 1 {print $1}' "$sums")
    got=$(sha256sum "$WORK/joined.whl" | awk '{print $1}')
    [[ "$want" == "$got" ]] || { echo "sha256 mismatch: $got, expected $want ($sums)"; return 1; }
    echo "sha256 ok ($got)"
  else
    echo "no *.sha256 in $PARTS_DIR: the joined wheel is not checked"
  fi
  local name
  name=$("$PY" "$ROOT/tools/_gpu_venv.py" wheel-name "$WORK/joined.whl") || return 1
  mv "$WORK/joined.whl" "$WORK/$name" && echo "$WORK/$name" >"$WORK/wheel.path"
}
export -f join_wheel
stage wheel 60 "$LOG" join_wheel || finish 1
WHEEL=$(cat "$WORK/wheel.path")

# ---- 2. the environment ------------------------------------------------------------------------
VENV="$WORK/venv"
VPY="$VENV/bin/python"
LINKED="pip setuptools wheel numpy onnx numba tqdm pytest flatbuffers protobuf packaging sympy"
[[ "${GPU_CHECK_TORCH:-1}" == "1" ]] && LINKED="$LINKED torch"
export WHEEL VENV VPY LINKED

make_env() {
  "$PY" -m venv --without-pip "$VENV" || return 1
  local site extra
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
  "$PY" "$ROOT/tools/_gpu_venv.py" link "$site" pip || return 1
  # carried wheels first, so that the links below never shadow (or get replaced by) them
  for extra in "$PARTS_DIR"/*.whl; do
    [[ -e "$extra" && "$(basename "$extra")" != onnxruntime* ]] || continue
    "$VPY" -m pip install -q --no-index --no-deps "$extra" || return 1
  done
  # shellcheck disable=SC2086  # LINKED is a list of names
  "$PY" "$ROOT/tools/_gpu_venv.py" link "$site" $LINKED || return 1
  "$VPY" -m pip uninstall -y -q onnxruntime 2>&1 | grep -v "not installed" || true
  "$VPY" -m pip install -q --no-index --no-deps "$WHEEL" || return 1
  # flowcore from a clean copy of the tree's package sources (no stale build/ folder is reused)
  mkdir -p "$WORK/src" && cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/flowcore" "$WORK/src/" || return 1
  for f in LICENSE MANIFEST.in setup.cfg; do [[ -e "$ROOT/$f" ]] && cp "$ROOT/$f" "$WORK/src/"; done
  find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
  "$VPY" -m pip install -q --no-index --no-deps --no-build-isolation "$WORK/src" || return 1
  "$VPY" -m pip list 2>/dev/null | grep -i -E '^(onnxruntime|numpy|onnx|numba|torch|flowcore|pytest) '
}
export -f make_env
stage env 150 "$LOG" make_env || finish 1

# the CUDA / cuDNN libraries of the nvidia-* packages (linked with torch), for ONNX Runtime's CUDA EP
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
NVLIBS=$(find -L "$SITE/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd: -)
export LD_LIBRARY_PATH="${NVLIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR="$WORK/numba"
"$VPY" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())' 2>&1 | tee -a "$LOG"

# ---- 3. the checks -----------------------------------------------------------------------------
cd "$ROOT" || finish 1
run_doctor() { "$VENV/bin/flowcore" doctor --json --bundle flowcore/data/demo/bundle >"$OUTDIR/doctor.json"; }
export -f run_doctor
stage doctor 90 "$LOG" run_doctor

mapfile -t CUDA_TESTS < <(grep -l 'mark\.cuda' tests/test_*.py)
if ((${#CUDA_TESTS[@]})); then
  stage pytest_cuda 120 "$OUTDIR/pytest_cuda.log" "$VPY" -m pytest -q -rs -p no:cacheprovider -m cuda "${CUDA_TESTS[@]}"
else
  say "[pytest_cuda] no test module carries the cuda marker"
  record pytest_cuda skipped 0 gpu_check.log
fi

if [[ -f tools/bench_engines.py ]]; then
  stage bench 150 "$OUTDIR/bench.log" "$VPY" tools/bench_engines.py --device cuda --quick --out "$OUTDIR/bench"
else
  say "[bench] tools/bench_engines.py is not in this tree: no GPU benchmark rows"
  record bench skipped 0 gpu_check.log
fi

# the paper-scale run: TAEF2 at 256² (k = 32,768) on CUDA, from a bundle exported on a CPU machine and carried
# (python tools/bench_taef2.py --sizes 256 --starts 1 --steps 1 --repeats 1 --out taef2_cache; the venv here has
# neither torch's ONNX exporter nor the weights). GPU_CHECK_TAEF2 names the folder holding taef2_256/.
TAEF2_CACHE="${GPU_CHECK_TAEF2:-$ROOT/taef2_cache}"
if [[ -f "$TAEF2_CACHE/taef2_256/flow.json" ]]; then
  mkdir -p "$OUTDIR/taef2" && cp -r "$TAEF2_CACHE/taef2_256" "$WORK/taef2_256"
  stage taef2 120 "$OUTDIR/taef2.log" "$VPY" tools/bench_taef2.py --device cuda --sizes 256 --starts 32 --steps 20 \
    --repeats 2 --foundation --out "$WORK"
  cp "$WORK/bench_taef2.json" "$OUTDIR/taef2/" 2>/dev/null || true
else
  say "[taef2] no exported TAEF2 bundle at $TAEF2_CACHE/taef2_256 (see tools/gpu_check.md): not run"
  record taef2 skipped 0 gpu_check.log
fi

# exit 0 when every stage that ran passed
awk -F'\t' '$2 != "0" && $2 != "skipped" {bad = 1} END {exit bad}' "$STAGES" && finish 0
finish 1
