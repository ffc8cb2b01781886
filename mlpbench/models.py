"""The lecture's MLPs, built from stock layers or from the fused ones.

Both versions hold the same parameters under the same names (layers.i.weight,
layers.i.bias, norms.i.*), so a state_dict moves between them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from . import ops
from .nn import INITS, FusedDropout, FusedLinear, init_linear_, mlp_forward
from .reference import stock_activation, stock_maxout

__all__ = ["FUSED", "INITS", "MLP", "StockActivation", "init_linear_"]

# models.MLP's fused=: the whole network as one op, one op per layer, the
# fastest that fits (True), or stock PyTorch modules (False).
FUSED = ("mlp", "layer", True, False)


class StockActivation(nn.Module):
    """A stock activation as a module: reference.stock_activation, or for maxout
    the max over each unit's pieces."""

    def __init__(self, name: str, *, pieces: int = ops.DEFAULTS["pieces"], **act_kwargs):
        super().__init__()
        self.name, self.pieces, self.kwargs = name, pieces, act_kwargs

    def forward(self, h):
        if self.name == "maxout":
            return stock_maxout(h, self.pieces)
        return stock_activation(h, self.name, **self.kwargs)

    def extra_repr(self) -> str:
        return repr(self.name) + (f", pieces={self.pieces}" if self.name == "maxout" else "")


class MLP(nn.Module):
    """sizes like [784, 256, 256, 10]: Linear layers with `activation` (and
    dropout, and batch norm in the lecture's Linear-act-BN order) between them;
    the last layer has no activation (logits).

    fused: "mlp" runs the whole network as one op (mlpbench.ops.mlp), "layer"
    one fused op per layer, True the fastest that fits ("mlp" unless batch norm
    sits between the layers, then "layer"), False stock nn.Linear and friends.
    Every variant holds the same parameters under the same names, so their
    state dicts load into each other; "mlp" and "layer" draw the same dropout
    masks for the same torch.manual_seed (one seed per forward, layer i at
    offset i).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 init: str = "xavier", fused: bool | str = True, batchnorm: bool = False,
                 pieces: int = ops.DEFAULTS["pieces"], **act_kwargs):
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                 for s in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive ints, got {sizes!r}")
        trainable = [a for a in ops.ACTIVATIONS if ops.activation_info(a)["differentiable"]]
        if activation not in trainable:
            raise ValueError(f"MLP: activation must be one of "
                             f"{', '.join(map(repr, trainable))}, got {activation!r}")
        if not any(fused is f or (isinstance(f, str) and fused == f) for f in FUSED):
            raise ValueError(f"MLP: fused must be one of {', '.join(map(repr, FUSED))}, got "
                             f"{fused!r}")
        if fused == "mlp" and batchnorm:
            raise ValueError("MLP: fused='mlp' runs the whole network as one op, with nothing "
                             "between the layers; with batchnorm use fused='layer' (or True)")
        ops.activation_spec(activation, pieces=pieces, op="MLP", **act_kwargs)
        dropout = ops.check_probability(dropout, "MLP")
        self.sizes, self.activation, self.dropout = sizes, activation, dropout
        self.batchnorm = batchnorm
        self.fused = ("layer" if batchnorm else "mlp") if fused is True else fused
        n_hidden = len(sizes) - 2
        k = pieces if "pieces" in ops.activation_info(activation)["params"] else 1
        self.layers = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < n_hidden
            if self.fused:
                # Dropout is part of the layer's op unless batch norm sits between.
                layer = FusedLinear(n_in, n_out, activation if hidden else "identity",
                                    pieces=k, dropout=dropout if hidden and not batchnorm else 0.0,
                                    **act_kwargs)
            else:
                layer = nn.Linear(n_in, n_out * (k if hidden else 1))
            init_linear_(layer.weight, layer.bias, init)
            self.layers.append(layer)
        self.norms = nn.ModuleList(nn.BatchNorm1d(n) for n in sizes[1:-1]) if batchnorm else None
        self.acts = self.drops = None
        if not self.fused:
            self.acts = nn.ModuleList(StockActivation(activation, pieces=k, **act_kwargs)
                                      for _ in range(n_hidden))
            if dropout:
                self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(n_hidden))
        elif batchnorm and dropout:
            self.drops = nn.ModuleList(FusedDropout(dropout) for _ in range(n_hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused == "mlp":
            return mlp_forward(self.layers, x, dropout=self.dropout, training=self.training)
        # One seed per forward, layer i at offset i: the whole-MLP op's masks.
        seed = (ops.draw_seed(x.device) if self.fused and self.training and self.dropout
                and not self.batchnorm else None)
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, seed=seed, offset=i) if self.fused else layer(h)
            if i == last:
                break
            if self.acts is not None:
                h = self.acts[i](h)
            if self.norms is not None:
                h = self.norms[i](h)
            if self.drops is not None:
                h = self.drops[i](h)
        return h

    def whole_mlp_layers(self):
        """The layers forward runs as one whole-MLP op (fused="mlp"), else None
        (nn.cross_entropy_backward)."""
        return self.layers if self.fused == "mlp" else None

    def extra_repr(self) -> str:
        return f"fused={self.fused!r}"
