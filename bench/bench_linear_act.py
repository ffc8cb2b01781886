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
# Every activation with a backward, from the table (maxout with the lecture's 2 pieces).
ACTS = [(name, {"pieces": 2} if "pieces" in ops.activation_info(name)["params"] else {})
        for name in ops.ACTIVATIONS if ops.activation_info(name)["differentiable"]]
ROWS = ["floor", "stock", "compile", "fused", "cublaslt"]


def _inputs(n_in, n_out, batch, name, kw, device, grad):
    torch.manual_seed(0)
    rows = n_out * kw.get("pieces", 1)
    x = torch.randn(batch, n_in, device=device, requires_grad=grad)
    w = (torch.randn(rows, n_in, device=device) / n_in**0.5).requires_grad_(grad)
    b = torch.randn(rows, device=device, requires_grad=grad)
    return x, w, b


_COMPILED = {}  # one compiled stock function per activation, shared by its rows


def _forward(row, name, kw):
    if row == "fused":
        return lambda x, w, b: ops.linear_act(x, w, b, name, **kw)
    if row == "stock":
        return lambda x, w, b: stock_linear_act(x, w, b, name, **kw)
    skip_unless_compiled(name)
    key = (name, tuple(sorted(kw.items())))
    if key not in _COMPILED:
        # Static shapes: a graph specialised to each configuration, as a user's would be.
        _COMPILED[key] = torch.compile(lambda x, w, b: stock_linear_act(x, w, b, name, **kw),
                                       dynamic=False)
    return _COMPILED[key]


def _row_fn(row, name, kw, x, w, b, g, grad):
    """The timed call of a row: the floor's products (on detached tensors, so
    that they record no graph), or a forward, with its backward (of g) when grad."""
    if row == "floor":
        xd, wd, bd = x.detach(), w.detach(), b.detach()
        if grad:
            gp = torch.randn(x.shape[0], w.shape[0], device=x.device)  # maxout: all pieces
            return lambda: (torch.addmm(bd, xd, wd.t()), gp.mm(wd), gp.t().mm(xd))
        return lambda: torch.addmm(bd, xd, wd.t())
    f = _forward(row, name, kw)
    if grad:
        return lambda: torch.autograd.grad(f(x, w, b), (x, w, b), g)
    return lambda: f(x, w, b)


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
    g = torch.randn(batch, n_out, device=device)
    group = f"linear_act[{n_in}x{n_out}, batch {batch}, {name}, {mode}]"
    if row == "cublaslt":
        if device != "cuda" or grad or name not in ("relu", "gelu"):
            pytest.skip("cuBLASLt epilogue rows: CUDA, relu and gelu, forward only")
        use_gelu = name == "gelu"
        with torch.no_grad():
            measure(group, row, lambda: torch._addmm_activation(b, x, w.t(), use_gelu=use_gelu),
                    device)
        return
    # The fused row times the floor and stock rows interleaved with itself. Not
    # the compiled one: interleaved with it, every row ran ~2x slower here
    # (256->10, batch 100: stock fwd+bwd 89 -> 184 us), so it is timed alone.
    beside = None
    if row == "fused":
        beside = {r: _row_fn(r, name, kw, x, w, b, g, grad) for r in ("floor", "stock")}
    fn = _row_fn(row, name, kw, x, w, b, g, grad)
    with torch.set_grad_enabled(grad):
        measure(group, row, fn, device, beside=beside)
