"""CUDA only: masks equal the CPU's, half precision, CUDA graphs."""

import pytest
import torch

from helpers import CUDA, GRAD_ACTIVATIONS, act_id, make_linear, reference_keeps, tie_probability
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.reference import stock_linear_act

pytestmark = pytest.mark.skipif(not CUDA, reason="no CUDA device")

SHAPES = [(1,), (7, 13), (100, 256), (3, 5, 7), (4097,)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_cuda_dropout_mask_equals_cpu(shape, p):
    for seed, offset in ((0, 0), (123, 4), (2**63 + 5, 2**40)):
        ones = torch.ones(shape)
        cpu = ops.dropout(ones, p, seed=seed, offset=offset) != 0
        cuda = ops.dropout(ones.cuda(), p, seed=seed, offset=offset) != 0
        assert torch.equal(cpu, cuda.cpu())


@pytest.mark.parametrize("tie_from", [1, 0xFFFF, 0])
def test_cuda_ties_equal_cpu(tie_from):
    """At a p where element 77's draw ties, the CUDA kernels fetch its tie
    draw as the CPU's do; both follow the definition."""
    seed, offset = 0xDEADBEEF12345, 5
    p = tie_probability(seed, offset, 77, tie_from)
    ones = torch.ones(512)
    cpu = ops.dropout(ones, p, seed=seed, offset=offset) != 0
    assert torch.equal(cpu, (ops.dropout(ones.cuda(), p, seed=seed, offset=offset) != 0).cpu())
    assert cpu.tolist() == reference_keeps(seed, offset, p, 0, 512)


@pytest.mark.parametrize("act", ["identity", "relu", "gelu", "maxout"])
def test_cuda_linear_act_mask_equals_cpu(act):
    kw = {"pieces": 3} if act == "maxout" else {}
    x, w, b = make_linear(9, 33, act, kw, dtype=torch.float64, batch=(17,))
    b = b.abs() + 100  # every pre-activation positive: zeros are exactly the dropped
    y_cpu = ops.linear_act(x, w, b, act, dropout_p=0.4, seed=9, offset=1, **kw)
    y_cuda = ops.linear_act(x.cuda(), w.cuda(), b.cuda(), act, dropout_p=0.4, seed=9, offset=1,
                            **kw)
    assert torch.equal(y_cpu != 0, (y_cuda != 0).cpu())
    torch.testing.assert_close(y_cuda.cpu(), y_cpu)


# Half precision: computed in float32, stored in the input dtype. The inputs
# are small multiples of powers of two, so that x @ W.T + b is exact in every
# dtype: ours and the float32 reference see the same pre-activations, and a
# ReLU or maxout kink cannot flip between them. The tolerances then cover the
# rounding of the stored outputs and of the backward products.
HALF_TOL = {torch.float16: dict(rtol=1e-2, atol=1e-2), torch.bfloat16: dict(rtol=4e-2, atol=4e-2)}


def _exact_linear(n_in, n_out, pieces, batch):
    x = torch.randint(-2, 3, (batch, n_in), device="cuda").float()
    w = torch.randint(-2, 3, (n_out * pieces, n_in), device="cuda").float() / 16
    # Bias: a multiple of 1/16 plus (2s + 1) / 128 for piece s, so that no
    # pre-activation is 0 and no two pieces of a unit can tie.
    piece = torch.arange(n_out * pieces, device="cuda") % pieces
    b = torch.randint(-15, 16, (n_out * pieces,), device="cuda") / 16 + (2 * piece + 1) / 128
    return x, w, b


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_cuda_half_precision_matches_float32(act, dtype):
    name, kw = act
    x, w, b = _exact_linear(64, 32, kw.get("pieces", 1), 50)
    xh, wh, bh = (t.to(dtype).requires_grad_() for t in (x, w, b))
    y = ops.linear_act(xh, wh, bh, name, **kw)
    assert y.dtype == dtype
    xr, wr, br = (t.detach().float().requires_grad_() for t in (xh, wh, bh))
    ref = stock_linear_act(xr, wr, br, name, **kw)
    torch.testing.assert_close(y.float(), ref, **HALF_TOL[dtype])
    g = torch.randn_like(ref)
    y.backward(g.to(dtype))
    ref.backward(g)
    for ours, want in ((xh, xr), (wh, wr), (bh, br)):
        scale = want.grad.abs().max().item() + 1
        torch.testing.assert_close(ours.grad.float() / scale, want.grad / scale, **HALF_TOL[dtype])
    for op_out in (ops.activation(xh, "silu"), ops.dropout(xh, 0.5, seed=1)):
        assert op_out.dtype == dtype


def test_cuda_graphs_reduce_overhead():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(mnn.FusedLinear(32, 64, "relu"), mnn.FusedLinear(64, 64, "gelu"),
                                mnn.FusedLinear(64, 10, "identity")).cuda().eval()
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    x = torch.randn(16, 32, device="cuda")
    with torch.no_grad():
        want = model(x)
        for _ in range(3):  # warm-up, record, replay
            got = compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_cuda_on_a_second_stream_and_noncontiguous():
    x, w, b = make_linear(31, 17, "tanh", {}, dtype=torch.float32, device="cuda", batch=(9,))
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        y = ops.linear_act(x.t().contiguous().t(), w, b, "tanh")
    stream.synchronize()
    torch.testing.assert_close(y, torch.tanh(x @ w.T + b))
