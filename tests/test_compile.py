"""Models built from the fused ops compile with torch.compile(fullgraph=True)."""

import pytest
import torch

from helpers import DEVICES
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP


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


def _dropout_models(device):
    """The three training-mode models with fused dropout that must compile whole."""
    torch.manual_seed(0)
    return {
        "FusedDropout": torch.nn.Sequential(torch.nn.Linear(12, 16), mnn.FusedDropout(0.4),
                                            torch.nn.Linear(16, 3)).to(device),
        "FusedLinear": torch.nn.Sequential(mnn.FusedLinear(12, 16, "relu", dropout=0.3),
                                           mnn.FusedLinear(16, 3, "identity")).to(device),
        "MLP": MLP([12, 16, 16, 3], "tanh", dropout=0.3, fused=True).to(device),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
@pytest.mark.parametrize("which", ["FusedDropout", "FusedLinear", "MLP"])
def test_fullgraph_training_dropout_matches_eager(which, backend, device):
    """Training mode with drawn seeds compiles with no graph break, and for the
    same torch.manual_seed the compiled model draws the masks eager draws:
    the same outputs and gradients, call after call (the seed is drawn per
    call, not frozen into the graph)."""
    torch._dynamo.reset()
    model = _dropout_models(device)[which].train()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    x = torch.randn(10, 12, device=device)
    runs = {}
    for name, fn in (("eager", model), ("compiled", compiled)):
        torch.manual_seed(123)
        outs = []
        for _ in range(3):
            model.zero_grad()
            y = fn(x)
            y.square().sum().backward()
            outs.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
        runs[name] = outs
    for (y, grads), (yc, gradsc) in zip(runs["eager"], runs["compiled"]):
        torch.testing.assert_close(yc, y, rtol=1e-5, atol=1e-5)
        for g, gc in zip(grads, gradsc):
            torch.testing.assert_close(gc, g, rtol=1e-5, atol=1e-5)
    assert not torch.equal(runs["eager"][0][0], runs["eager"][1][0])  # a new mask per call
