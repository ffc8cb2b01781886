"""The standalone elementwise activation op against stock PyTorch."""

import pytest
import torch

from helpers import DEVICES, ELEMENTWISE, act_id
from mlpbench import ops
from mlpbench.reference import stock_activation


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_gradcheck_float64(act, device):
    name, kw = act
    # A non-contiguous input of odd size.
    x = torch.randn(13, 7, dtype=torch.float64, device=device).t().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.activation(t, name, **kw), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ELEMENTWISE + [("step", {})], ids=act_id)
@pytest.mark.parametrize("numel", [1, 1023, 100 * 256 + 3])
def test_float32_matches_stock(act, numel, device):
    name, kw = act
    x = (3 * torch.randn(numel, device=device)).requires_grad_()
    xs = x.detach().clone().requires_grad_()
    y, ys = ops.activation(x, name, **kw), stock_activation(xs, name, **kw)
    torch.testing.assert_close(y, ys, rtol=2e-6, atol=2e-6)
    if name == "step":
        return
    g = torch.randn_like(y)
    y.backward(g)
    ys.backward(g)
    torch.testing.assert_close(x.grad, xs.grad, rtol=2e-5, atol=1e-5)


def test_maxout_is_not_elementwise():
    with pytest.raises(ValueError, match="maxout.*not elementwise"):
        ops.activation(torch.randn(4), "maxout")


@pytest.mark.parametrize("device", DEVICES)
def test_extremes_stay_finite(device):
    x = torch.tensor([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], device=device)
    for name, kw in ELEMENTWISE:
        y = ops.activation(x, name, **kw)
        torch.testing.assert_close(y, stock_activation(x, name, **kw), rtol=1e-6, atol=1e-6)
