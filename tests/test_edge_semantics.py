"""What a user would not notice until their numbers were wrong: NaN and inf
behave as stock's, traced and vmapped dropout draw fresh masks as asked, and
arguments are checked, not coerced."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import DEVICES, make_linear
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP
from mlpbench.reference import stock_maxout

NAN, INF = math.nan, math.inf


# --- NaN and inf --------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_nan_in_any_piece_is_nan(pieces, device):
    """A NaN in any piece makes the unit NaN (stock amax/max does), including
    a NaN made by inf * 0 in the product."""
    eye = torch.eye(pieces, dtype=torch.float64, device=device)
    x = torch.ones(1, pieces, dtype=torch.float64, device=device)
    for nan_piece in range(pieces):
        bias = torch.zeros(pieces, dtype=torch.float64, device=device)
        bias[nan_piece] = NAN  # that piece alone is NaN
        y = ops.linear_act(x, eye, bias, "maxout", pieces=pieces)
        assert y.isnan().all(), (nan_piece, y)
    x = torch.tensor([[INF, 1.0]], device=device)
    w = torch.tensor([[0.0, 1.0], [1.0, 0.0]], device=device)  # piece 0: inf * 0 + 1 = NaN
    y = ops.linear_act(x, w, None, "maxout", pieces=2)
    assert torch.equal(y.isnan(), stock_maxout(F.linear(x, w), 2).isnan()) and y.isnan().all()


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_keeps_nan_and_inf_as_stock(device):
    """Dropped places hold x * 0, as stock's x * mask: NaN and inf give NaN
    there, finite values 0 (with x's sign); the gradient likewise."""
    x = torch.tensor([NAN, INF, -INF, -2.0, 3.0] * 40, device=device, requires_grad=True)
    y = ops.dropout(x, 0.5, seed=4)
    kept = ops.dropout(torch.ones_like(x), 0.5, seed=4) != 0
    assert (~kept).any() and kept.any()
    want = torch.where(kept, x.detach() / 0.5, x.detach() * 0.0)
    assert torch.equal(y.detach().nan_to_num(7.0), want.nan_to_num(7.0))
    assert torch.equal(torch.signbit(y.detach()), torch.signbit(want))
    g = torch.tensor([NAN, 1.0, 1.0, 1.0, 1.0] * 40, device=device)
    (gx,) = torch.autograd.grad(y, x, g)
    assert torch.equal(gx.nan_to_num(7.0), torch.where(kept, g / 0.5, g * 0.0).nan_to_num(7.0))
    # The fused op at a dropped place keeps the activation's NaN too.
    xx = torch.full((4, 3), NAN, device=device)
    w = torch.ones(50, 3, device=device)
    assert ops.linear_act(xx, w, None, "relu", dropout_p=0.5, seed=1).isnan().all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_relu_keeps_a_nan_product_as_stock(dtype, device):
    """ReLU of a NaN pre-activation is NaN, as stock's relu gives it, in the
    layer op and in the whole network for inference. (oneDNN's fused
    Linear+ReLU, the inference peer in bench/, gives 0 there: its ReLU
    post-op cannot stand in for the epilogue.)"""
    torch.manual_seed(0)
    x = torch.randn(64, 32, device=device, dtype=dtype)
    w = (torch.randn(256, 32, device=device) / 6).to(dtype)
    b = torch.randn(256, device=device, dtype=dtype)
    x[3, 7] = NAN  # row 3: NaN everywhere
    x[5, 0] = INF  # row 5: inf * 0 = NaN where w[:, 0] is 0, else +-inf
    w[::3, 0] = 0.0
    want = F.relu(F.linear(x, w, b))
    assert want.isnan().any() and want.isinf().any()
    got = ops.linear_act(x, w, b, "relu")
    assert torch.equal(got.isnan(), want.isnan())
    torch.testing.assert_close(got.nan_to_num(7.0), want.nan_to_num(7.0))

    torch.manual_seed(0)
    stock = MLP([32, 256, 256, 10], "relu", fused=False).to(device, dtype).eval()
    fused = MLP([32, 256, 256, 10], "relu", fused="mlp").to(device, dtype).eval()
    fused.load_state_dict(stock.state_dict())
    with torch.inference_mode():
        hidden_stock, hidden_fused = stock.layers[0](x), fused.layers[0](x)
        assert torch.equal(hidden_fused.isnan(), F.relu(hidden_stock).isnan())
        assert torch.equal(fused(x).isnan(), stock(x).isnan()) and fused(x)[3].isnan().all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu"])
def test_gradient_at_nan_pre_activation_as_stock(name, device):
    """relu and elu pass the gradient at a NaN (stock's threshold_backward and
    elu_backward do); the others give NaN, as stock."""
    x = torch.tensor([[NAN, 1.0]], device=device, requires_grad=True)
    w = torch.eye(2, device=device, requires_grad=True)
    (gx,) = torch.autograd.grad(ops.linear_act(x, w, None, name).sum(), x)
    xs = x.detach().clone().requires_grad_()
    act = getattr(F, name) if name not in ("tanh", "sigmoid") else getattr(torch, name)
    (gs,) = torch.autograd.grad(act(F.linear(xs, w.detach())).sum(), xs)
    assert torch.equal(gx.nan_to_num(7.0), gs.nan_to_num(7.0)), (gx, gs)


# --- traced and vmapped dropout ------------------------------------------------

def _dropout_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(mnn.FusedLinear(8, 16, "relu", dropout=0.5),
                               mnn.FusedDropout(0.5), mnn.FusedLinear(16, 4, "identity")).train()


def test_jit_trace_draws_a_fresh_mask_per_call():
    net = _dropout_net()
    x = torch.randn(6, 8)
    with pytest.warns(Warning):  # torch.jit.trace's own deprecation warning on recent torch
        traced = torch.jit.trace(net, x, check_trace=False)
    torch.manual_seed(5)
    eager = [net(x) for _ in range(2)]
    torch.manual_seed(5)
    again = [traced(x) for _ in range(2)]
    assert not torch.equal(again[0], again[1])  # not frozen at the trace's masks
    for a, b in zip(eager, again):
        assert torch.equal(a, b)


def test_export_draws_a_fresh_mask_per_call():
    net = _dropout_net()
    x = torch.randn(6, 8)
    program = torch.export.export(net, (x,))
    module = program.module()
    torch.manual_seed(5)
    eager = [net(x) for _ in range(2)]
    torch.manual_seed(5)
    exported = [module(x) for _ in range(2)]
    assert not torch.equal(exported[0], exported[1])
    for a, b in zip(eager, exported):
        assert torch.equal(a, b)


def test_vmap_randomness_modes():
    x = torch.ones(5, 64)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        torch.vmap(lambda t: ops.dropout(t, 0.5))(x)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        torch.vmap(mnn.FusedDropout(0.5))(x)
    different = torch.vmap(mnn.FusedDropout(0.5), randomness="different")(x)
    assert len({tuple(row.tolist()) for row in different != 0}) == 5
    same = torch.vmap(mnn.FusedDropout(0.5), randomness="same")(x)
    assert all(torch.equal(row, same[0]) for row in same) and (same == 0).any()
    # An explicit seed is a deterministic function: each sample as if alone.
    seeded = torch.vmap(lambda t: ops.dropout(t, 0.5, seed=3))(x)
    assert all(torch.equal(row, ops.dropout(x[0], 0.5, seed=3)) for row in seeded)
    w = torch.randn(64, 64)
    rows = torch.vmap(lambda t: ops.linear_act(t, w, None, "tanh", dropout_p=0.5),
                      randomness="different")(x)
    assert len({tuple(row.tolist()) for row in rows != 0}) == 5


# --- arguments -----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"pieces": 2.7}, TypeError, "pieces must be an int, got float"),
    ({"pieces": "3"}, TypeError, "pieces must be an int, got str"),
    ({"pieces": True}, TypeError, "pieces must be an int, got bool"),
    ({"negative_slope": "0.2"}, TypeError, "negative_slope must be a real number, got str"),
    ({"alpha": "1"}, TypeError, "alpha must be a real number, got str"),
    ({"approximate": None}, TypeError, "approximate must be a str, got NoneType"),
])
def test_scalar_arguments_are_not_coerced(kwargs, error, message):
    x, w, b = make_linear(4, 3, "maxout", {}, dtype=torch.float32)
    with pytest.raises(error, match=message):
        ops.linear_act(x, w, b, "maxout", **kwargs)


@pytest.mark.parametrize("bias, got", [(0.5, "float"), (np.zeros(6, np.float32), "ndarray")])
def test_tensor_arguments_name_themselves(bias, got):
    x, w, _ = make_linear(4, 3, "relu", {}, dtype=torch.float32)
    with pytest.raises(TypeError, match=f"linear_act: bias must be a torch.Tensor or None, got {got}"):
        ops.linear_act(x, w, bias)
    with pytest.raises(TypeError, match="linear_act: x must be a torch.Tensor, got NoneType"):
        ops.linear_act(None, w)
    with pytest.raises(TypeError, match="linear_act: weight must be a torch.Tensor, got ndarray"):
        ops.linear_act(x, np.ones((3, 4)))
    with pytest.raises(TypeError, match="dropout: x must be a torch.Tensor, got list"):
        ops.dropout([1.0, 2.0], 0.5)
    with pytest.raises(TypeError, match="activation: x must be a torch.Tensor, got float"):
        ops.activation(1.0, "relu")


def test_nul_byte_in_a_name_is_reported_whole():
    with pytest.raises(ValueError, match=r"activation must not contain a NUL character, got 're\\x00lu6'"):
        ops.activation(torch.randn(3), "re\0lu6")


def test_modules_check_everything_at_construction():
    with pytest.raises(ValueError, match="FusedLinear: negative_slope must be a finite number >= 0"):
        mnn.FusedLinear(4, 3, "leaky_relu", negative_slope=-1)
    with pytest.raises(ValueError, match="FusedLinear: approximate must be 'none' or 'tanh', got 'x'"):
        mnn.FusedLinear(4, 3, "gelu", approximate="x")
    with pytest.raises(TypeError, match="FusedLinear: pieces must be an int, got float"):
        mnn.FusedLinear(4, 3, "maxout", pieces=2.7)
    for fused in (False, True):
        with pytest.raises(ValueError, match=r"MLP: pieces must be an int in \[1, 255\]"):
            MLP([4, 3, 2], "maxout", pieces=0, fused=fused)


@pytest.mark.parametrize("p", [np.float32(0.5), np.float64(0.25), torch.tensor(0.5), 0.5, 1])
def test_probability_accepts_what_stock_accepts(p):
    x = torch.ones(1000)
    assert F.dropout(x, p) is not None  # stock takes it
    y = ops.dropout(x, p, seed=1)
    assert abs((y != 0).float().mean().item() - (1 - float(p))) < 0.06
    assert mnn.FusedDropout(p).p == float(p)
    assert mnn.FusedLinear(3, 2, dropout=np.float64(0.1)).dropout == 0.1
    assert ops.dropout(x, p, seed=np.int64(2)).shape == x.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_relu_dropout_backward_without_its_mask_equals_the_masked_formula(dtype):
    """ReLU's backward under dropout skips the mask where the saved output has
    no NaN (linear_act_cpu.cpp): grad_x must still equal gy * mask / (1 - p)
    * relu'(pre) bit for bit, with NaN outputs (kept and dropped) in some
    spans, zero pre-activations, and infinite and NaN incoming gradients. A
    1 -> 1 layer of weight 1 makes the products exact: grad_x is grad_pre."""
    torch.manual_seed(0)
    n, p = 6400, 0.3  # several 1,024-element spans
    x = torch.randn(n, 1, dtype=torch.float64)
    x[[37, 2043, 2042], 0] = NAN  # NaN in two spans, dropped (2043) and kept
    x[100:120, 0] = 0.0
    x = x.to(dtype)
    w = torch.ones(1, 1, dtype=dtype)
    y = ops.linear_act(x, w, None, "relu", dropout_p=p, seed=11)
    g = torch.randn(n, 1, dtype=torch.float64)
    g[[5, 20, 3000], 0] = torch.tensor([INF, -INF, NAN], dtype=torch.float64)
    g = g.to(dtype)
    gx = torch.ops.mlpbench.linear_act_backward(g, x, w, y, "relu", p, torch.tensor([11]), 0,
                                                [True, False, False])[0]
    kept = ops.dropout(torch.ones(n, 1, dtype=torch.float64), p, seed=11) != 0
    assert not kept[2043] and kept[2042]
    f = g.float() if dtype == torch.bfloat16 else g
    passes = torch.where(x.isnan() | (x > 0), 1.0, 0.0).to(f.dtype)
    want = (torch.where(kept, f * (1 / (1 - p)), f * 0.0) * passes).to(dtype)
    assert torch.equal(gx.nan_to_num(7.0), want.nan_to_num(7.0))
