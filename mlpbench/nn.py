"""Drop-in modules built on the fused ops."""

from __future__ import annotations

import torch
from torch import nn

from . import ops

__all__ = ["FusedDropout", "FusedLinear"]


class FusedLinear(nn.Module):
    """nn.Linear followed by an activation (and optionally dropout), in one op.

    Parameters have nn.Linear's names, shapes and initialisation, so a
    state_dict moves both ways between this module and a stock nn.Linear
    (with out_features * pieces rows for maxout, whose unit j takes rows
    j*pieces .. j*pieces+pieces-1). Dropout follows .train()/.eval(); each
    training call draws a new seed from torch's default generator, so
    torch.manual_seed makes the sequence of masks reproducible.
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "relu",
                 bias: bool = True, *, dropout: float = 0.0, negative_slope: float = 0.01,
                 alpha: float = 1.0, approximate: str = "none", pieces: int = 2,
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"FusedLinear: {name} must be an int >= 0, got {value!r}")
        # Every argument the op would refuse, refused now rather than at the first forward.
        ops.check_activation(activation, negative_slope=negative_slope, alpha=alpha,
                             approximate=approximate, pieces=pieces, op="FusedLinear")
        dropout = ops.check_probability(dropout, "FusedLinear")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.dropout = dropout
        self.negative_slope = float(negative_slope)
        self.alpha = float(alpha)
        self.approximate = approximate
        self.pieces = int(pieces) if "pieces" in ops.activation_info(activation)["params"] else 1
        rows = out_features * self.pieces
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(rows, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(rows, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's own initialisation, on our parameters.
        nn.Linear.reset_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.linear_act(x, self.weight, self.bias, self.activation,
                              negative_slope=self.negative_slope, alpha=self.alpha,
                              approximate=self.approximate, pieces=self.pieces,
                              dropout_p=self.dropout, training=self.training)

    def extra_repr(self) -> str:
        extra = f", pieces={self.pieces}" if self.activation == "maxout" else ""
        if self.dropout:
            extra += f", dropout={self.dropout}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, activation={self.activation!r}{extra}")


class FusedDropout(nn.Module):
    """Inverted dropout that stores no mask (see mlpbench.ops.dropout)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = ops.check_probability(p, "FusedDropout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
