"""mlp_step[...]: one training step (forward, CrossEntropy, backward, Adam) of
the lecture's dropout network, stock, torch.compile of stock, and fused."""

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, skip_unless_compiled
from mlpbench.models import MLP

SIZES = [784, 256, 256, 256, 10]


def _step(row, device, x, y):
    """One training step of a fresh lecture network, as the row runs it."""
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=0.3, fused=row == "fused").to(device).train()
    forward = torch.compile(model, dynamic=False) if row == "compile" else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()

    return step


@pytest.mark.parametrize("row", ["stock", "compile", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
def test_mlp_step(measure, row, batch, device):
    if row == "compile":
        skip_unless_compiled("relu")
    x = torch.rand(batch, 784, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    # The fused row times the stock one interleaved with itself (conftest.measure).
    beside = {"stock": _step("stock", device, x, y)} if row == "fused" else None
    measure(f"mlp_step[784-256-256-256-10 relu dropout 0.3, batch {batch}]", row,
            _step(row, device, x, y), device, beside=beside)
