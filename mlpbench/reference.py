"""The stock PyTorch compositions that each fused op must match.

Used by the tests (equivalence) and the benchmarks (the stock rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["stock_activation", "stock_linear_act"]


def stock_activation(t, name, *, negative_slope=0.01, alpha=1.0, approximate="none"):
    """F.<name>(t) for the elementwise activations of mlpbench.ops.ACTIVATIONS."""
    if name == "identity":
        return t
    if name == "sigmoid":
        return torch.sigmoid(t)
    if name == "tanh":
        return torch.tanh(t)
    if name == "relu":
        return F.relu(t)
    if name == "leaky_relu":
        return F.leaky_relu(t, negative_slope)
    if name == "elu":
        return F.elu(t, alpha)
    if name == "gelu":
        return F.gelu(t, approximate=approximate)
    if name == "silu":
        return F.silu(t)
    if name == "step":
        return torch.heaviside(t, torch.zeros_like(t))
    raise ValueError(f"no stock elementwise activation {name!r}")


def stock_linear_act(x, weight, bias, name, *, pieces=2, **act_kwargs):
    """F.linear then the activation; maxout takes the max over each unit's pieces."""
    pre = F.linear(x, weight, bias)
    if name == "maxout":
        return pre.unflatten(-1, (weight.shape[0] // pieces, pieces)).amax(-1)
    return stock_activation(pre, name, **act_kwargs)
