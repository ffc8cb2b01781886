"""Forward-mode AD and double backward through every op: never a silent zero.

The ops switch to their ATen compositions (csrc/composite.h) when an input
carries a tangent or backward runs with create_graph; these tests compare the
results with stock PyTorch's (float64), and gradgradcheck them."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import jacfwd, jvp

from helpers import DEVICES, ELEMENTWISE, GRAD_ACTIVATIONS, act_id, act_kwargs, make_linear
from mlpbench import ops
from mlpbench.reference import stock_activation, stock_linear_act


def _linear(name, kw, p, seed=7):
    """Ours and stock for the same activation (stock with our dropout mask)."""
    pieces = {"pieces": kw["pieces"]} if "pieces" in kw else {}
    elementwise = act_kwargs(kw)

    def ours(x, w, b):
        return ops.linear_act(x, w, b, name, dropout_p=p, seed=seed, offset=3, **pieces,
                              **elementwise)

    def stock(x, w, b):
        y = stock_linear_act(x, w, b, name, **pieces, **elementwise)
        if p:
            y = ops.dropout(torch.ones_like(y), p, seed=seed, offset=3).detach() * y
        return y

    return ours, stock


def test_tanh_double_backward_example():
    """d2 tanh at [0.5, -1] is [-0.727, 0.640], not zeros."""
    result = []
    for tanh in (lambda t: ops.activation(t, "tanh"), torch.tanh):
        x = torch.tensor([0.5, -1.0], requires_grad=True)
        (g,) = torch.autograd.grad(tanh(x).sum(), x, create_graph=True)
        result.append(torch.autograd.grad(g.sum(), x)[0])
    torch.testing.assert_close(result[0], result[1])
    torch.testing.assert_close(result[0], torch.tensor([-0.727, 0.640]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_activation_gradgradcheck(act, device):
    name, kw = act
    x = torch.randn(7, 5, dtype=torch.float64, device=device).t().requires_grad_()
    x = x + 0.1 * torch.sign(x)  # away from ReLU's and ELU's kink at 0
    assert torch.autograd.gradgradcheck(lambda t: ops.activation(t, name, **kw), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_linear_act_gradgradcheck(act, p, device):
    name, kw = act
    x, w, b = make_linear(6, 4, name, kw, device=device, batch=(5,), requires_grad=True)
    ours, _ = _linear(name, kw, p)
    assert torch.autograd.gradgradcheck(ours, (x, w, b))


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_gradgradcheck(device):
    x = torch.randn(9, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ops.dropout(t, 0.4, seed=2), (x,))


@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_hessian_vector_product_matches_stock(act, p):
    """A gradient penalty's double backward: d/dx |dL/dx|^2, ours against stock."""
    name, kw = act
    x, w, b = make_linear(6, 4, name, kw, batch=(5,), requires_grad=True)
    got, want = [], []
    for fn, out in zip(_linear(name, kw, p), (got, want)):
        y = fn(x, w, b)
        grads = torch.autograd.grad((y * y.detach().cos()).sum(), (x, w, b), create_graph=True)
        penalty = sum((g**2).sum() for g in grads)
        out.extend(torch.autograd.grad(penalty, (x, w, b), allow_unused=True,
                                       materialize_grads=True))
    for g, s in zip(got, want):
        torch.testing.assert_close(g, s)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_forward_mode_matches_stock(act, p, device):
    """torch.func.jvp, jacfwd and torch.autograd.forward_ad give stock's tangents."""
    name, kw = act
    x, w, b = make_linear(6, 4, name, kw, device=device, batch=(5,))
    tangents = tuple(torch.randn_like(t) for t in (x, w, b))
    ours, stock = _linear(name, kw, p)
    y, ty = jvp(ours, (x, w, b), tangents)
    ys, tys = jvp(stock, (x, w, b), tangents)
    torch.testing.assert_close(y, ys)
    torch.testing.assert_close(ty, tys)
    assert ty.abs().sum() > 0
    torch.testing.assert_close(jacfwd(ours)(x, w, b), jacfwd(stock)(x, w, b))
    want = jvp(lambda t: stock(t, w, b), (x,), (tangents[0],))[1]
    with fwAD.dual_level():
        got = fwAD.unpack_dual(ours(fwAD.make_dual(x, tangents[0]), w, b)).tangent
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_elementwise_forward_mode_and_hessian(act):
    name, kw = act
    x = torch.randn(11, dtype=torch.float64) + 0.05
    t = torch.randn_like(x)

    def ours(v):
        return ops.activation(v, name, **kw)

    def stock(v):
        return stock_activation(v, name, **kw)

    torch.testing.assert_close(jvp(ours, (x,), (t,))[1], jvp(stock, (x,), (t,))[1])
    torch.testing.assert_close(torch.func.hessian(lambda v: ours(v).sum())(x),
                               torch.func.hessian(lambda v: stock(v).sum())(x))
    d = ops.dropout
    torch.testing.assert_close(jvp(lambda v: d(v, 0.5, seed=1), (x,), (t,))[1],
                               d(t, 0.5, seed=1))


def test_relu_forward_mode_at_zero_is_zero():
    """ReLU'(0) = 0 in every mode, as stock's (the composition's select is
    written so that its derivative at the kink is the kernels')."""
    x = torch.zeros(4, 3, dtype=torch.float64)
    w = torch.zeros(2, 3, dtype=torch.float64)
    _, ty = jvp(lambda x: ops.linear_act(x, w, None, "relu"), (x,), (torch.ones_like(x),))
    assert torch.equal(ty, torch.zeros_like(ty))
    _, ty = jvp(lambda v: ops.activation(v, "relu"), (x,), (torch.ones_like(x),))
    assert torch.equal(ty, torch.zeros_like(ty))
