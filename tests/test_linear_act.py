"""linear_act against autograd (float64 gradcheck) and against stock PyTorch."""

import pytest
import torch
import torch.nn.functional as F

from helpers import DEVICES, GRAD_ACTIVATIONS, act_id, make_linear
from mlpbench import _C, ops
from mlpbench.reference import stock_linear_act

# (x shape, in -> out, bias, how x is laid out)
CASES = {
    "odd": ((7,), 13, 5, True, "contiguous"),
    "3d": ((2, 3), 13, 5, True, "contiguous"),
    "noncontiguous": ((7,), 13, 5, True, "transposed"),
    "nobias": ((7,), 13, 5, False, "contiguous"),
    "batch1": ((1,), 13, 5, True, "contiguous"),
}


def _inputs(case, name, kw, dtype, device):
    batch, n_in, n_out, bias, layout = CASES[case]
    x, w, b = make_linear(n_in, n_out, name, kw, dtype=dtype, device=device, bias=bias,
                          batch=batch)
    if layout == "transposed":
        x = x.t().contiguous().t()
        assert not x.is_contiguous()
    return [t.requires_grad_() if t is not None else None for t in (x, w, b)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_gradcheck_float64(act, case, device):
    name, kw = act
    x, w, b = _inputs(case, name, kw, torch.float64, device)
    inputs = (x, w) if b is None else (x, w, b)

    def fn(x, w, b=None):
        return ops.linear_act(x, w, b, name, **kw)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("shape", [(64, 784, 256), (100, 256, 10), (3, 7, 1)])
def test_float32_matches_stock(act, shape, device):
    name, kw = act
    batch, n_in, n_out = shape
    x, w, b = make_linear(n_in, n_out, name, kw, dtype=torch.float32, device=device,
                          batch=(batch,), requires_grad=True)
    xs, ws, bs = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = ops.linear_act(x, w, b, name, **kw)
    ys = stock_linear_act(xs, ws, bs, name, **kw)
    # Tolerances: float32 products of length n_in differ in summation order.
    tol = dict(rtol=1e-4, atol=1e-5 * n_in**0.5)
    torch.testing.assert_close(y, ys, **tol)
    grad = torch.randn_like(y)
    y.backward(grad)
    ys.backward(grad)
    for ours, stock in ((x, xs), (w, ws), (b, bs)):
        torch.testing.assert_close(ours.grad, stock.grad, **tol)


@pytest.mark.parametrize("device", DEVICES)
def test_step_forward_matches_heaviside_and_refuses_backward(device):
    x, w, b = make_linear(13, 5, "step", {}, dtype=torch.float32, device=device,
                          requires_grad=True)
    y = ops.linear_act(x, w, b, "step")
    torch.testing.assert_close(y, stock_linear_act(x, w, b, "step"))
    with pytest.raises(RuntimeError, match="step.*no useful derivative"):
        y.sum().backward()


@pytest.mark.parametrize("device", DEVICES)
def test_only_requested_gradients_are_computed(device):
    x, w, b = make_linear(13, 5, "relu", {}, device=device)
    w.requires_grad_()
    ops.linear_act(x, w, b).sum().backward()
    assert x.grad is None and b.grad is None
    assert w.grad is not None and w.grad.shape == w.shape
    # The backward op returns empty tensors for what was not asked.
    y, _ = torch.ops.mlpbench.linear_act(x, w, b, "relu", 0.0, None, 0)
    gx, gw, gb = torch.ops.mlpbench.linear_act_backward(
        torch.ones_like(y), x, w, y, "relu", 0.0, None, 0, [False, True, False])
    assert gx.numel() == 0 and gb.numel() == 0 and gw.shape == w.shape


@pytest.mark.parametrize("device", DEVICES)
def test_autograd_node_only_when_a_gradient_is_wanted(device):
    """The ops skip the autograd node when nothing requires grad or grad mode
    is off, and record it when any one input (bias alone too) requires grad;
    both paths compute the same output."""
    x, w, b = make_linear(13, 5, "tanh", {}, dtype=torch.float32, device=device)
    plain = ops.linear_act(x, w, b, "tanh", dropout_p=0.25, seed=3)
    assert plain.grad_fn is None and not plain.requires_grad
    b.requires_grad_()
    y = ops.linear_act(x, w, b, "tanh", dropout_p=0.25, seed=3)
    assert y.grad_fn is not None
    assert torch.equal(y.detach(), plain)
    (gb,) = torch.autograd.grad(y.sum(), b)
    mask = ops.dropout(torch.ones_like(plain), 0.25, seed=3)
    want = stock_linear_act(x, w, b, "tanh") * mask
    torch.testing.assert_close(gb, torch.autograd.grad(want.sum(), b)[0])
    with torch.no_grad():
        for out in (ops.linear_act(x, w, b, "tanh"), ops.activation(b, "tanh"),
                    ops.dropout(b, 0.5, seed=1)):
            assert out.grad_fn is None and not out.requires_grad


@pytest.mark.parametrize("name", ["gelu", "maxout"])
def test_backward_allocates_no_gradient_for_aux(name):
    """aux (gelu's pre-activation, maxout's argmax) has no gradient; autograd
    must not build a zero-filled one of its size for every backward."""
    kw = {"pieces": 2} if name == "maxout" else {}
    x, w, b = make_linear(64, 32, name, kw, dtype=torch.float32, batch=(16,), requires_grad=True)
    y = ops.linear_act(x, w, b, name, **kw)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
    ran = {e.name for e in prof.events()}
    assert "mlpbench::linear_act_backward" in ran
    assert not ran & {"aten::zeros", "aten::zero_", "aten::zeros_like"}, sorted(ran)
    want = torch.autograd.grad(stock_linear_act(x, w, b, name, **kw), (x, w, b),
                               torch.ones_like(y))
    for got, expected in zip((gx, gw, gb), want):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("dtype, batch", [(torch.float32, 100), (torch.float64, 100),
                                          (torch.float32, 4096)])
def test_cpu_input_gradients_concurrent_or_not(dtype, batch):
    """On two threads the CPU backward runs its two products at once, one per
    thread, when they are small (784->256 at batch 100: 2^24.3 multiply-adds)
    or large (batch 4096: 2^29.6); on one thread one after the other. Each
    product is then a single-threaded BLAS call either way, so the results
    are the same bits, and neither records autograd history in the worker
    thread."""
    x, w, b = make_linear(784, 256, "relu", {}, dtype=dtype, batch=(batch,), requires_grad=True)
    g = torch.randn(batch, 256, dtype=dtype)
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            grads.append(torch.autograd.grad(ops.linear_act(x, w, b, "relu"), (x, w, b), g))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*grads):
        assert torch.equal(one, two) and not two.requires_grad
    if dtype == torch.float64:
        want = torch.autograd.grad(stock_linear_act(x, w, b, "relu"), (x, w, b), g)
        for got, expected in zip(grads[1], want):
            torch.testing.assert_close(got, expected)
        return
    # float32 sums over 4096 rows may round differently in a single-threaded
    # product than in the library's two-thread split. The truth: the exact
    # gradients for this forward's ReLU mask (a pre-activation within
    # rounding of 0 may fall the other way in another forward, float64's
    # included). Ours are as close to it as the same library's products on
    # all threads (_C.cpu_mm; on an AMD CPU oneDNN, whose float32 products
    # are further off than stock's MKL: docs/design.md) and stock's sum.
    with torch.no_grad():
        grad_pre = g * (ops.linear_act(x, w, b, "relu") > 0)
        exact = grad_pre.double()
        truth = (exact @ w.double(), exact.t() @ x.double(), exact.sum(0))
        theirs = (_C.cpu_mm(grad_pre, w), _C.cpu_mm(grad_pre.t(), x), grad_pre.sum(0))
    for got, their, true in zip(grads[1], theirs, truth):
        ours_off = (got.double() - true).abs().max()
        their_off = (their.double() - true).abs().max()
        assert ours_off <= 2 * their_off + 1e-6, (ours_off, their_off)


@pytest.mark.parametrize("device", DEVICES)
def test_python_entry_points_match_torch_ops(device):
    """mlpbench.ops calls _C's entry points outside torch.compile: the same
    dispatcher call as torch.ops.mlpbench.*, so the same results."""
    x, w, b = make_linear(13, 5, "gelu", {}, dtype=torch.float32, device=device)
    args = (x, w, b, "gelu(approximate='tanh')", 0.3, torch.tensor(7), 2)
    entry = _C.entry("linear_act")
    for got, want in zip(entry(*args), torch.ops.mlpbench.linear_act(*args)):
        assert torch.equal(got, want)
    assert torch.equal(_C.entry("activation")(x, "elu(alpha=0.5)"),
                       torch.ops.mlpbench.activation(x, "elu(alpha=0.5)"))
    seed = torch.tensor(5)
    assert torch.equal(_C.entry("dropout")(x, 0.4, seed, 9),
                       torch.ops.mlpbench.dropout(x, 0.4, seed, 9))


@pytest.mark.parametrize("device", DEVICES)
def test_saves_only_what_the_derivative_needs(device):
    """Output-derivable activations keep y (the op's output), gelu/silu the
    pre-activation, maxout a uint8 argmax: never a second full float tensor."""
    saved = {}
    for name, kw in (("relu", {}), ("gelu", {}), ("maxout", {"pieces": 2})):
        x, w, b = make_linear(13, 5, name, kw, dtype=torch.float32, device=device,
                              requires_grad=True)
        packed = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t,
                                                      lambda t: t):
            y = ops.linear_act(x, w, b, name, **kw)
        params = {x.data_ptr(), w.data_ptr(), b.data_ptr()}  # inputs, kept anyway
        saved[name] = [t for t in packed if t.data_ptr() not in params]
        if name == "relu":
            assert len(saved[name]) == 1 and saved[name][0].data_ptr() == y.data_ptr()
    assert [t.dtype for t in saved["gelu"]] == [torch.float32]
    assert saved["gelu"][0].shape == (7, 5)
    assert [t.dtype for t in saved["maxout"]] == [torch.uint8]


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_and_zero_in_features(device):
    x, w, b = make_linear(13, 5, "relu", {}, dtype=torch.float32, device=device, batch=(0,),
                          requires_grad=True)
    y = ops.linear_act(x, w, b)
    assert y.shape == (0, 5)
    y.sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))
    x, w, b = make_linear(0, 5, "tanh", {}, dtype=torch.float32, device=device,
                          requires_grad=True)
    torch.testing.assert_close(ops.linear_act(x, w, b, "tanh"), torch.tanh(b).expand(7, 5))


@pytest.mark.parametrize("device", DEVICES)
def test_large_batch_uses_every_row_block(device):
    """Enough rows for several parallel chunks and cache blocks per chunk."""
    x, w, b = make_linear(64, 1500, "sigmoid", {}, dtype=torch.float64, device=device,
                          batch=(1000,))
    torch.testing.assert_close(ops.linear_act(x, w, b, "sigmoid"),
                               torch.sigmoid(F.linear(x, w, b)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_ties_go_to_the_first_piece(device, pieces):
    """Where a unit's pieces are equal, the first one is the max: its argmax
    is 0 and it alone gets the gradient (stock amax would split it)."""
    x = torch.randn(6, 5, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64, device=device).repeat_interleave(pieces, 0)
    b = torch.randn(4, dtype=torch.float64, device=device).repeat_interleave(pieces)
    w.requires_grad_()
    y, arg = torch.ops.mlpbench.linear_act(x, w, b, f"maxout(pieces={pieces})", 0.0, None, 0)
    assert torch.equal(arg, torch.zeros_like(arg))
    torch.testing.assert_close(y, F.linear(x, w[::pieces], b[::pieces]))
    (gw,) = torch.autograd.grad(y, w, torch.ones_like(y))
    assert gw.unflatten(0, (4, pieces))[:, 1:].abs().sum() == 0
    assert (gw.unflatten(0, (4, pieces))[:, 0] != 0).all()
