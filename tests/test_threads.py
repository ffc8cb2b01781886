"""Thread counts: 1, 2 and 3 (3 oversubscribes a 2-core machine, which is
fine). Wherever the code promises results independent of the thread count
(elementwise ops, dropout masks, the bias gradient's fixed chunk order),
they equal one thread's bit for bit; the products (BLAS's, threaded or run
side by side one thread each) agree within float tolerance: MKL may pick
another kernel inside a parallel region than at one thread (seen on a
Sapphire Rapids machine), so their bits are not promised."""

import pytest
import torch

from helpers import ELEMENTWISE, act_id, act_kwargs, make_linear
from mlpbench import ops

THREADS = [1, 2, 3]


def _per_thread_count(fn):
    old = torch.get_num_threads()
    try:
        results = {}
        for n in THREADS:
            torch.set_num_threads(n)
            results[n] = fn()
        return results
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_elementwise_ops_do_not_depend_on_threads(act):
    name, kw = act
    torch.manual_seed(0)
    x = torch.randn(300_007, requires_grad=True)  # several chunks of every grain size
    g = torch.randn_like(x)

    def run():
        y = ops.activation(x, name, **act_kwargs(kw))
        (gx,) = torch.autograd.grad(y, x, g)
        return y, gx, ops.dropout(x.detach(), 0.3, seed=5)

    results = _per_thread_count(run)
    for n in THREADS[1:]:
        for one, other in zip(results[1], results[n]):
            assert torch.equal(one, other), n


@pytest.mark.parametrize("shape", [(100, 256, 10), (100, 784, 256), (4096, 256, 10),
                                   (512, 1024, 1024), (4096, 784, 256)],
                         ids=lambda s: "x".join(map(str, s)))
def test_linear_act_across_thread_counts(shape):
    """grad_bias sums fixed chunks of grad_pre in a fixed order: from the same
    saved pre-activation, the same bits at any thread count. The products
    (forward in row blocks fixed by the shape, one thread each; the two
    input-gradient products side by side, or one after the other, threaded:
    linear_act_cpu.cpp) agree with one thread's within float tolerance."""
    batch, n_in, n_out = shape
    x, w, b = make_linear(n_in, n_out, "gelu", {}, dtype=torch.float32, batch=(batch,),
                          requires_grad=True)
    g = torch.randn(batch, n_out)
    kw = dict(activation="gelu", dropout_p=0.2, offset=0, seed=torch.tensor([9]))
    _, pre = torch.ops.mlpbench.linear_act(x, w, b, **kw)

    def run():
        y = ops.linear_act(x, w, b, "gelu", dropout_p=0.2, seed=9)
        gx, gw, _ = torch.autograd.grad(y, (x, w, b), g)
        gb = torch.ops.mlpbench.linear_act_backward(g, x, w, pre, output_mask=[False, False, True],
                                                   **kw)[2]
        return y, gx, gw, gb

    results = _per_thread_count(run)
    for n in THREADS[1:]:
        y, gx, gw, gb = results[n]
        assert torch.equal(gb, results[1][3]), n
        for got, want in zip((y, gx, gw), results[1][:3]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * n_in**0.5)
