"""The fused dropout network keeps at most half the bytes stock keeps for backward."""

import pytest
import torch

from mlpbench.perf.memory import saved_tensor_bytes
from mlpbench.models import MLP

LECTURE_DROPOUT_NET = [784, 256, 256, 256, 10]


def _saved(model, x):
    nbytes, _ = saved_tensor_bytes(lambda: model(x), exclude=[x, *model.parameters()])
    return nbytes


@pytest.mark.parametrize("fused", ["mlp", "layer"])
def test_fused_keeps_at_most_half_of_stock(fused):
    torch.manual_seed(0)
    x = torch.rand(100, 784)
    stock = MLP(LECTURE_DROPOUT_NET, "relu", dropout=0.3, fused=False).train()
    model = MLP(LECTURE_DROPOUT_NET, "relu", dropout=0.3, fused=fused).train()
    stock_bytes, fused_bytes = _saved(stock, x), _saved(model, x)
    # Stock: per hidden layer the ReLU output, the dropout mask (float32 on the
    # CPU) and the dropout output the next Linear keeps; fused: the output
    # only, and the 8-byte dropout seed (one per forward, kept by every layer's
    # node per layer, once by the whole-MLP op's).
    hidden = 3 * 100 * 256
    assert stock_bytes == hidden * (4 + 4 + 4)
    assert fused_bytes == hidden * 4 + 8
    assert fused_bytes <= 0.5 * stock_bytes


def test_measure_leaves_out_excluded_storages():
    w = torch.randn(5, 5, requires_grad=True)
    x = torch.randn(5, 5)
    nbytes, _ = saved_tensor_bytes(lambda: (x @ w).relu(), exclude=[w, x])
    assert nbytes == 5 * 5 * 4  # the relu output only
