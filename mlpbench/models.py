"""The lecture's MLPs, built from stock layers or from the fused ones.

Both versions hold the same parameters under the same names (layers.i.weight,
layers.i.bias, norms.i.*), so a state_dict moves between them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import ops
from .nn import FusedDropout, FusedLinear
from .reference import stock_activation, stock_maxout

__all__ = ["INITS", "MLP", "StockActivation", "init_linear_"]

INITS = ("default", "zeros", "normal", "xavier", "xavier_normal", "he", "he_fan_out")


class StockActivation(nn.Module):
    """A stock activation as a module: reference.stock_activation, or for maxout
    the max over each unit's pieces."""

    def __init__(self, name: str, *, pieces: int = 2, negative_slope=0.01, alpha=1.0,
                 approximate="none"):
        super().__init__()
        self.name, self.pieces = name, pieces
        self.kwargs = {"negative_slope": negative_slope, "alpha": alpha, "approximate": approximate}

    def forward(self, h):
        if self.name == "maxout":
            return stock_maxout(h, self.pieces)
        return stock_activation(h, self.name, **self.kwargs)

    def extra_repr(self) -> str:
        return repr(self.name) + (f", pieces={self.pieces}" if self.name == "maxout" else "")


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, init: str) -> None:
    """Initialise one layer as the lecture does: weights by `init`, biases zero."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(map(repr, INITS))}")
    if init == "default":  # nn.Linear's own
        return
    with torch.no_grad():
        {
            "zeros": nn.init.zeros_,
            "normal": nn.init.normal_,
            "xavier": nn.init.xavier_uniform_,
            "xavier_normal": nn.init.xavier_normal_,
            "he": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
            "he_fan_out": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
        }[init](weight)
        if bias is not None:
            bias.zero_()


class MLP(nn.Module):
    """sizes like [784, 256, 256, 10]: Linear layers with `activation` (and
    dropout, and batch norm in the lecture's Linear-act-BN order) between them;
    the last layer has no activation (logits)."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 init: str = "xavier", fused: bool = True, batchnorm: bool = False,
                 pieces: int = 2, **act_kwargs):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                 for s in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive ints, got {sizes!r}")
        trainable = [a for a in ops.ACTIVATIONS if ops.activation_info(a)["differentiable"]]
        if activation not in trainable:
            raise ValueError(f"MLP: activation must be one of "
                             f"{', '.join(map(repr, trainable))}, got {activation!r}")
        ops.check_activation(activation, pieces=pieces, op="MLP", **act_kwargs)
        dropout = ops.check_probability(dropout, "MLP")
        self.sizes, self.activation, self.dropout = sizes, activation, dropout
        self.fused, self.batchnorm = fused, batchnorm
        n_hidden = len(sizes) - 2
        k = pieces if "pieces" in ops.activation_info(activation)["params"] else 1
        # Dropout can be fused into the layer only when nothing sits between them.
        fuse_dropout = fused and not batchnorm
        self.layers = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < n_hidden
            if fused:
                layer = FusedLinear(n_in, n_out, activation if hidden else "identity",
                                    pieces=k, dropout=dropout if hidden and fuse_dropout else 0.0,
                                    **act_kwargs)
            else:
                layer = nn.Linear(n_in, n_out * (k if hidden else 1))
            init_linear_(layer.weight, layer.bias, init)
            self.layers.append(layer)
        self.norms = nn.ModuleList(nn.BatchNorm1d(n) for n in sizes[1:-1]) if batchnorm else None
        if fused:
            self.acts = None
            self.drops = ([FusedDropout(dropout) for _ in range(n_hidden)]
                          if dropout and not fuse_dropout else None)
        else:
            self.acts = nn.ModuleList(StockActivation(activation, pieces=k, **act_kwargs)
                                      for _ in range(n_hidden))
            self.drops = [nn.Dropout(dropout) for _ in range(n_hidden)] if dropout else None
        if self.drops is not None:
            self.drops = nn.ModuleList(self.drops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i == last:
                break
            if self.acts is not None:
                h = self.acts[i](h)
            if self.norms is not None:
                h = self.norms[i](h)
            if self.drops is not None:
                h = self.drops[i](h)
        return h
