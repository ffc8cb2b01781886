"""Bad input gets a clear Python exception that names the problem."""

import math

import pytest
import torch

from helpers import DEVICES
from mlpbench import nn as mnn
from mlpbench import ops


@pytest.fixture(params=DEVICES)
def t(request):
    device = request.param
    return lambda *shape, dtype=torch.float32: torch.randn(*shape, device=device).to(dtype)


def test_shape_mismatch(t):
    with pytest.raises(ValueError, match=r"linear_act: weight takes 13 inputs, but x has 12 features"):
        ops.linear_act(t(4, 12), t(5, 13))


def test_dtype_mismatch(t):
    with pytest.raises(TypeError, match="weight must have x's dtype Float, got Double"):
        ops.linear_act(t(4, 13), t(5, 13, dtype=torch.float64))


def test_integer_tensors(t):
    with pytest.raises(TypeError, match="x must be a float32, float64 or bfloat16 tensor"):
        ops.linear_act(t(4, 13, dtype=torch.int64), t(5, 13))
    with pytest.raises(TypeError, match="x must be a float32, float64 or bfloat16"):
        ops.activation(t(4, dtype=torch.int32), "relu")
    with pytest.raises(TypeError, match="x must be a float32, float64 or bfloat16"):
        ops.dropout(t(4, dtype=torch.int32), 0.5)


def test_weight_not_2d(t):
    with pytest.raises(ValueError, match="weight must be 2-D"):
        ops.linear_act(t(4, 13), t(13))


def test_bias_shape(t):
    with pytest.raises(ValueError, match=r"bias must be 1-D with 5 elements \(one per row of weight\)"):
        ops.linear_act(t(4, 13), t(5, 13), t(4))


def test_unknown_activation(t):
    with pytest.raises(ValueError, match="unknown activation 'relu6'; expected one of 'identity'"):
        ops.linear_act(t(4, 13), t(5, 13), None, "relu6")
    with pytest.raises(ValueError, match="unknown activation"):
        ops.activation(t(4), "softplus")
    with pytest.raises(ValueError, match="unknown activation"):
        mnn.FusedLinear(13, 5, "relu6")


def test_maxout_rows_not_divisible(t):
    with pytest.raises(ValueError, match="weight has 10 rows, not a multiple of maxout's pieces=3"):
        ops.linear_act(t(4, 13), t(10, 13), None, "maxout", pieces=3)
    with pytest.raises(ValueError, match=r"pieces must be an int in \[1, 255\]"):
        ops.linear_act(t(4, 13), t(10, 13), None, "maxout", pieces=0)


def test_bad_parameters(t):
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        ops.linear_act(t(4, 13), t(5, 13), None, "gelu", approximate="erf")
    with pytest.raises(ValueError, match="negative_slope must be a finite number >= 0"):
        ops.activation(t(4), "leaky_relu", negative_slope=-0.1)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        ops.activation(t(4), "elu", alpha=math.nan)


def test_cuda_device_mismatch():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    with pytest.raises(ValueError, match="weight must be on x's device cpu, got cuda:0"):
        ops.linear_act(torch.randn(4, 13), torch.randn(5, 13, device="cuda"))
