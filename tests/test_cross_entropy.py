"""The fused cross-entropy: against stock F.cross_entropy (values, gradients,
dtypes, ignore_index, special values), gradcheck in float64, every
instruction-set level, opcheck, autocast, torch.compile and torch.func, and
the errors it raises."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import jvp

from helpers import DEVICES
from mlpbench import ops

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16}


def _case(shape, device, dtype=torch.float32, ignore_every=0, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g) * 4 + offset).to(device=device, dtype=dtype)
    target = torch.randint(0, shape[-1], shape[:-1], generator=g).to(device)
    if ignore_every and target.dim():
        target[::ignore_every] = -100
    return logits, target


# Shapes: the lecture's (100 x 10 classes), one class, rows wider than any
# vector (33), exactly a vector (16), and a single row (C,).
SHAPES = [(100, 10), (4096, 10), (5, 1), (7, 33), (3, 16), (10,)]


def _no_further_off(got, stock, truth, relative, scale=0.0):
    """got is within `relative` of float64's truth, or of `scale` (a
    gradient's: its row's share of grad_loss, which softmax - 1 cancels
    against), plus a hair; or no further off than twice stock's result is:
    never less right than stock."""
    err, stock_err = (got.double() - truth).abs(), (stock.double() - truth).abs()
    bad = err > 2 * stock_err + relative * (truth.abs() + scale) + 1e-7
    assert not bad.any(), (got[bad][:4].tolist(), stock[bad][:4].tolist(), truth[bad][:4].tolist())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_stock(reduction, dtype, device):
    dt = DTYPES[dtype]
    # float32 within ~3 ulp, bfloat16 within its rounding (an ulp is 2^-7).
    relative = {torch.float32: 4e-7, torch.float64: 1e-15, torch.bfloat16: 2**-8}[dt]
    for shape in SHAPES:
        logits, target = _case(shape, device, dt, ignore_every=5)
        exact = logits.double().requires_grad_()
        logits.requires_grad_()
        ours = ops.cross_entropy(logits, target, reduction=reduction)
        stock = F.cross_entropy(logits, target, reduction=reduction)
        truth = F.cross_entropy(exact, target, reduction=reduction)
        assert ours.dtype == stock.dtype and ours.shape == stock.shape
        g = torch.randn_like(stock)
        (g_ours,) = torch.autograd.grad(ours, logits, g)
        (g_stock,) = torch.autograd.grad(stock, logits, g)
        (g_truth,) = torch.autograd.grad(truth, exact, g.double())
        _no_further_off(ours.detach(), stock.detach(), truth.detach(), relative)
        rows = g.double().abs()
        if reduction != "none":
            rows = rows / ((target != -100).sum() if reduction == "mean" else 1)
        _no_further_off(g_ours, g_stock, g_truth, relative,
                        rows.unsqueeze(-1) if rows.dim() else rows)


def test_every_instruction_set_level(level):
    """Far-negative logits too: a row's lanes past its end must not enter its
    max (a 0 there would underflow every exp to 0, and the loss to inf)."""
    for offset in (0.0, -300.0, 300.0):
        for shape in SHAPES:
            logits, target = _case(shape, "cpu", torch.float64, ignore_every=4, offset=offset)
            logits32 = logits.float().requires_grad_()
            loss = ops.cross_entropy(logits32, target, reduction="none")
            want = F.cross_entropy(logits, target, reduction="none")
            torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=1e-5)
            (grad,) = torch.autograd.grad(loss.sum(), logits32)
            (want_grad,) = torch.autograd.grad(
                F.cross_entropy(logits.requires_grad_(), target, reduction="sum"), logits)
            torch.testing.assert_close(grad.double(), want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_float64(reduction):
    for shape in ((6, 4), (5, 19), (3,)):
        logits, target = _case(shape, "cpu", torch.float64, ignore_every=3)
        logits.requires_grad_()

        def fn(x):
            return ops.cross_entropy(x, target, reduction=reduction)

        assert torch.autograd.gradcheck(fn, (logits,))
        assert torch.autograd.gradgradcheck(fn, (logits,))


@pytest.mark.parametrize("device", DEVICES)
def test_ignored_rows_and_special_values_as_stock(device):
    logits, _ = _case((4, 3), device)
    ignored = torch.full((4,), 7, device=device)
    for reduction in REDUCTIONS:  # every row ignored: mean NaN (0 / 0), sum 0
        torch.testing.assert_close(
            ops.cross_entropy(logits, ignored, ignore_index=7, reduction=reduction),
            F.cross_entropy(logits, ignored, ignore_index=7, reduction=reduction),
            equal_nan=True)
    special = torch.tensor([[math.inf, 0.0, 1.0], [math.nan, 0.0, 1.0], [-math.inf, 0.0, 1.0],
                            [-math.inf] * 3, [1e30, -1e30, 0.0]], device=device)
    target = torch.tensor([0, 1, 0, 2, 1], device=device)
    torch.testing.assert_close(ops.cross_entropy(special, target, reduction="none"),
                               F.cross_entropy(special, target, reduction="none"),
                               equal_nan=True)
    empty = torch.zeros(0, 5, device=device)
    no_target = torch.zeros(0, dtype=torch.long, device=device)
    assert ops.cross_entropy(empty, no_target).isnan()
    assert ops.cross_entropy(empty, no_target, reduction="none").shape == (0,)


def test_loss_does_not_depend_on_the_thread_count():
    logits, target = _case((4096, 10), "cpu", ignore_every=7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.cross_entropy(logits, target, reduction="sum")
        torch.set_num_threads(max(2, threads))
        assert torch.equal(ops.cross_entropy(logits, target, reduction="sum"), one)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "grad"])
def test_opcheck(grad, device):
    for shape, reduction in (((6, 4), "mean"), ((3, 17), "none"), ((5,), "sum")):
        logits, target = _case(shape, device, ignore_every=2)
        logits.requires_grad_(grad)
        torch.library.opcheck(torch.ops.mlpbench.cross_entropy.default,
                              (logits, target, -100, reduction))
    logits, target = _case((6, 4), device)
    loss, lse = torch.ops.mlpbench.cross_entropy(logits, target, -100, "none")
    torch.library.opcheck(torch.ops.mlpbench.cross_entropy_backward.default,
                          (torch.randn_like(loss), logits, target, lse, -100, "none"))


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_in_float32_as_stock(device):
    logits, target = _case((8, 10), device, torch.bfloat16)
    with torch.autocast(device, dtype=torch.bfloat16):
        ours = ops.cross_entropy(logits, target)
        stock = F.cross_entropy(logits, target)
    assert ours.dtype == stock.dtype == torch.float32
    torch.testing.assert_close(ours, stock)


def test_compile_fullgraph_with_backward():
    logits, target = _case((32, 10), "cpu", ignore_every=4)

    def loss_of(x):
        return ops.cross_entropy(x * 2, target)

    compiled = torch.compile(loss_of, fullgraph=True, backend="aot_eager")
    grads = []
    for fn in (compiled, loss_of):
        x = logits.clone().requires_grad_()
        loss = fn(x)
        loss.backward()
        grads.append((loss.detach(), x.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_forward_mode_and_torch_func_give_stocks():
    logits, target = _case((6, 5), "cpu", torch.float64, ignore_every=3)
    tangent = torch.randn_like(logits)

    def ours(x):
        return ops.cross_entropy(x, target)

    def stock(x):
        return F.cross_entropy(x, target)

    torch.testing.assert_close(jvp(ours, (logits,), (tangent,)), jvp(stock, (logits,), (tangent,)))
    torch.testing.assert_close(torch.func.grad(ours)(logits), torch.func.grad(stock)(logits))
    torch.testing.assert_close(torch.func.hessian(ours)(logits), torch.func.hessian(stock)(logits))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_vmap_gives_stocks(reduction):
    logits, target = _case((3, 5, 4), "cpu", ignore_every=2)
    target[1] = -100  # a sample with every row ignored: its mean is NaN

    for in_dims, args in (((0, 0), (logits, target)), ((0, None), (logits, target[0])),
                          ((None, 0), (logits[0], target)), ((1, 1), (logits.movedim(0, 1),
                                                                     target.movedim(0, 1))),
                          ((0, 0), (logits[:, 0], target[:, 0]))):  # (C,) samples
        def ours(x, t):
            return ops.cross_entropy(x, t, reduction=reduction)

        def stock(x, t):
            return F.cross_entropy(x, t, reduction=reduction)

        torch.testing.assert_close(torch.vmap(ours, in_dims)(*args),
                                   torch.vmap(stock, in_dims)(*args), equal_nan=True)


def test_bad_input_names_the_argument():
    logits, target = _case((4, 3), "cpu")
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        ops.cross_entropy(logits, target, reduction="avg")
    with pytest.raises(TypeError, match="target must be an int64 tensor"):
        ops.cross_entropy(logits, target.float())
    with pytest.raises(TypeError, match="target must be an int64 tensor"):
        ops.cross_entropy(logits, target.int())
    with pytest.raises(ValueError, match="target must have logits' leading dimension's shape"):
        ops.cross_entropy(logits, target[:3])
    with pytest.raises(ValueError, match=r"logits must be \(N, C\) or \(C,\)"):
        ops.cross_entropy(logits.view(2, 2, 3), target.view(2, 2))
    with pytest.raises(TypeError, match="logits must be a float32, float64 or bfloat16"):
        ops.cross_entropy(logits.long(), target)
    with pytest.raises(ValueError, match="at least one class"):
        ops.cross_entropy(torch.zeros(2, 0), torch.tensor([-100, -100]))
    with pytest.raises(IndexError, match=r"class indices in \[0, 3\) or ignore_index \(-100\); "
                                         r"row 2 holds 3"):
        ops.cross_entropy(logits, torch.tensor([0, 1, 3, -1]))
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        ops.cross_entropy([[1.0, 2.0]], torch.tensor([0]))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        ops.cross_entropy(logits, target, ignore_index=1.5)
    with pytest.raises(TypeError, match="reduction must be a str"):
        ops.cross_entropy(logits, target, reduction=None)
    loss, lse = torch.ops.mlpbench.cross_entropy(logits, target, -100, "none")
    with pytest.raises(TypeError, match="lse must be float64"):
        torch.ops.mlpbench.cross_entropy_backward(loss, logits, target, lse.float(), -100, "none")
    with pytest.raises(ValueError, match="grad_loss must have the loss's shape"):
        torch.ops.mlpbench.cross_entropy_backward(loss[:2], logits, target, lse, -100, "none")

