"""The drop-in modules: nn.Linear's parameters, state_dict both ways."""

import pytest
import torch
from torch import nn

from helpers import DEVICES
from mlpbench import nn as mnn
from mlpbench.reference import stock_activation


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "leaky_relu"])
def test_state_dict_both_ways(name, device):
    torch.manual_seed(0)
    stock = nn.Linear(12, 6).to(device)
    fused = mnn.FusedLinear(12, 6, name).to(device)
    fused.load_state_dict(stock.state_dict())
    x = torch.randn(5, 12, device=device)
    torch.testing.assert_close(fused(x), stock_activation(stock(x), name))
    fused2 = mnn.FusedLinear(12, 6, name, device=device)
    stock.load_state_dict(fused2.state_dict())
    torch.testing.assert_close(fused2(x), stock_activation(stock(x), name))


def test_same_initialisation_as_nn_linear():
    torch.manual_seed(3)
    stock = nn.Linear(30, 7)
    torch.manual_seed(3)
    fused = mnn.FusedLinear(30, 7)
    assert torch.equal(stock.weight, fused.weight) and torch.equal(stock.bias, fused.bias)


def test_maxout_rows_and_no_bias():
    m = mnn.FusedLinear(10, 4, "maxout", pieces=3, bias=False)
    assert m.weight.shape == (12, 10) and m.bias is None
    assert m(torch.randn(2, 10)).shape == (2, 4)
    assert "pieces=3" in repr(m)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_features must be an int >= 0"):
        mnn.FusedLinear(-1, 3)
    with pytest.raises(ValueError, match=r"pieces must be an int in \[1, 255\]"):
        mnn.FusedLinear(4, 3, "maxout", pieces=0)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
        mnn.FusedLinear(4, 3, dropout=1.5)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
        mnn.FusedDropout(float("nan"))
