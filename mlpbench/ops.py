"""The functional ops: thin Python wrappers over torch.ops.mlpbench.*.

The kernels, their autograd and all argument checks are in C++ (csrc/); this
module draws dropout seeds and registers the fake (shape-only) kernels that
torch.compile traces with.
"""

from __future__ import annotations

import contextlib
import math

import torch

from . import _C

__all__ = ["ACTIVATIONS", "activation", "debug_poison", "dropout", "linear_act", "philox4x32"]

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu",
               "maxout", "step")
# linear_act's aux output: the pre-activation for these, which backward needs.
_FROM_INPUT = ("gelu", "silu")

_U64 = 1 << 64


def philox4x32(counter, key):
    """Philox4x32-10 of a 4-word counter and a 2-word key (32-bit words as ints)."""
    return _C.philox4x32(tuple(counter), tuple(key))


@contextlib.contextmanager
def debug_poison():
    """Within this block every kernel output is filled with NaN before the
    kernel runs, so that any element a kernel fails to write shows up."""
    old = _C.debug_poison()
    _C.set_debug_poison(True)
    try:
        yield
    finally:
        _C.set_debug_poison(old)


def _as_int64(value, name):
    """A 64-bit seed or offset given as a Python int in [0, 2**64), as the op's int64."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__}")
    if not 0 <= value < _U64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value - _U64 if value >= 1 << 63 else value


def draw_seed() -> int:
    """A fresh 63-bit seed from torch's default CPU generator (torch.manual_seed)."""
    return _C.draw_seed()


def _dropout_args(p, training, seed, offset, op):
    """(p, seed, offset) as the op takes them; p = 0 when dropout is off."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{op}: dropout probability must be a float in [0, 1], got "
                        f"{type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:  # also NaN
        raise ValueError(f"{op}: dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return 0.0, 0, 0
    return (p, _as_int64(draw_seed() if seed is None else seed, "seed"),
            _as_int64(offset, "offset"))


def _entry(op):
    """The callable for op: _C's direct entry point (the same dispatcher call
    without torch.ops' Python-side boxing, ~5 us less per call), or under
    torch.compile the torch.ops overload, which is what its graphs record."""
    if torch.compiler.is_compiling():
        return getattr(torch.ops.mlpbench, op).default
    return getattr(_C, op)


def linear_act(x, weight, bias=None, activation="relu", *, negative_slope=0.01, alpha=1.0,
               approximate="none", pieces=2, dropout_p=0.0, training=True, seed=None,
               offset=0):
    """y = dropout(act(x @ weight.T + bias)) in one fused op.

    x is (..., in_features), weight (out_rows, in_features), bias (out_rows,)
    or None. For maxout, out_rows = out_features * pieces and unit j's pieces
    are rows j*pieces .. j*pieces+pieces-1 (stock equivalent:
    F.linear(x, w, b).unflatten(-1, (out_features, pieces)).amax(-1)).
    Dropout (inverted: kept values scaled by 1/(1-p)) applies when training
    and dropout_p > 0; its mask is that of `dropout` on a tensor of y's shape
    for the same seed and offset, and is regenerated in backward.
    """
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, "linear_act")
    y, _ = _entry("linear_act")(x, weight, bias, activation, float(negative_slope), float(alpha),
                                approximate, int(pieces), p, seed, offset)
    return y


def activation(x, name, *, negative_slope=0.01, alpha=1.0, approximate="none"):
    """The elementwise activation `name` (any of ACTIVATIONS but maxout)."""
    return _entry("activation")(x, name, float(negative_slope), float(alpha), approximate)


def dropout(x, p, training=True, seed=None, offset=0):
    """Inverted dropout that stores no mask.

    Element i (flat, row-major) is kept when the uniform drawn for
    (seed, offset, i) is >= p (see csrc/philox.h); kept values become
    x / (1 - p). p = 0 or training=False returns x itself; p = 1 returns
    zeros. seed=None draws one from torch's default generator.
    """
    p, seed, offset = _dropout_args(p, training, seed, offset, "dropout")
    if p == 0.0:
        return x
    return _entry("dropout")(x, p, seed, offset)


# Autograd is registered in C++ (csrc/autograd.cpp), for every backend.


# --- fake kernels (shapes only) for torch.compile --------------------------

@torch.library.register_fake("mlpbench::linear_act")
def _linear_act_fake(x, weight, bias, act, slope, alpha, approx, pieces, p, seed, offset):
    out_cols = weight.shape[0] // pieces if act == "maxout" else weight.shape[0]
    y = x.new_empty((*x.shape[:-1], out_cols))
    n = math.prod(x.shape[:-1])
    if act in _FROM_INPUT:
        aux = x.new_empty((n, out_cols))
    elif act == "maxout":
        aux = x.new_empty((n, out_cols), dtype=torch.uint8)
    else:
        aux = x.new_empty((0,))
    return y, aux


@torch.library.register_fake("mlpbench::linear_act_backward")
def _linear_act_backward_fake(grad_y, x, weight, saved, act, slope, alpha, approx, pieces, p,
                              seed, offset, output_mask):
    empty = x.new_empty((0,))
    return (x.new_empty(x.shape) if output_mask[0] else empty,
            weight.new_empty(weight.shape) if output_mask[1] else empty,
            weight.new_empty((weight.shape[0],)) if output_mask[2] else empty)


@torch.library.register_fake("mlpbench::activation")
def _activation_fake(x, name, slope, alpha, approx):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("mlpbench::activation_backward")
def _activation_backward_fake(grad_y, saved, name, slope, alpha, approx):
    return torch.empty_like(grad_y, memory_format=torch.contiguous_format)


@torch.library.register_fake("mlpbench::dropout")
def _dropout_fake(x, p, seed, offset):
    return torch.empty_like(x, memory_format=torch.contiguous_format)
