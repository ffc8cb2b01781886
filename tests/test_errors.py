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


# --- every tensor argument of every op is checked, the backward ops' too ----------
# On CUDA a tensor on the wrong device would hand a kernel a host pointer (an
# illegal address that poisons the CUDA context). Checked here with meta
# tensors, whose kernels run the same checks: a meta tensor beside CPU ones
# dispatches to the meta kernel, which must refuse the mix by name.

def _layer():
    x = torch.randn(5, 6)
    w = torch.randn(4, 6)
    y, aux = torch.ops.mlpbench.linear_act(x, w, None, "gelu", 0.0, None, 0)
    return x, w, y, aux


@pytest.mark.parametrize("wrong", ["grad_y", "x", "weight", "saved"])
def test_linear_act_backward_checks_every_device(wrong):
    x, w, y, aux = _layer()
    args = {"grad_y": torch.ones_like(y), "x": x, "weight": w, "saved": aux}
    args[wrong] = args[wrong].to("meta")
    where = "x's device meta" if wrong == "x" else "x's device cpu, got meta"
    with pytest.raises(ValueError, match=where):
        torch.ops.mlpbench.linear_act_backward(*args.values(), "gelu", 0.0, None, 0,
                                               [True, True, False])


def test_linear_act_backward_checks_dtypes_and_shapes():
    x, w, y, aux = _layer()
    backward = torch.ops.mlpbench.linear_act_backward
    with pytest.raises(TypeError, match="grad_y must have x's dtype Float, got Double"):
        backward(torch.ones_like(y).double(), x, w, aux, "gelu", 0.0, None, 0, [True, True, False])
    with pytest.raises(TypeError, match="saved must be Float for 'gelu', got Double"):
        backward(torch.ones_like(y), x, w, aux.double(), "gelu", 0.0, None, 0, [True, True, False])
    with pytest.raises(ValueError, match=r"grad_y must have y's shape \[5, 4\], got \[5, 3\]"):
        backward(torch.ones(5, 3), x, w, aux, "gelu", 0.0, None, 0, [True, True, False])
    with pytest.raises(ValueError, match="saved must hold 20 elements"):
        backward(torch.ones_like(y), x, w, aux[:2], "gelu", 0.0, None, 0, [True, True, False])
    with pytest.raises(TypeError, match="saved must be Byte for 'maxout'"):
        backward(torch.ones(5, 2), x, w, torch.zeros(5, 2), "maxout", 0.0, None, 0,
                 [True, True, False])


@pytest.mark.parametrize("wrong", ["grad_y", "y", "hidden", "aux"])
def test_mlp_backward_checks_every_device(wrong):
    x = torch.randn(5, 6)
    weights = [torch.randn(8, 6), torch.randn(3, 8)]
    y, hidden, aux = torch.ops.mlpbench.mlp(x, weights, [], "gelu", "sigmoid", 0.0, None, 0)
    args = {"grad_y": torch.ones_like(y), "x": x, "weights": weights, "y": y, "hidden": hidden,
            "aux": aux}
    if wrong in ("hidden", "aux"):
        args[wrong] = [t.to("meta") for t in args[wrong]]
    else:
        args[wrong] = args[wrong].to("meta")
    name = {"hidden": r"hidden\[0\]", "aux": r"aux\[0\]"}.get(wrong, wrong)
    with pytest.raises(ValueError, match=f"{name} must be on x's device cpu, got meta"):
        torch.ops.mlpbench.mlp_backward(*args.values(), False, "gelu", "sigmoid", 0.0, None, 0,
                                        True)


def test_activation_backward_and_dropout_check_devices():
    y = torch.randn(4)
    with pytest.raises(ValueError, match="saved must be on grad_y.s device cpu, got meta"):
        torch.ops.mlpbench.activation_backward(torch.ones(4), y.to("meta"), "tanh")
    with pytest.raises(TypeError, match="seed must be a one-element int64 tensor on the CPU or on "
                                        "x's device cpu, got Long of shape \\[\\] on meta"):
        torch.ops.mlpbench.dropout(y, 0.5, torch.tensor(3, device="meta"), 0)
