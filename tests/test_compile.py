"""Models built from the fused ops compile with torch.compile(fullgraph=True)."""

import pytest
import torch

from helpers import DEVICES
from mlpbench import nn as mnn
from mlpbench import ops


def _model(device, dropout=0.0):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        mnn.FusedLinear(20, 16, "gelu", dropout=dropout), mnn.FusedLinear(16, 8, "maxout", pieces=2),
        mnn.FusedLinear(8, 8, "elu"), mnn.FusedLinear(8, 3, "identity"),
    ).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_fullgraph_matches_eager(backend, device):
    torch._dynamo.reset()
    model = _model(device)
    x = torch.randn(10, 20, device=device)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    y_eager = model(x)
    y_eager.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    y_comp = compiled(x)
    y_comp.square().sum().backward()
    torch.testing.assert_close(y_comp, y_eager, rtol=1e-5, atol=1e-5)
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_fullgraph_dropout_with_explicit_seed(device):
    torch._dynamo.reset()

    def f(x, w, b):
        h = ops.linear_act(x, w, b, "relu", dropout_p=0.3, seed=11, offset=2)
        return ops.dropout(ops.activation(h, "sigmoid"), 0.5, seed=12)

    x = torch.randn(6, 9, device=device, requires_grad=True)
    w = torch.randn(5, 9, device=device, requires_grad=True)
    b = torch.randn(5, device=device, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    y, yc = f(x, w, b), compiled(x, w, b)
    torch.testing.assert_close(yc, y)
    (gx,) = torch.autograd.grad(y.sum(), x)
    (gxc,) = torch.autograd.grad(yc.sum(), x)
    torch.testing.assert_close(gxc, gx)
