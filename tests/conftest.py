import os
from pathlib import Path

import pytest
import torch

from helpers import SIMD_LEVELS
from mlpbench import _C

# Real MNIST for the tests that use it: the shared copy beside the checkout,
# unless MLPBENCH_DATA already says where it is.
_SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
if not os.environ.get("MLPBENCH_DATA") and _SHARED_MNIST.is_dir():
    os.environ["MLPBENCH_DATA"] = str(_SHARED_MNIST)


@pytest.fixture(autouse=True)
def _true_float32_matmul():
    # float32 equivalence against stock needs true float32 products on CUDA.
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old



@pytest.fixture(params=SIMD_LEVELS)
def level(request):
    """Runs the test at each instruction-set level this CPU has."""
    _C.set_simd_level(request.param)
    yield request.param
    _C.set_simd_level(_C.best_simd_level())
