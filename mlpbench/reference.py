"""The stock PyTorch compositions that each fused op must match.

Used by the tests (equivalence), the benchmarks (the stock rows) and the stock
models. STOCK_ACTIVATIONS has one entry per elementwise row of the activation
table (mlpbench.ops.ACTIVATIONS); a test checks that they agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["STOCK_ACTIVATIONS", "stock_activation", "stock_linear_act", "stock_maxout"]

# name -> f(t, negative_slope, alpha, approximate)
STOCK_ACTIVATIONS = {
    "identity": lambda t, slope, alpha, approximate: t,
    "sigmoid": lambda t, slope, alpha, approximate: torch.sigmoid(t),
    "tanh": lambda t, slope, alpha, approximate: torch.tanh(t),
    "relu": lambda t, slope, alpha, approximate: F.relu(t),
    "leaky_relu": lambda t, slope, alpha, approximate: F.leaky_relu(t, slope),
    "elu": lambda t, slope, alpha, approximate: F.elu(t, alpha),
    "gelu": lambda t, slope, alpha, approximate: F.gelu(t, approximate=approximate),
    "silu": lambda t, slope, alpha, approximate: F.silu(t),
    "step": lambda t, slope, alpha, approximate: torch.heaviside(t, torch.zeros_like(t)),
}


def stock_activation(t, name, *, negative_slope=0.01, alpha=1.0, approximate="none"):
    """F.<name>(t) for the elementwise activations of mlpbench.ops.ACTIVATIONS."""
    if name not in STOCK_ACTIVATIONS:
        raise ValueError(f"no stock elementwise activation {name!r}")
    return STOCK_ACTIVATIONS[name](t, negative_slope, alpha, approximate)


def stock_maxout(pre, pieces):
    """The max over each unit's `pieces` consecutive columns (linear_act's layout).
    Ties: amax would split the gradient evenly between equal pieces; torch.max
    (dim) gives it all to the first, as linear_act does. A NaN piece wins."""
    return pre.unflatten(-1, (pre.shape[-1] // pieces, pieces)).max(-1).values


def stock_linear_act(x, weight, bias, name, *, pieces=2, **act_kwargs):
    """F.linear then the activation; maxout takes the max over each unit's pieces."""
    pre = F.linear(x, weight, bias)
    if name == "maxout":
        return stock_maxout(pre, pieces)
    return stock_activation(pre, name, **act_kwargs)
