"""linear_act[<in>x<out>, batch <b>, <act>, fwd|fwdbwd]: the GEMMs alone (the
floor), stock eager, torch.compile of stock, and fused, side by side. On CUDA
the relu and gelu forward groups also time cuBLASLt's own bias+activation
epilogue (torch._addmm_activation; its gelu is the tanh form), the
alternative to our epilogue kernel that issue 6 asks to try."""

import pytest
import torch

from conftest import DEVICES, skip_unless_compiled
from mlpbench import ops
from mlpbench.reference import stock_linear_act

SHAPES = [(784, 256), (256, 256), (256, 10), (1024, 1024)]
BATCHES = [100, 4096]
ACTS = [("identity", {}), ("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {}),
        ("elu", {}), ("gelu", {}), ("silu", {}), ("maxout", {"pieces": 2})]
ROWS = ["floor", "stock", "compile", "fused", "cublaslt"]


def _inputs(n_in, n_out, batch, name, kw, device, grad):
    torch.manual_seed(0)
    rows = n_out * kw.get("pieces", 1)
    x = torch.randn(batch, n_in, device=device, requires_grad=grad)
    w = (torch.randn(rows, n_in, device=device) / n_in**0.5).requires_grad_(grad)
    b = torch.randn(rows, device=device, requires_grad=grad)
    return x, w, b


def _forward(row, name, kw):
    if row == "fused":
        return lambda x, w, b: ops.linear_act(x, w, b, name, **kw)
    if row == "stock":
        return lambda x, w, b: stock_linear_act(x, w, b, name, **kw)
    skip_unless_compiled(name)
    # Static shapes: a graph specialised to this configuration, as a user's would be.
    return torch.compile(lambda x, w, b: stock_linear_act(x, w, b, name, **kw), dynamic=False)


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a[0])
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_linear_act(measure, row, shape, batch, act, mode, device):
    name, kw = act
    n_in, n_out = shape
    grad = mode == "fwdbwd"
    x, w, b = _inputs(n_in, n_out, batch, name, kw, device, grad)
    group = f"linear_act[{n_in}x{n_out}, batch {batch}, {name}, {mode}]"
    if row == "cublaslt":
        if device != "cuda" or grad or name not in ("relu", "gelu"):
            pytest.skip("cuBLASLt epilogue rows: CUDA, relu and gelu, forward only")
        use_gelu = name == "gelu"
        with torch.no_grad():
            measure(group, row, lambda: torch._addmm_activation(b, x, w.t(), use_gelu=use_gelu),
                    device)
        return
    if row == "floor":
        g = torch.randn(batch, w.shape[0], device=device)
        with torch.no_grad():
            if grad:
                fn = lambda: (torch.addmm(b, x, w.t()), g.mm(w), g.t().mm(x))  # noqa: E731
            else:
                fn = lambda: torch.addmm(b, x, w.t())  # noqa: E731
            measure(group, row, fn, device)
        return
    f = _forward(row, name, kw)
    if grad:
        g = torch.randn_like(f(x, w, b))
        fn = lambda: torch.autograd.grad(f(x, w, b), (x, w, b), g)  # noqa: E731
        measure(group, row, fn, device)
    else:
        with torch.no_grad():
            measure(group, row, lambda: f(x, w, b), device)
