#!/usr/bin/env bash
# Sets up a fresh machine for mlpbench: a virtual environment in .venv with the
# pinned dependencies (requirements/constraints.txt), and the package with its
# compiled kernels installed in place (editable). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
# torch's CUDA build takes ~5.6 GB in the venv: say so up front rather than
# fail halfway through pip with "No space left on device".
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  need_kb=$((7 * 1024 * 1024))
  free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
  if [ "$free_kb" -lt "$need_kb" ]; then
    echo "setup.sh: $(pwd) has $((free_kb / 1024)) MB free; installing torch into .venv needs about 7 GB. Free some disk space and run again." >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

pins=requirements/constraints.txt
# torch first: the extension is built against the installed torch
# (--no-build-isolation), so it and the build tools must be there before.
python -m pip install -q -c "$pins" torch torchvision ninja pybind11 setuptools wheel
# The kernels: CUDA ones too where torch has CUDA and nvcc is found (setup.py).
MAX_JOBS=${MAX_JOBS:-$(nproc)} python -m pip install -q -c "$pins" --no-build-isolation -e ".[lecture,test]"
python -c "import mlpbench, torch; print('mlpbench', mlpbench.__version__, 'built against torch', torch.__version__, '| CUDA kernels:', mlpbench.ops._C.has_cuda())"
