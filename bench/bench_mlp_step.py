"""The lecture's dropout network (784-256-256-256-10, ReLU, dropout 0.3) as a
whole, at batch 100 and 4096:

- mlp[..., fwdbwd]: forward and backward of the network;
- mlp_step[...]: one training step (forward, cross-entropy, backward, Adam).

Rows: the floor (the products the network needs: four forward, four
weight-gradient and three input-gradient products, plus one Adam pass in the
step), stock eager, torch.compile of stock, fused per layer, and fused
whole-MLP (the default `fused`). Fused rows time the stock row and the floor
interleaved with themselves (conftest.measure)."""

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, skip_unless_compiled
from mlpbench.models import MLP

SIZES = [784, 256, 256, 256, 10]
NET = "784-256-256-256-10 relu dropout 0.3"
ROWS = {"stock": False, "compile": False, "fused layer": "layer", "fused": "mlp"}


def _model(row, device):
    torch.manual_seed(0)
    return MLP(SIZES, "relu", dropout=0.3, fused=ROWS.get(row, False)).to(device).train()


def _floor(model, x, step):
    """The products of the network's forward and backward (no input gradient
    for x), on detached tensors; with step, one fused Adam pass too."""
    weights = [layer.weight.detach() for layer in model.layers]
    biases = [layer.bias.detach() for layer in model.layers]
    outs = [torch.randn(x.shape[0], w.shape[0], device=x.device) for w in weights]
    ins = [x] + outs[:-1]
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True) if step else None
    if step:
        for p in params:
            p.grad = torch.zeros_like(p)

    def run():
        for h, w, b in zip(ins, weights, biases):
            torch.addmm(b, h, w.t())
        for layer, (h, w, g) in enumerate(zip(ins, weights, outs)):
            g.t().mm(h)
            if layer:
                g.mm(w)
        if opt is not None:
            opt.step()

    return run


def _call(row, device, x, y, step):
    """One forward+backward (or training step) of a fresh lecture network."""
    model = _model(row, device)
    if row == "floor":
        return _floor(model, x, step)
    forward = torch.compile(model, dynamic=False) if row == "compile" else model
    params = list(model.parameters())
    if not step:
        return lambda: torch.autograd.grad(F.cross_entropy(forward(x), y), params)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()

    return train_step


@pytest.mark.parametrize("row", ["floor", *ROWS])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
@pytest.mark.parametrize("what", ["fwdbwd", "step"])
def test_mlp(measure, what, batch, device, row):
    if row == "compile":
        skip_unless_compiled("relu")
    x = torch.rand(batch, 784, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    step = what == "step"
    beside = None
    if row.startswith("fused"):
        beside = {r: _call(r, device, x, y, step) for r in ("floor", "stock")}
    group = f"mlp_step[{NET}, batch {batch}]" if step else f"mlp[{NET}, batch {batch}, fwdbwd]"
    measure(group, row, _call(row, device, x, y, step), device, beside=beside)
