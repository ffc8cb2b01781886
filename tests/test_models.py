"""The lecture MLPs: stock and fused share parameters and agree in eval mode."""

import pytest
import torch
import torch.nn.functional as F

from mlpbench.models import INITS, MLP
from mlpbench.nn import FusedMLP


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "elu", "maxout", "gelu"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_state_dict_round_trip_stock_fused(activation, batchnorm):
    torch.manual_seed(0)
    sizes = [784, 64, 32, 10]
    stock = MLP(sizes, activation, dropout=0.3, fused=False, batchnorm=batchnorm)
    fused = MLP(sizes, activation, dropout=0.3, fused=True, batchnorm=batchnorm)
    assert list(stock.state_dict()) == list(fused.state_dict())
    x = torch.rand(16, 784)
    if batchnorm:  # give the running statistics something to hold
        stock.train()(x)
    fused.load_state_dict(stock.state_dict())
    stock.eval(), fused.eval()
    torch.testing.assert_close(fused(x), stock(x), rtol=1e-5, atol=1e-5)
    stock.load_state_dict(fused.state_dict())


@pytest.mark.parametrize("init", INITS)
def test_inits(init):
    torch.manual_seed(0)
    model = MLP([784, 256, 10], init=init)
    w = model.layers[0].weight
    if init == "zeros":
        assert torch.equal(w, torch.zeros_like(w))
    elif init == "normal":
        assert abs(w.std().item() - 1.0) < 0.02
    elif init == "xavier":  # uniform with bound sqrt(6 / (fan_in + fan_out))
        assert w.abs().max().item() <= (6 / (784 + 256)) ** 0.5
    elif init == "he":
        assert abs(w.std().item() - (2 / 784) ** 0.5) < 0.003
    if init != "default":
        assert torch.equal(model.layers[0].bias, torch.zeros(256))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sizes must be at least two positive ints"):
        MLP([784])
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP([784, 10], "relu6")
    with pytest.raises(ValueError, match="unknown init 'glorot'"):
        MLP([784, 10], init="glorot")


@pytest.mark.parametrize("build", [
    lambda: MLP([6, 5, 3], "tanh", fused="mlp"),
    lambda: FusedMLP([6, 5, 3], "tanh"),
], ids=["MLP", "FusedMLP"])
def test_whole_mlp_reads_a_parametrized_weight_through_its_parametrization(build):
    """The whole-MLP op reads the layers' parameters from their tables, and a
    parametrized weight (torch.nn.utils.parametrize) has none: its value, and
    the gradient to the original, must come through the parametrization."""
    from torch.nn.utils import parametrize

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    torch.manual_seed(0)
    model = build().double()
    parametrize.register_parametrization(model.layers[0], "weight", Double())
    x = torch.randn(4, 6, dtype=torch.float64)
    layers = list(model.layers)
    want = F.linear(torch.tanh(F.linear(x, layers[0].weight, layers[0].bias)), layers[1].weight,
                    layers[1].bias)
    torch.testing.assert_close(model(x), want)
    model(x).sum().backward()
    original = layers[0].parametrizations.weight.original
    expected, = torch.autograd.grad(want.sum(), original)
    torch.testing.assert_close(original.grad, expected)
