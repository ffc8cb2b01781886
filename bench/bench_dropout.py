"""dropout[...]: stock F.dropout against ours, and the fused Linear+ReLU+dropout
against the stock three-module block; the memory each keeps for backward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import DEVICES
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.memory import saved_tensor_bytes
from mlpbench.models import MLP

P = 0.3


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(100, 256), (4096, 1024)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_dropout(measure, row, mode, shape, device):
    x = torch.randn(shape, device=device, requires_grad=mode == "fwdbwd")
    f = (lambda: F.dropout(x, P)) if row == "stock" else (lambda: ops.dropout(x, P))
    group = f"dropout[{shape[0]}x{shape[1]}, p {P}, {mode}]"
    if mode == "fwd":
        with torch.no_grad():
            measure(group, row, f, device)
    else:
        g = torch.randn(shape, device=device)
        measure(group, row, lambda: torch.autograd.grad(f(), x, g), device)


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
def test_linear_relu_dropout_block(measure, row, batch, device):
    """784 -> 256, ReLU, dropout 0.3, forward+backward, training mode."""
    torch.manual_seed(0)
    if row == "stock":
        block = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(P)).to(device)
    else:
        block = mnn.FusedLinear(784, 256, "relu", dropout=P).to(device)
    x = torch.randn(batch, 784, device=device)
    g = torch.randn(batch, 256, device=device)
    params = tuple(block.parameters())
    measure(f"dropout[Linear+ReLU+dropout 784x256, batch {batch}, fwdbwd]", row,
            lambda: torch.autograd.grad(block(x), params, g), device)


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
def test_memory_saved_for_backward(measure, row, device):
    """The lecture's dropout network, batch 100: bytes autograd keeps (extra_info)."""
    torch.manual_seed(0)
    model = MLP([784, 256, 256, 256, 10], "relu", dropout=P, fused=row == "fused").to(device)
    x = torch.rand(100, 784, device=device)
    nbytes, _ = saved_tensor_bytes(lambda: model(x), exclude=[x, *model.parameters()])
    print(f"\n{row}: {nbytes} bytes saved for backward")
    measure("memory[784-256-256-256-10 dropout 0.3, batch 100, forward]", row,
            lambda: model(x), device, saved_bytes=nbytes)
