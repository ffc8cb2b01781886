"""cross_entropy[...]: the lecture's loss (ten classes), stock F.cross_entropy
against mlpbench.ops.cross_entropy, forward and forward+backward, at the
lecture network's batches. The fused row times the stock one interleaved
with itself (conftest.measure)."""

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, smoke
from mlpbench import ops

CLASSES = 10


@pytest.mark.parametrize("row", ["stock", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_cross_entropy(measure, row, mode, batch, device):
    torch.manual_seed(0)
    n = smoke(batch, 8)
    logits = torch.randn(n, CLASSES, device=device).requires_grad_(mode == "fwdbwd")
    target = torch.randint(0, CLASSES, (n,), device=device)
    losses = {"stock": lambda: F.cross_entropy(logits, target),
              "fused": lambda: ops.cross_entropy(logits, target)}
    if mode == "fwd":
        calls = losses
    else:
        calls = {r: (lambda f=f: torch.autograd.grad(f(), logits)) for r, f in losses.items()}
    beside = {"stock": calls["stock"]} if row == "fused" else None
    with torch.set_grad_enabled(mode == "fwdbwd"):
        measure(f"cross_entropy[batch {batch} x {CLASSES} classes, {mode}]", row, calls[row],
                device, beside=beside)
