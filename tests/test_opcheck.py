"""torch.library.opcheck: schema, fake kernels, autograd registration, AOT dispatch."""

import pytest
import torch

from helpers import DEVICES, GRAD_ACTIVATIONS, act_id, make_linear
from mlpbench import ops

OPS = torch.ops.mlpbench


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS + [("step", {})], ids=act_id)
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "grad"])
def test_linear_act(act, grad, device):
    name, kw = act
    spec = ops.activation_spec(name, **kw)
    requires_grad = grad and name != "step"
    for batch, bias, p in (((5,), True, 0.0), ((2, 3), False, 0.0), ((4,), True, 0.25)):
        x, w, b = make_linear(6, 4, name, kw, dtype=torch.float32, device=device, bias=bias,
                              batch=batch, requires_grad=requires_grad)
        args = (x, w, b, spec, p, torch.tensor(1234) if p else None, 7)
        torch.library.opcheck(OPS.linear_act.default, args)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", [a for a in GRAD_ACTIVATIONS if a[0] != "maxout"], ids=act_id)
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "grad"])
def test_activation(act, grad, device):
    name, kw = act
    for shape in ((7,), (3, 5), (2, 3, 4)):
        x = torch.randn(shape, device=device, requires_grad=grad)
        torch.library.opcheck(OPS.activation.default, (x, ops.activation_spec(name, **kw)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "grad"])
def test_dropout(grad, device):
    for shape, p in (((7,), 0.5), ((3, 5), 0.1), ((2, 3, 4), 1.0)):
        x = torch.randn(shape, device=device, requires_grad=grad)
        torch.library.opcheck(OPS.dropout.default, (x, p, torch.tensor(42), 3))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_ops(device):
    x, w, _ = make_linear(6, 4, "relu", {}, dtype=torch.float32, device=device)
    y, aux = OPS.linear_act(x, w, None, "relu", 0.0, None, 0)
    torch.library.opcheck(OPS.linear_act_backward.default,
                          (torch.randn_like(y), x, w, y, "relu", 0.3, torch.tensor(5), 0,
                           [True, True, False]))
    torch.library.opcheck(OPS.activation_backward.default, (torch.randn_like(y), y, "tanh"))
