"""The CPU kernels' float32 products run with ATen's mm (MKL) or oneDNN's
matmul (mlpbench._C.set_fp32_matmul; "auto" picks by CPU and size): either
gives stock's answers, and the choice is the one that runs."""

import pytest
import torch
import torch.nn.functional as F

from mlpbench import _C, ops
from mlpbench.reference import stock_linear_act


@pytest.fixture(params=["aten", "onednn"])
def matmul(request):
    _C.set_fp32_matmul(request.param)
    yield request.param
    _C.set_fp32_matmul("auto")


def _ran_aten_mm(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return any(e.key == "aten::mm" for e in prof.key_averages())


@pytest.mark.parametrize("batch", [3, 300])
def test_linear_act_forward_and_backward_match_stock(matmul, batch):
    torch.manual_seed(0)
    x = torch.randn(batch, 784, requires_grad=True)
    w = (torch.randn(256, 784) / 28).requires_grad_()
    b = torch.randn(256, requires_grad=True)
    g = torch.randn(batch, 256)
    y = ops.linear_act(x, w, b, "gelu")
    grads = torch.autograd.grad(y, (x, w, b), g)
    want = stock_linear_act(x, w, b, "gelu")
    torch.testing.assert_close(y, want)
    for got, expected in zip(grads, torch.autograd.grad(want, (x, w, b), g)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # sums of 300 or 256


def test_mlp_forward_and_backward_match_stock(matmul):
    torch.manual_seed(0)
    sizes = [784, 256, 256, 10]
    ws = [(torch.randn(o, i) / i ** 0.5).requires_grad_() for i, o in zip(sizes, sizes[1:])]
    bs = [torch.randn(o, requires_grad=True) for o in sizes[1:]]
    x = torch.randn(500, 784)
    y = ops.mlp(x, ws, bs, "relu")
    h = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = F.linear(h, w, b)
        h = h.relu() if i < len(ws) - 1 else h
    torch.testing.assert_close(y, h)
    for got, want in zip(torch.autograd.grad(y.square().sum(), ws + bs),
                         torch.autograd.grad(h.square().sum(), ws + bs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# A product above "auto"'s threshold and one below it: "auto" picks oneDNN for
# the first on some CPUs and ATen for the second on all, so a choice that is
# ignored shows on one of them on any CPU.
@pytest.mark.parametrize("batch", [300, 4])
def test_the_choice_is_the_library_that_runs(matmul, batch):
    x = torch.randn(batch, 784, requires_grad=True)
    w = torch.randn(256, 784, requires_grad=True)
    assert _ran_aten_mm(lambda: ops.linear_act(x, w).sum().backward()) == (matmul == "aten")
    assert _ran_aten_mm(lambda: _C.cpu_mm(x.detach(), w.detach().t())) == (matmul == "aten")


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # mkldnn.flags sets it too
def test_other_dtypes_and_onednn_off_take_aten():
    _C.set_fp32_matmul("onednn")
    try:
        a, b = torch.randn(300, 784, dtype=torch.float64), torch.randn(784, 256, dtype=torch.float64)
        assert _ran_aten_mm(lambda: _C.cpu_mm(a, b))
        with torch.backends.mkldnn.flags(enabled=False):
            assert _ran_aten_mm(lambda: _C.cpu_mm(a.float(), b.float()))
        # An empty product: ATen's rules, no library call.
        assert _C.cpu_mm(torch.randn(0, 5), torch.randn(5, 3)).shape == (0, 3)
    finally:
        _C.set_fp32_matmul("auto")


def test_cpu_mm_gives_atens_bits_with_aten(matmul):
    a, b = torch.randn(300, 784), torch.randn(256, 784)
    got = _C.cpu_mm(a, b.t())
    if matmul == "aten":
        assert torch.equal(got, a @ b.t())
    torch.testing.assert_close(got, a @ b.t(), rtol=1e-4, atol=1e-3)  # sums of 784, ~28


def test_bad_arguments_are_named():
    assert _C.fp32_matmul() == "auto"
    with pytest.raises(ValueError, match="set_fp32_matmul: name must be 'auto', 'aten' or "
                                         "'onednn', got 'mkl'"):
        _C.set_fp32_matmul("mkl")
    assert _C.fp32_matmul() == "auto"
    with pytest.raises(ValueError, match=r"cpu_mm: a and b must be matrices \(m, k\) and \(k, n\)"):
        _C.cpu_mm(torch.randn(3, 4), torch.randn(5, 6))
    with pytest.raises(ValueError, match="cpu_mm: a and b must be matrices"):
        _C.cpu_mm(torch.randn(3), torch.randn(3, 6))
    with pytest.raises(TypeError, match="cpu_mm: a and b must have one dtype"):
        _C.cpu_mm(torch.randn(3, 4), torch.randn(4, 6, dtype=torch.float64))
