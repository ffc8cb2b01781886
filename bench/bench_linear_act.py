"""linear_act[<in>x<out>, batch <b>, <act>, fwd|fwdbwd(, bf16)]: the GEMMs
alone (the floor, conftest.product), stock eager, torch.compile of stock, and fused, side by
side. On CUDA the relu and gelu forward groups also time cuBLASLt's own
bias+activation epilogue (torch._addmm_activation; its gelu is the tanh
form), the alternative to our epilogue kernel.

bfloat16 groups (batch 4096, where the products are long enough for their
7x bf16 speed to show): the floor is the bf16 products, "stock" runs on bf16
tensors, "stock autocast", "compile" and "fused autocast" run float32
tensors under torch.autocast, and "fused" runs on bf16 tensors."""

import contextlib

import pytest
import torch

from conftest import DEVICES, product, skip_unless_compiled, smoke
from mlpbench import ops
from mlpbench.reference import stock_linear_act

SHAPES = [(784, 256), (256, 256), (256, 10), (1024, 1024)]
BATCHES = [100, 4096]
# Every activation with a backward, from the table (maxout with the lecture's 2 pieces).
ACTS = [(name, {"pieces": 2} if "pieces" in ops.activation_info(name)["params"] else {})
        for name in ops.ACTIVATIONS if ops.activation_info(name)["differentiable"]]
ROWS = ["floor", "stock", "stock autocast", "compile", "fused", "fused autocast", "cublaslt"]
FP32_ROWS = {"floor", "stock", "compile", "fused", "cublaslt"}


def _inputs(n_in, n_out, batch, name, kw, device, grad, dtype):
    torch.manual_seed(0)
    rows = n_out * kw.get("pieces", 1)
    x = torch.randn(batch, n_in, device=device).to(dtype).requires_grad_(grad)
    w = (torch.randn(rows, n_in, device=device) / n_in**0.5).to(dtype).requires_grad_(grad)
    b = torch.randn(rows, device=device).to(dtype).requires_grad_(grad)
    return x, w, b


_COMPILED = {}  # one compiled stock function per activation, shared by its rows


def _forward(row, name, kw, shape):
    if row.startswith("fused"):
        return lambda x, w, b: ops.linear_act(x, w, b, name, **kw)
    if row.startswith("stock"):
        return lambda x, w, b: stock_linear_act(x, w, b, name, **kw)
    skip_unless_compiled(name, shape)
    key = (name, tuple(sorted(kw.items())))
    if key not in _COMPILED:
        # Static shapes: a graph specialised to each configuration, as a user's would be.
        _COMPILED[key] = torch.compile(lambda x, w, b: stock_linear_act(x, w, b, name, **kw),
                                       dynamic=False)
    return _COMPILED[key]


def _row_fn(row, name, kw, tensors, g, grad, autocast, shape):
    """The timed call of a row: the floor's products (on detached tensors, so
    that they record no graph), or a forward, with its backward (of g) when
    grad; under autocast where the row is an autocast row."""
    x, w, b = tensors
    if row == "floor":
        xd, wd, mm = x.detach(), w.detach(), product(x.device.type)
        if grad:
            gp = torch.randn(x.shape[0], w.shape[0], device=x.device).to(x.dtype)  # maxout: all pieces
            return lambda: (mm(xd, wd.t()), mm(gp, wd), mm(gp.t(), xd))
        return lambda: mm(xd, wd.t())
    f = _forward(row, name, kw, shape)
    context = autocast if autocast is not None else contextlib.nullcontext

    def call():
        with context():
            y = f(x, w, b)
        return torch.autograd.grad(y, (x, w, b), g.to(y.dtype)) if grad else y

    return call


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a[0])
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_linear_act(measure, row, shape, batch, act, mode, dtype, device):
    name, kw = act
    n_in, n_out = shape
    grad = mode == "fwdbwd"
    bf16 = dtype == "bf16"
    if bf16 and batch != 4096:
        pytest.skip("bf16 rows at batch 4096")
    if not bf16 and row not in FP32_ROWS:
        pytest.skip("autocast rows are bf16 rows")
    group = f"linear_act[{n_in}x{n_out}, batch {batch}, {name}, {mode}{', bf16' if bf16 else ''}]"
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else None
    n_in, n_out, batch = smoke(n_in, min(n_in, 32)), smoke(n_out, min(n_out, 32)), smoke(batch, 8)
    # Tensors: bf16 for floor, stock and fused; float32 under autocast.
    low = _inputs(n_in, n_out, batch, name, kw, device, grad, torch.bfloat16 if bf16 else torch.float32)
    high = _inputs(n_in, n_out, batch, name, kw, device, grad, torch.float32) if bf16 else low
    g = torch.randn(batch, n_out, device=device)

    def make(r):
        uses_autocast = bf16 and (r in ("stock autocast", "compile", "fused autocast"))
        return _row_fn(r, name, kw, high if uses_autocast else low, g, grad,
                       autocast if uses_autocast else None, shape)

    if row == "cublaslt":
        if device != "cuda" or grad or bf16 or name not in ("relu", "gelu"):
            pytest.skip("cuBLASLt epilogue rows: CUDA, float32, relu and gelu, forward only")
        x, w, b = low
        use_gelu = name == "gelu"
        with torch.no_grad():
            measure(group, row, lambda: torch._addmm_activation(b, x, w.t(), use_gelu=use_gelu),
                    device)
        return
    # A fused row times the floor and its stock rows interleaved with itself.
    # Not the compiled one: interleaved with it, every row ran ~2x slower here
    # (256->10, batch 100: stock fwd+bwd 89 -> 184 us), so it is timed alone.
    beside = None
    if row == "fused":
        beside = {r: make(r) for r in ("floor", "stock")}
    elif row == "fused autocast":
        beside = {r: make(r) for r in ("floor", "stock autocast")}
    with torch.set_grad_enabled(grad):
        measure(group, row, make(row), device, beside=beside)
