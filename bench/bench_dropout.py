"""dropout[...]: stock F.dropout against ours, and the fused Linear+ReLU+dropout
against the stock three-module block; the memory each keeps for backward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import DEVICES, smoke
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.perf.memory import saved_tensor_bytes
from mlpbench.models import MLP

P = 0.3


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(100, 256), (4096, 1024)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_dropout(measure, row, mode, dtype, shape, device):
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    size = smoke(shape, (4, 16))
    x = torch.randn(size, device=device).to(dt).requires_grad_(mode == "fwdbwd")
    g = torch.randn(size, device=device).to(dt)
    forwards = {"stock": lambda: F.dropout(x, P), "fused": lambda: ops.dropout(x, P)}
    if mode == "fwd":
        calls = forwards
    else:
        calls = {r: (lambda f=f: torch.autograd.grad(f(), x, g)) for r, f in forwards.items()}
    # The fused row times the stock one interleaved with itself (conftest.measure).
    beside = {"stock": calls["stock"]} if row == "fused" else None
    with torch.set_grad_enabled(mode == "fwdbwd"):
        suffix = ", bf16" if dtype == "bf16" else ""
        measure(f"dropout[{shape[0]}x{shape[1]}, p {P}, {mode}{suffix}]", row, calls[row], device,
                beside=beside)


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
def test_linear_relu_dropout_block(measure, row, batch, device):
    """784 -> 256, ReLU, dropout 0.3, forward+backward, training mode."""
    torch.manual_seed(0)
    blocks = {"stock": nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(P)).to(device),
              "fused": mnn.FusedLinear(784, 256, "relu", dropout=P).to(device)}
    x = torch.randn(smoke(batch, 8), 784, device=device)
    g = torch.randn(smoke(batch, 8), 256, device=device)
    calls = {r: (lambda m=m: torch.autograd.grad(m(x), tuple(m.parameters()), g))
             for r, m in blocks.items()}
    beside = {"stock": calls["stock"]} if row == "fused" else None
    measure(f"dropout[Linear+ReLU+dropout 784x256, batch {batch}, fwdbwd]", row, calls[row],
            device, beside=beside)


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
