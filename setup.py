"""Builds mlpbench._C, the one extension module holding every kernel.

The CUDA kernels are built where they can run or where they are asked for:
MLPBENCH_CUDA=1 builds them (and fails without a CUDA torch and nvcc),
MLPBENCH_CUDA=0 never does, and unset builds them when a CUDA device is
visible (a CPU-only machine then spends no time in nvcc on kernels it cannot
run). mlpbench._C.has_cuda() says which build you have.
"""

import glob
import os
import re
import shutil
import subprocess
import sys


def _find_cuda_home():
    """The toolkit root. nvcc may be a wrapper script, which makes torch guess
    the wrong CUDA_HOME, so ask nvcc itself where its toolkit is."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"TOP=(\S+)", out.stdout + out.stderr)
    return os.path.realpath(match.group(1)) if match else None


_cuda_home = _find_cuda_home()
if _cuda_home:
    # Must be set before torch.utils.cpp_extension is imported: it reads it once.
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    BuildExtension, CppExtension, CUDAExtension)


def _want_cuda():
    forced = os.environ.get("MLPBENCH_CUDA")
    if forced not in (None, "", "0", "1"):
        sys.exit(f"MLPBENCH_CUDA must be 0, 1 or unset, got {forced!r}")
    available = torch.version.cuda is not None and _cuda_home is not None
    if forced == "1" and not available:
        sys.exit("MLPBENCH_CUDA=1 but torch has no CUDA or nvcc was not found "
                 f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={_cuda_home})")
    if forced in (None, ""):
        return available and torch.cuda.is_available()
    return forced == "1"


def _extension():
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    # -Wno-psabi: simd.h passes 64-byte vectors by value, only inside
    # functions that are always inlined into one instruction set (simd_dispatch).
    # -Werror=vector-operation-performance: fail the build where GCC would
    # compile a vector operation lane by lane (simd.h says when it did).
    cxx = ["-O3", "-fopenmp", "-Wno-psabi", "-Werror=vector-operation-performance"]
    if not _want_cuda():
        return CppExtension("mlpbench._C", sources, extra_compile_args={"cxx": cxx},
                            extra_link_args=["-fopenmp"])
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # No GPU to ask: build for the H100 (sm_90) plus PTX for newer cards.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0+PTX"
    include_dirs = []
    # ATen's CUDA headers include cusparse.h and friends, which the pip wheels
    # of the CUDA libraries ship here rather than in the toolkit.
    for site in map(os.path.dirname, torch.__path__):
        include_dirs += glob.glob(os.path.join(site, "nvidia", "cu*", "include"))
    return CUDAExtension(
        "mlpbench._C", sources + sorted(glob.glob("csrc/cuda/*.cu")),
        include_dirs=include_dirs,
        define_macros=[("MLPBENCH_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx + ["-DMLPBENCH_WITH_CUDA"],
                            "nvcc": ["-O3", "-DMLPBENCH_WITH_CUDA"]},
        extra_link_args=["-fopenmp"],
    )


setup(ext_modules=[_extension()], cmdclass={"build_ext": BuildExtension})
