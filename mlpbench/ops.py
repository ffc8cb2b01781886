"""The functional ops: thin Python wrappers over torch.ops.mlpbench.*.

The kernels, their autograd, their meta (shape) kernels and all argument
checks on tensors are in C++ (csrc/); this module checks the Python scalars
(so that a wrong type is a TypeError naming the argument, not a binding
error), draws dropout seeds, and registers the fake kernel of draw_seed.
"""

from __future__ import annotations

import contextlib
import numbers
import operator

import torch

from . import _C

__all__ = ["ACTIVATIONS", "activation", "activation_info", "check_activation",
           "check_probability", "debug_poison", "draw_seed", "dropout", "linear_act", "mlp",
           "philox4x32"]

# The activation table (csrc/activations.h), one dict per name: "name",
# "params", "saves" (what backward keeps), "differentiable", "elementwise",
# "forward_cost" and "backward_cost" ("exp" or "cheap").
_TABLE = {row["name"]: row for row in _C.activations()}
ACTIVATIONS = tuple(_TABLE)

_U64 = 1 << 64


def activation_info(name: str) -> dict:
    """The activation table's row for `name` (a copy)."""
    if name not in _TABLE:
        raise ValueError(f"unknown activation {name!r}; expected one of "
                         f"{', '.join(map(repr, ACTIVATIONS))}")
    return dict(_TABLE[name])


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


def _real(value, name, op):
    """A float from a Python, numpy or 0-d tensor real number (not a bool or a string)."""
    if type(value) is float:  # the common case first: these run on every call
        return value
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point():
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def _integer(value, name, op):
    """An int from a Python, numpy or 0-d tensor integer (not a bool, a float or a string)."""
    if type(value) is int:
        return value
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    return operator.index(value)


def _string(value, name, op):
    if type(value) is str and "\0" not in value:
        return value
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a str, got {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{op}: {name} must not contain a NUL character, got {value!r}")
    return value


def _tensor(value, name, op, optional=False):
    if isinstance(value, torch.Tensor) or (optional and value is None):
        return value
    expected = "a torch.Tensor" + (" or None" if optional else "")
    raise TypeError(f"{op}: {name} must be {expected}, got {type(value).__name__}")


def _act_args(op, name, negative_slope, alpha, approximate, pieces):
    """The activation's arguments, type-checked, as the ops take them."""
    return (_string(name, "activation", op), _real(negative_slope, "negative_slope", op),
            _real(alpha, "alpha", op), _string(approximate, "approximate", op),
            _integer(pieces, "pieces", op))


def check_activation(name, *, negative_slope=0.01, alpha=1.0, approximate="none", pieces=2,
                     op="activation"):
    """Raise TypeError/ValueError, naming `op` and the argument, for activation
    arguments the ops would refuse; for modules to check at construction."""
    _C.check_activation(op, *_act_args(op, name, negative_slope, alpha, approximate, pieces))


def check_probability(p, op="dropout") -> float:
    """p as a float, after checking it is a real number in [0, 1] (a Python,
    numpy or 0-d tensor number, as stock dropout takes)."""
    if type(p) is float and 0.0 <= p <= 1.0:
        return p
    if isinstance(p, bool) or not (isinstance(p, numbers.Real) or (
            isinstance(p, torch.Tensor) and p.dim() == 0 and p.dtype != torch.bool)):
        raise TypeError(f"{op}: dropout probability must be a float in [0, 1], got "
                        f"{type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:  # also NaN
        raise ValueError(f"{op}: dropout probability must be in [0, 1], got {p}")
    return p


def _as_int64(value, name):
    """A 64-bit seed or offset given as an int in [0, 2**64), as the op's int64."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(value).__name__}")
    value = operator.index(value)
    if not 0 <= value < _U64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value - _U64 if value >= 1 << 63 else value


def draw_seed() -> torch.Tensor:
    """A fresh 63-bit dropout seed from torch's default CPU generator (so
    torch.manual_seed reproduces it), as a one-element int64 tensor. An op:
    torch.compile, torch.export and torch.jit.trace record the draw."""
    if torch.compiler.is_compiling():
        return torch.ops.mlpbench.draw_seed.default()
    return _C.draw_seed()


def _seed(seed):
    """The op's seed tensor from None (draw one), an int or a one-element int64 tensor."""
    if seed is None:
        return draw_seed()
    if isinstance(seed, torch.Tensor):
        return seed  # the op checks it
    return torch.tensor(_as_int64(seed, "seed"), dtype=torch.int64)


def _dropout_args(p, training, seed, offset, op):
    """(p, seed, offset) as the op takes them; p = 0 and no seed when dropout is off."""
    p = check_probability(p, op)
    if not training or p == 0.0:
        return 0.0, None, 0
    _check_vmap_randomness(seed, op)
    return p, _seed(seed), _as_int64(offset, "offset")


def _check_vmap_randomness(seed, op):
    """Under torch.vmap, a drawn seed is randomness: refuse it in vmap's
    default randomness='error' mode, as stock dropout does."""
    level = torch._C._functorch.maybe_current_level()
    if seed is not None or level is None:
        return
    from torch._functorch.pyfunctorch import retrieve_current_functorch_interpreter

    interpreter = retrieve_current_functorch_interpreter()
    if interpreter.key() == torch._C._functorch.TransformType.Vmap and \
            interpreter.randomness() == "error":
        raise RuntimeError(
            f"vmap: called random operation ({op} with a drawn seed) while in randomness "
            "error mode. Please either use the 'same' or 'different' randomness flags on "
            "vmap, pass an explicit seed=, or perform the randomness operation out of vmap")


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
    op = "linear_act"
    tensors = (_tensor(x, "x", op), _tensor(weight, "weight", op),
               _tensor(bias, "bias", op, optional=True))
    args = _act_args(op, activation, negative_slope, alpha, approximate, pieces)
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, op)
    y, _ = _entry(op)(*tensors, *args, p, seed, offset)
    return y


def _tensor_list(values, name, op, optional=False):
    if optional and values is None:
        return []
    if not isinstance(values, (list, tuple)):
        expected = "a list of tensors" + (" or None" if optional else "")
        raise TypeError(f"{op}: {name} must be {expected}, got {type(values).__name__}")
    for i, value in enumerate(values):
        _tensor(value, f"{name}[{i}]", op)
    return list(values)


def mlp(x, weights, biases=None, activation="relu", *, negative_slope=0.01, alpha=1.0,
        approximate="none", pieces=2, output_activation="identity", dropout_p=0.0,
        training=True, seed=None, offset=0):
    """A whole MLP in one op: layer l computes linear_act of weights[l] and
    biases[l] (biases None: no biases) with `activation` and dropout, the last
    layer with `output_activation` and no dropout; one autograd node for all.

    Layer l's dropout mask is linear_act's for (seed, offset + l): one seed per
    call (drawn when None), the layers at consecutive offsets.
    """
    op = "mlp"
    x = _tensor(x, "x", op)
    weights = _tensor_list(weights, "weights", op)
    biases = _tensor_list(biases, "biases", op, optional=True)
    args = _act_args(op, activation, negative_slope, alpha, approximate, pieces)
    output_activation = _string(output_activation, "output_activation", op)
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, op)
    y, _, _ = _entry(op)(x, weights, biases, *args, output_activation, p, seed, offset)
    return y


def activation(x, name, *, negative_slope=0.01, alpha=1.0, approximate="none"):
    """The elementwise activation `name` (any of ACTIVATIONS but maxout)."""
    _tensor(x, "x", "activation")
    name, slope, alpha, approximate, _ = _act_args("activation", name, negative_slope, alpha,
                                                   approximate, 1)
    return _entry("activation")(x, name, slope, alpha, approximate)


def dropout(x, p, training=True, seed=None, offset=0):
    """Inverted dropout that stores no mask.

    Element i (flat, row-major) is kept when the uniform drawn for
    (seed, offset, i) is >= p (see csrc/philox.h); kept values become
    x / (1 - p), dropped ones x * 0 (so NaN and inf stay NaN, as stock's).
    p = 0 or training=False returns x itself; p = 1 returns x * 0.
    seed=None draws one from torch's default generator.
    """
    _tensor(x, "x", "dropout")
    p, seed, offset = _dropout_args(p, training, seed, offset, "dropout")
    if p == 0.0:
        return x
    return _entry("dropout")(x, p, seed, offset)


# --- torch.vmap ----------------------------------------------------------------
# Batch rules, so that vmap runs one call over the stacked batch rather than a
# loop over samples. Dropout follows vmap's randomness=: 'different' gives
# every sample its own mask (one mask over the stacked batch), 'same' one mask
# for all; with an explicit seed (the only way to reach a rule in the default
# 'error' mode, which _check_vmap_randomness enforces) a sample's mask is the
# one dropout(sample, seed) draws alone, the same for all.

def _check_unbatched_seed(in_dims, index, op):
    if in_dims[index] is not None:
        raise ValueError(f"{op}: under vmap the seed must be one tensor for the whole batch, "
                         "not batched")


def _same_mask(y, p, seed, offset):
    """y (batch first) through one sample's dropout mask, for every sample."""
    keep = torch.ops.mlpbench.dropout.default(y.new_ones(y.shape[1:]), p, seed, offset) != 0
    return torch.where(keep, y / (1.0 - p), y * 0.0)


@torch.library.register_vmap("mlpbench::dropout")
def _dropout_vmap(info, in_dims, x, p, seed, offset):
    _check_unbatched_seed(in_dims, 2, "dropout")
    x = x.movedim(in_dims[0], 0)
    if info.randomness == "different":
        return torch.ops.mlpbench.dropout.default(x, p, seed, offset), 0
    return _same_mask(x, p, seed, offset), 0


@torch.library.register_vmap("mlpbench::activation")
def _activation_vmap(info, in_dims, x, *args):
    return torch.ops.mlpbench.activation.default(x, *args), in_dims[0]


@torch.library.register_vmap("mlpbench::linear_act")
def _linear_act_vmap(info, in_dims, x, weight, bias, *args):
    *act, p, seed, offset = args
    _check_unbatched_seed(in_dims, 9, "linear_act")
    op = torch.ops.mlpbench.linear_act.default
    n = info.batch_size
    if in_dims[1] is not None or in_dims[2] is not None:
        # Batched parameters: one call per sample ('different': offsets apart).
        def sample(t, dim, i):
            return t if dim is None or t is None else t.select(dim, i)
        outs = [op(sample(x, in_dims[0], i), sample(weight, in_dims[1], i),
                   sample(bias, in_dims[2], i), *act, p, seed,
                   offset + i if info.randomness == "different" else offset) for i in range(n)]
        return (torch.stack([y for y, _ in outs]), torch.stack([a for _, a in outs])), (0, 0)
    x = x.movedim(in_dims[0], 0)
    if info.randomness == "different" or p == 0.0:
        y, aux = op(x, weight, bias, *act, p, seed, offset)
    else:
        y, aux = op(x, weight, bias, *act, 0.0, None, 0)
        y = _same_mask(y, p, seed, offset)
    # aux is (rows, units) over every leading dimension of x, batch included.
    return (y, aux.reshape(n, -1, aux.shape[-1]) if aux.dim() == 2 else aux), (0, 0 if aux.dim() == 2 else None)


@torch.library.register_vmap("mlpbench::mlp")
def _mlp_vmap(info, in_dims, x, weights, biases, *args):
    *act, p, seed, offset = args
    _check_unbatched_seed(in_dims, 10, "mlp")
    op = torch.ops.mlpbench.mlp.default
    n = info.batch_size
    unbatched_params = all(d is None for d in (*(in_dims[1] or ()), *(in_dims[2] or ())))
    if unbatched_params and (info.randomness == "different" or p == 0.0):
        y, hidden, aux = op(x.movedim(in_dims[0], 0), weights, biases, *act, p, seed, offset)
    else:
        # Batched parameters, or one mask for every sample: a call per sample
        # (with 'different', each sample's layers at offsets of their own).
        def sample(t, dim, i):
            return t if dim is None else t.select(dim, i)
        calls = []
        for i in range(n):
            xi = sample(x, in_dims[0], i)
            wi = [sample(w, d, i) for w, d in zip(weights, in_dims[1] or [None] * len(weights))]
            bi = [sample(b, d, i) for b, d in zip(biases, in_dims[2] or [None] * len(biases))]
            step = len(weights) * i if info.randomness == "different" else 0
            calls.append(op(xi, wi, bi, *act, p, seed, offset + step))
        y = torch.stack([c[0] for c in calls])
        hidden = [torch.stack(h) for h in zip(*(c[1] for c in calls))]
        aux = [torch.stack(a) for a in zip(*(c[2] for c in calls))]
        return (y, hidden, [a if a.dim() > 1 else a[0] for a in aux]), (
            0, [0] * len(hidden), [0 if a.dim() > 1 else None for a in aux])
    aux_dims = [0 if a.dim() == 2 else None for a in aux]
    aux = [a.reshape(n, -1, a.shape[-1]) if a.dim() == 2 else a for a in aux]
    return (y, hidden, aux), (0, [0] * len(hidden), aux_dims)


# Autograd and the meta kernels are registered in C++ (csrc/autograd.cpp,
# csrc/meta.cpp), for every backend. draw_seed has no tensor argument, so
# fake tensors cannot route it to a meta kernel: its fake kernel is here.
@torch.library.register_fake("mlpbench::draw_seed")
def _draw_seed_fake():
    return torch.empty((), dtype=torch.int64)
