#!/usr/bin/env bash
# The GPU check: one command, run from the repo root on a machine with a CUDA
# GPU and torch installed (no internet needed). Builds the extension for that
# machine's torch and card, runs the CUDA tests and the CUDA benchmarks, and
# writes logs, the benchmark JSON and a results table to $OUT (default
# ./gpu-out). The table comes last on stdout.
#
#   bash scripts/gpu_check.sh            # everything, ~5 minutes on an H100
#   GPU_CHECK_STAGES="tests" bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
STAGES=${GPU_CHECK_STAGES:-"build tests bench profile"}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
status=0
stage() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

device_info() {
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '|', torch.cuda.get_device_name())"
}
device_info

if stage build; then
  # Only this card's architecture, on every core: minutes, not tens of them.
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}
  export TORCH_CUDA_ARCH_LIST MLPBENCH_CUDA=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  echo "== build (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, MAX_JOBS=$MAX_JOBS)"
  start=$SECONDS
  if ! "$PY" setup.py build_ext --inplace >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    echo "BUILD FAILED"
    exit 1
  fi
  echo "built in $((SECONDS - start)) s"
  "$PY" -c "import mlpbench; assert mlpbench.ops._C.has_cuda(), 'built without CUDA kernels'"
fi

if stage tests; then
  echo "== C++ errors raise Python exceptions (also after Triton has compiled a kernel)"
  timeout 120 "$PY" - <<'PYEOF' 2>&1 | tail -5
import torch
from mlpbench import ops
def check(label):
    for dev in ("cpu", "cuda"):
        try:
            ops.linear_act(torch.randn(4, 12, device=dev), torch.randn(5, 13, device=dev))
        except ValueError:
            print(label, dev, "ValueError: ok")
check("before compile:")
torch.compile(lambda t: t.sin() + 1)(torch.randn(8, device="cuda"))
try:
    torch.mm(torch.randn(2, 3, device="cuda"), torch.randn(2, 3, device="cuda"))
except RuntimeError:
    print("torch's own error after compile: ok")
check("after compile:")
PYEOF
  echo "== CUDA tests"
  # Workers (pytest-xdist, where installed): a crash fails one test, not the run.
  xdist=()
  "$PY" -c "import xdist" 2>/dev/null && xdist=(-n 8)
  timeout 180 "$PY" -m pytest -q -p no:cacheprovider "${xdist[@]}" tests -k cuda >"$OUT/tests.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=1 && grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | head -40
  tail -1 "$OUT/tests.log"
fi

if stage bench; then
  # Eager rows first (the targets), then torch.compile rows in a run of their
  # own: ReLU at the lecture's shapes, since every row compiles a graph.
  bench_args=(-q -p no:cacheprovider bench --benchmark-only --benchmark-max-time=0.05
              --benchmark-min-rounds=5)
  echo "== CUDA benchmarks: eager"
  # (240 s: fused rows also time stock and the floor beside themselves.)
  timeout 240 "$PY" -m pytest "${bench_args[@]}" -k "cuda and not compile" \
    --benchmark-json="$OUT/bench.json" >"$OUT/bench.log" 2>&1 || status=1
  tail -1 "$OUT/bench.log"
  echo "== CUDA benchmarks: torch.compile"
  MLPBENCH_BENCH_COMPILE=${MLPBENCH_BENCH_COMPILE:-relu} timeout 100 "$PY" -m pytest \
    "${bench_args[@]}" -k "cuda and compile and not 1024x1024" \
    --benchmark-json="$OUT/bench-compile.json" >>"$OUT/bench.log" 2>&1 || status=1
  tail -1 "$OUT/bench.log"
  grep -E "^(FAILED|ERROR)" "$OUT/bench.log" | head -20
  jsons=()
  for f in "$OUT/bench.json" "$OUT/bench-compile.json"; do [ -s "$f" ] && jsons+=("$f"); done
  if [ ${#jsons[@]} -gt 0 ]; then
    "$PY" -m mlpbench.report "${jsons[@]}" --device cuda --markdown "$OUT/gpu-results.md" \
      --figures "$OUT/figures" --title "GPU results ($(device_info | tr '\n' ' '))"
    "$PY" -m mlpbench.report "${jsons[@]}" --device cuda --targets | tee "$OUT/targets.md"
  fi
fi
if stage profile; then
  echo "== profile"
  timeout 90 "$PY" scripts/gpu_profile.py >"$OUT/profile.txt" 2>&1 || status=1
fi
exit $status
