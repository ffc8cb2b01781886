"""mlp_step[...]: one training step (forward, CrossEntropy, backward, Adam) of
the lecture's dropout network, stock, torch.compile of stock, and fused."""

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES, skip_unless_compiled
from mlpbench.models import MLP

SIZES = [784, 256, 256, 256, 10]


@pytest.mark.parametrize("row", ["stock", "compile", "fused"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 4096])
def test_mlp_step(measure, row, batch, device):
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=0.3, fused=row == "fused").to(device).train()
    forward = model
    if row == "compile":
        skip_unless_compiled("relu")
        forward = torch.compile(model, dynamic=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(batch, 784, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()

    measure(f"mlp_step[784-256-256-256-10 relu dropout 0.3, batch {batch}]", row, step, device)
