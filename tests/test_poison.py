"""Every element of every output is written: outputs are poisoned with NaN
before each kernel runs (mlpbench.ops.debug_poison), on odd sizes that are not
multiples of any vector width."""

import pytest
import torch

from helpers import DEVICES, GRAD_ACTIVATIONS, act_id, make_linear
from mlpbench import ops

ODD = [(1, 1, 1), (3, 5, 7), (13, 33, 17), (257, 65, 131)]


def _finite(*tensors):
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_linear_act_writes_every_element(act, p, device):
    name, kw = act
    for batch, n_in, n_out in ODD:
        x, w, b = make_linear(n_in, n_out, name, kw, dtype=torch.float32, device=device,
                              batch=(batch,), requires_grad=True)
        with ops.debug_poison():
            y = ops.linear_act(x, w, b, name, dropout_p=p, seed=1, **kw)
            y.backward(torch.ones_like(y))
        assert _finite(y, x.grad, w.grad, b.grad), (batch, n_in, n_out)


@pytest.mark.parametrize("device", DEVICES)
def test_elementwise_ops_write_every_element(device):
    for n in (1, 3, 5, 7, 9, 15, 17, 1023, 4097):
        # An offset view: not aligned for vector loads.
        x = torch.randn(n + 1, device=device)[1:].requires_grad_()
        with ops.debug_poison():
            outs = [ops.activation(x, name) for name in ("tanh", "gelu", "relu")]
            outs.append(ops.dropout(x, 0.5, seed=3))
            sum(o.sum() for o in outs).backward()
        assert _finite(*outs, x.grad), n


@pytest.mark.parametrize("device", DEVICES)
def test_poison_switch_fills_new_outputs(device):
    assert not ops._C.debug_poison()
    with ops.debug_poison():
        assert torch.isnan(ops._C.new_output_like(torch.zeros(5, device=device))).all()
        assert (ops._C.new_output_like(torch.zeros(5, dtype=torch.uint8, device=device)) == 255).all()
    assert not ops._C.debug_poison()
