"""The lecture's dropout network (784-256-256-256-10, ReLU, dropout 0.3) as a
whole, at batch 100 and 4096, in float32 and under bfloat16 autocast:

- mlp[..., fwdbwd(, bf16)]: forward and backward of the network;
- mlp_step[...(, bf16)]: one training step (forward, cross-entropy, backward,
  Adam).

Rows: the floor (the products the network needs: four forward, four
weight-gradient and three input-gradient products, in bf16 for the bf16
groups, as the fused kernels run them: conftest.product; plus, in the step,
one pass of fused Adam's kernel, torch._fused_adam_, without
torch.optim.Adam.step's Python around it), stock eager, torch.compile of stock
(and on CUDA with mode="reduce-overhead": CUDA graphs), fused per layer, and
fused whole-MLP (the default `fused`). The fused rows take the loss from
mlpbench.ops.cross_entropy, as `python -m mlpbench.train --fused` does, and
their training step's backward and optimizer step from
mlpbench.nn.cross_entropy_backward(..., optimizer=opt), as it does too (for
the whole-MLP row: the ops alone, no autograd graph, gradients set afresh, so
without optimizer.zero_grad, and each layer's Adam update inside the
backward); the others from F.cross_entropy and opt.step(). In the bf16
groups every row but the floor and "stock bf16" (the model cast to bf16,
trained in bf16) runs float32 parameters under torch.autocast. Fused rows time
the stock row and the floor interleaved with themselves, and the whole-MLP row
the per-layer one too (conftest.measure)."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, product, skip_unless_compiled, smoke
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP

SIZES = [784, 256, 256, 256, 10]
NET = "784-256-256-256-10 relu dropout 0.3"
FUSED = {"stock": False, "stock bf16": False, "compile": False, "compile cudagraphs": False,
         "fused layer": "layer", "fused": "mlp"}


def _model(row, device, bf16):
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=0.3, fused=FUSED.get(row, False)).to(device).train()
    return model.bfloat16() if row == "stock bf16" else model


def _adam_pass(params):
    """One pass of fused Adam's kernel over params (zero gradients), with
    its state made by a first torch.optim step: the optimizer's work alone."""
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    opt.step()
    states = [opt.state[p] for p in params]
    steps = [s["step"] for s in states]
    tensors = (params, [p.grad for p in params], [s["exp_avg"] for s in states],
               [s["exp_avg_sq"] for s in states], [], steps)

    @torch.no_grad()
    def run():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(*tensors, lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0,
                           eps=1e-8, amsgrad=False, maximize=False)

    return run


def _floor(model, x, step, dtype):
    """The products of the network's forward and backward (no input gradient
    for x), on detached tensors of `dtype`; with step, one fused Adam pass too."""
    weights = [layer.weight.detach().to(dtype) for layer in model.layers]
    outs = [torch.randn(x.shape[0], w.shape[0], device=x.device).to(dtype) for w in weights]
    ins = [x.to(dtype)] + outs[:-1]
    adam = _adam_pass(list(model.parameters())) if step else None
    mm = product(x.device.type)

    def run():
        for h, w in zip(ins, weights):
            mm(h, w.t())
        for layer, (h, w, g) in enumerate(zip(ins, weights, outs)):
            mm(g.t(), h)
            if layer:
                mm(g, w)
        if adam is not None:
            adam()

    return run


def _call(row, device, x, y, step, bf16):
    """One forward+backward (or training step) of a fresh lecture network."""
    model = _model(row, device, bf16)
    if row == "floor":
        return _floor(model, x, step, torch.bfloat16 if bf16 else torch.float32)
    forward = model
    if row.startswith("compile"):
        mode = "reduce-overhead" if row == "compile cudagraphs" else "default"
        forward = torch.compile(model, dynamic=False, mode=mode)
    if row == "stock bf16":
        x = x.bfloat16()
    autocast = bf16 and row != "stock bf16"
    context = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if autocast else \
        contextlib.nullcontext
    params = list(model.parameters())
    cross_entropy = ops.cross_entropy if row.startswith("fused") else F.cross_entropy

    def loss():
        with context():
            return cross_entropy(forward(x).float(), y)

    if not step:
        return lambda: torch.autograd.grad(loss(), params)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)

    def train_step():
        if row.startswith("fused"):
            with context():
                mnn.cross_entropy_backward(forward, x, y, accumulate=False, optimizer=opt)
        else:
            opt.zero_grad(set_to_none=True)
            loss().backward()
            opt.step()

    return train_step


@pytest.mark.parametrize("row", ["floor", *FUSED])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("what", ["fwdbwd", "step"])
def test_mlp(measure, what, precision, batch, device, row):
    bf16 = precision == "bf16"
    if row.startswith("compile"):
        skip_unless_compiled("relu")
    if row == "compile cudagraphs" and device != "cuda":
        pytest.skip("CUDA graphs: a CUDA row")
    if row == "stock bf16" and not bf16:
        pytest.skip("the bf16 model is a bf16 row")
    x = torch.rand(smoke(batch, 8), 784, device=device)
    y = torch.randint(0, 10, (smoke(batch, 8),), device=device)
    step = what == "step"
    beside = None
    if row.startswith("fused"):
        # The whole-MLP op also beside the per-layer op: "never slower than
        # it" is a few percent, below the drift between rows timed apart.
        peers = ("floor", "stock", "fused layer") if row == "fused" else ("floor", "stock")
        beside = {r: _call(r, device, x, y, step, bf16) for r in peers}
    suffix = ", bf16" if bf16 else ""
    group = (f"mlp_step[{NET}, batch {batch}{suffix}]" if step
             else f"mlp[{NET}, batch {batch}, fwdbwd{suffix}]")
    measure(group, row, _call(row, device, x, y, step, bf16), device, beside=beside)
