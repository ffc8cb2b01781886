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

__all__ = ["INITS", "MLP", "stock_activation_module"]

INITS = ("default", "zeros", "normal", "xavier", "xavier_normal", "he", "he_fan_out")


def stock_activation_module(name: str, *, negative_slope=0.01, alpha=1.0,
                            approximate="none") -> nn.Module:
    """The stock nn module of an elementwise activation."""
    modules = {
        "identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(negative_slope), "elu": lambda: nn.ELU(alpha),
        "gelu": lambda: nn.GELU(approximate), "silu": nn.SiLU,
    }
    if name not in modules:
        raise ValueError(f"no stock module for activation {name!r}; expected one of "
                         f"{', '.join(map(repr, modules))}")
    return modules[name]()


class _StockMaxout(nn.Module):
    """The max over each unit's `pieces` consecutive columns (FusedLinear's layout)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, h):
        return h.unflatten(-1, (h.shape[-1] // self.pieces, self.pieces)).amax(-1)


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
        if activation not in ops.ACTIVATIONS or activation == "step":
            raise ValueError(f"MLP: activation must be one of "
                             f"{', '.join(repr(a) for a in ops.ACTIVATIONS if a != 'step')}, "
                             f"got {activation!r}")
        ops._dropout_args(dropout, False, None, 0, "MLP")  # validates p
        self.sizes, self.activation, self.dropout = sizes, activation, float(dropout)
        self.fused, self.batchnorm = fused, batchnorm
        n_hidden = len(sizes) - 2
        k = pieces if activation == "maxout" else 1
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
            self.acts = nn.ModuleList(
                _StockMaxout(k) if activation == "maxout"
                else stock_activation_module(activation, **act_kwargs) for _ in range(n_hidden))
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
