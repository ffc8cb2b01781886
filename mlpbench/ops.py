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

__all__ = ["ACTIVATIONS", "DEFAULTS", "PARAMS", "activation", "activation_info",
           "activation_spec", "check_probability", "check_scalar_reduction", "cross_entropy",
           "debug_poison", "draw_seed", "dropout", "linear_act", "linear_act_spec", "mlp",
           "mlp_cross_entropy_grads", "mlp_spec", "philox4x32"]

# The activation table (csrc/activations.h), one dict per name: "name",
# "params", "saves" (what backward keeps), "differentiable", "elementwise",
# "forward_cost" and "backward_cost" ("exp" or "cheap").
_TABLE = {row["name"]: row for row in _C.activations()}
ACTIVATIONS = tuple(_TABLE)
# The activations' parameters, from the same table: name -> {"name", "kind"
# ("real", "int" or "choice"), "default"}. The public signatures below take
# their defaults from here.
PARAMS = {p["name"]: p for p in _C.activation_params()}
DEFAULTS = {name: p["default"] for name, p in PARAMS.items()}
_DEFAULT = DEFAULTS

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


# A parameter's type check, by its kind in the table.
_CHECKS = {"real": _real, "int": _integer, "choice": _string}


def _tensor(value, name, op, optional=False):
    if isinstance(value, torch.Tensor) or (optional and value is None):
        return value
    expected = "a torch.Tensor" + (" or None" if optional else "")
    raise TypeError(f"{op}: {name} must be {expected}, got {type(value).__name__}")


_SPECS = {}  # (activation, parameter values) -> the op's activation argument
# Whether each of the values has exactly its parameter's type (float, int,
# str), as one expression compiled from the table: it runs on every call,
# where a loop would cost three times as much. (Exact types: a cached text
# must not serve True for 1 or 2.0 for 2, which the slow path refuses.)
_EXACT_TYPES = tuple({"real": float, "int": int, "choice": str}[p["kind"]] for p in PARAMS.values())
_exact_types = eval("lambda v: " + " and ".join(  # noqa: S307 - a fixed expression
    f"type(v[{i}]) is T[{i}]" for i in range(len(_EXACT_TYPES))), {"T": _EXACT_TYPES})


def _spec(op, activation, values):
    """The ops' activation argument, "name" or "name(param=value, ...)", for
    `activation` with the parameters it takes that differ from their
    defaults; `values` holds every parameter in PARAMS' order (each
    type-checked, those `activation` does not take ignored). The op checks
    the values. Built once per distinct call and cached: the common case is
    a dictionary lookup."""
    try:
        text = _SPECS.get((activation, values))
    except TypeError:  # unhashable: the slow path says what is wrong
        text = None
    if text is not None and _exact_types(values):
        return text
    activation = _string(activation, "activation", op)
    checked = {name: _CHECKS[p["kind"]](value, name, op)
               for (name, p), value in zip(PARAMS.items(), values)}
    row = _TABLE.get(activation)  # an unknown name is the op's to report
    # Parameters at their defaults are left out: "gelu", not "gelu(approximate='none')".
    given = [f"{name}={checked[name]!r}" for name in (row["params"] if row else ())
             if checked[name] != DEFAULTS[name]]
    text = f"{activation}({', '.join(given)})" if given else activation
    if type(activation) is str and _exact_types(values):
        _SPECS[(activation, values)] = text
    return text


def activation_spec(activation, *, negative_slope=_DEFAULT["negative_slope"],
                    alpha=_DEFAULT["alpha"], approximate=_DEFAULT["approximate"],
                    pieces=_DEFAULT["pieces"], op="activation") -> str:
    """The checked activation argument of torch.ops.mlpbench.* for these
    parameters, e.g. "leaky_relu(negative_slope=0.1)"; raises TypeError or
    ValueError, naming `op` and the argument, for what the ops would refuse.
    Modules build theirs once, at construction."""
    text = _spec(op, activation, (negative_slope, alpha, approximate, pieces))
    _C.check_activation(op, text)
    return text


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


def draw_seed(device=None) -> torch.Tensor:
    """A fresh 63-bit dropout seed from torch's default generator of `device`
    (the CPU's by default; torch.manual_seed reproduces both), as a
    one-element int64 tensor on that device. An op: torch.compile,
    torch.export and torch.jit.trace record the draw, and a CUDA graph draws
    anew on every replay."""
    return _call("draw_seed", None if device is None else torch.device(device))


def _seed(seed, device):
    """The op's seed tensor from None (drawn on x's device), an int (a CPU
    tensor) or a one-element int64 tensor."""
    if seed is None:
        return draw_seed(None if device.type == "cpu" else device)
    if isinstance(seed, torch.Tensor):
        return seed  # the op checks it
    return torch.tensor(_as_int64(seed, "seed"), dtype=torch.int64)


def _dropout_args(p, training, seed, offset, op, device):
    """(p, seed, offset) as the op takes them, a drawn seed on `device` (x's);
    p = 0 and no seed when dropout is off."""
    p = check_probability(p, op)
    if not training or p == 0.0:
        return 0.0, None, 0
    _check_vmap_randomness(seed, op)
    return p, _seed(seed, device), _as_int64(offset, "offset")


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


# The direct entry points of _C (the same dispatcher call as torch.ops'
# without its Python-side argument handling, ~5 us less per call).
_ENTRIES = {op: _C.entry(op) for op in ("linear_act", "activation", "dropout", "mlp", "draw_seed",
                                        "cross_entropy", "mlp_backward",
                                        "cross_entropy_backward")}
_is_compiling = torch.compiler.is_compiling


def _call(op, *args):
    """Op `op` on its schema's arguments: through _C's entry point, or under
    torch.compile through the torch.ops overload, which its graphs record."""
    if _is_compiling():
        return getattr(torch.ops.mlpbench, op).default(*args)
    return _ENTRIES[op](*args)


def linear_act(x, weight, bias=None, activation="relu", *,
               negative_slope=_DEFAULT["negative_slope"], alpha=_DEFAULT["alpha"],
               approximate=_DEFAULT["approximate"], pieces=_DEFAULT["pieces"], dropout_p=0.0,
               training=True, seed=None, offset=0):
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
    spec = _spec(op, activation, (negative_slope, alpha, approximate, pieces))
    tensors = (_tensor(x, "x", op), _tensor(weight, "weight", op),
               _tensor(bias, "bias", op, optional=True))
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, op, x.device)
    y, _ = _call(op, *tensors, spec, p, seed, offset)
    return y


def linear_act_spec(x, weight, bias, spec, *, dropout_p=0.0, training=True, seed=None, offset=0,
                    op="linear_act"):
    """linear_act with the activation given as the op's argument (activation_spec())."""
    tensors = (_tensor(x, "x", op), _tensor(weight, "weight", op),
               _tensor(bias, "bias", op, optional=True))
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, op, x.device)
    y, _ = _call("linear_act", *tensors, spec, p, seed, offset)
    return y


def _tensor_list(values, name, op, optional=False):
    if optional and values is None:
        return []
    if not isinstance(values, (list, tuple)):
        expected = "a list of tensors" + (" or None" if optional else "")
        raise TypeError(f"{op}: {name} must be {expected}, got {type(values).__name__}")
    for i, value in enumerate(values):
        if not isinstance(value, torch.Tensor):  # the name formatted only for the error
            _tensor(value, f"{name}[{i}]", op)
    return values if type(values) is list else list(values)


def mlp(x, weights, biases=None, activation="relu", *,
        negative_slope=_DEFAULT["negative_slope"], alpha=_DEFAULT["alpha"],
        approximate=_DEFAULT["approximate"], pieces=_DEFAULT["pieces"],
        output_activation="identity", dropout_p=0.0, training=True, seed=None, offset=0):
    """A whole MLP in one op: layer l computes linear_act of weights[l] and
    biases[l] (biases None: no biases) with `activation` and dropout, the last
    layer with `output_activation` (with the same parameters) and no dropout;
    one autograd node for all.

    Layer l's dropout mask is linear_act's for (seed, offset + l): one seed per
    call (drawn when None), the layers at consecutive offsets.
    """
    op = "mlp"
    params = (negative_slope, alpha, approximate, pieces)
    spec = _spec(op, activation, params)
    output_spec = _spec(op, _string(output_activation, "output_activation", op), params)
    return mlp_spec(x, weights, biases, spec, output_spec, dropout_p=dropout_p, training=training,
                    seed=seed, offset=offset, op=op)


def mlp_spec(x, weights, biases, spec, output_spec, *, dropout_p=0.0, training=True, seed=None,
             offset=0, op="mlp"):
    """mlp with the activations given as the op's arguments (activation_spec())."""
    x = _tensor(x, "x", op)
    weights = _tensor_list(weights, "weights", op)
    biases = _tensor_list(biases, "biases", op, optional=True)
    p, seed, offset = _dropout_args(dropout_p, training, seed, offset, op, x.device)
    y, _, _ = _call("mlp", x, weights, biases, spec, output_spec, p, seed, offset)
    return y


def check_scalar_reduction(reduction, op):
    """A cross-entropy reduction that gives one loss to differentiate."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{op}: reduction must be 'mean' or 'sum' (a scalar loss), got "
                         f"{reduction!r}")


def _training_args(op, x, weights, biases, target, ignore_index, reduction):
    """A training step's tensors and loss arguments, checked: (x, weights,
    biases, target, ignore_index)."""
    check_scalar_reduction(reduction, op)
    return (_tensor(x, "x", op), _tensor_list(weights, "weights", op),
            _tensor_list(biases, "biases", op, optional=True), _tensor(target, "target", op),
            _integer(ignore_index, "ignore_index", op))


def mlp_cross_entropy_grads(x, weights, biases, spec, output_spec, target, *, dropout_p=0.0,
                             training=True, ignore_index=-100, reduction="mean"):
    """(loss, logits, grad_weights, grad_biases) of cross_entropy(mlp_spec(x, ...),
    target), computed by the ops themselves with no autograd graph: the whole
    MLP's forward, the loss and its gradient, every layer's gradients (grad_biases
    [] without biases). The values autograd gives for the same calls, under
    torch.autocast too (x, weights and biases cast as the mlp op's autocast casts
    them, the loss in float32, the gradients cast back); one seed drawn, as
    mlp_spec draws it."""
    op = "mlp_cross_entropy_grads"
    x, weights, biases, target, ignore_index = _training_args(op, x, weights, biases, target,
                                                              ignore_index, reduction)
    p, seed, offset = _dropout_args(dropout_p, training, None, 0, op, x.device)
    device = x.device.type
    args = (spec, output_spec, p, seed, offset, target, ignore_index, reduction)
    autocast_ = _autocast_cast(device)
    if autocast_ is None:
        # Nothing to cast: the calls alone (their no-op casts and contexts
        # cost 4% of a lecture step at batch 100, docs/cpu-tuning.md).
        with torch.no_grad():
            return _mlp_cross_entropy_calls(x, weights, biases, *args)
    # Autocast off for the calls, which get their tensors cast already.
    with torch.no_grad(), torch.autocast(device, enabled=False):
        loss, logits, grad_ws, grad_bs = _mlp_cross_entropy_calls(
            autocast_(x), [autocast_(w) for w in weights], [autocast_(b) for b in biases], *args,
            float_scores=True)
    grad_ws = [g.to(w.dtype) for g, w in zip(grad_ws, weights)]
    grad_bs = [g.to(b.dtype) for g, b in zip(grad_bs, biases)]
    return loss, logits, grad_ws, grad_bs


def _autocast_cast(device):
    """The mlp op's autocast cast of a tensor on `device` (csrc/autocast.cpp),
    as a function, or None outside autocast."""
    if not torch.is_autocast_enabled(device):
        return None
    cast = torch.get_autocast_dtype(device)

    def autocast_(t):
        eligible = t.is_floating_point() and t.dtype != torch.float64
        return t.to(cast) if eligible and t.device.type == device else t

    return autocast_


def mlp_adam_step(x, weights, biases, spec, output_spec, target, adam, *, dropout_p=0.0,
                  training=True, ignore_index=-100, reduction="mean"):
    """mlp_cross_entropy_grads on the CPU with each layer's Adam update made
    inside the backward, as soon as the layer's gradients exist, by ATen's
    fused Adam kernel (csrc/mlp_adam_step.h): `adam` is the optimizer's state
    lists and hyperparameters (nn.cross_entropy_backward reads them from a
    torch.optim.Adam or AdamW). The weights and biases are updated in place;
    returns (loss, logits, grad_weights, grad_biases), the gradients in the
    parameters' dtype."""
    op = "mlp_adam_step"
    x, weights, biases, target, ignore_index = _training_args(op, x, weights, biases, target,
                                                              ignore_index, reduction)
    p = check_probability(dropout_p, op) if training else 0.0
    params = weights + biases
    autocast_ = _autocast_cast(x.device.type)
    if autocast_ is None:
        return _C.mlp_adam_step(x, weights, biases, params, spec, output_spec, p, target,
                                ignore_index, reduction, False, *adam)
    with torch.autocast(x.device.type, enabled=False):  # the tensors come cast
        return _C.mlp_adam_step(autocast_(x), [autocast_(w) for w in weights],
                                [autocast_(b) for b in biases], params, spec, output_spec, p,
                                target, ignore_index, reduction, True, *adam)


def _mlp_cross_entropy_calls(x, weights, biases, spec, output_spec, p, seed, offset, target,
                             ignore_index, reduction, float_scores=False):
    """mlp_cross_entropy_grads' op calls on checked arguments; float_scores:
    the loss in float32 (as cross-entropy's autocast kernel casts)."""
    logits, hidden, aux = _call("mlp", x, weights, biases, spec, output_spec, p, seed, offset)
    upcast = float_scores and logits.dtype != torch.float64
    scores = logits.float() if upcast else logits
    loss, lse = _call("cross_entropy", scores, target, ignore_index, reduction)
    grad_scores = _call("cross_entropy_backward", torch.ones_like(loss), scores, target, lse,
                        ignore_index, reduction)
    _, grad_ws, grad_bs = _call("mlp_backward", grad_scores.to(logits.dtype) if upcast else
                                grad_scores, x, weights, logits, hidden, aux, bool(biases), spec,
                                output_spec, p, seed, offset, False)
    return loss, logits, grad_ws, grad_bs


def activation(x, name, *, negative_slope=_DEFAULT["negative_slope"], alpha=_DEFAULT["alpha"],
               approximate=_DEFAULT["approximate"]):
    """The elementwise activation `name` (any of ACTIVATIONS but maxout)."""
    _tensor(x, "x", "activation")
    spec = _spec("activation", name, (negative_slope, alpha, approximate, DEFAULTS["pieces"]))
    return _call("activation", x, spec)


def dropout(x, p, training=True, seed=None, offset=0):
    """Inverted dropout that stores no mask.

    Element i (flat, row-major) is kept when the uniform drawn for
    (seed, offset, i) is >= p (see csrc/philox.h); kept values become
    x * (1 / (1 - p)) (stock's bits in float32), dropped ones x * 0 (so NaN and
    inf stay NaN, as stock's).
    p = 0 or training=False returns x itself; p = 1 returns x * 0.
    seed=None draws one from torch's default generator.
    """
    _tensor(x, "x", "dropout")
    p, seed, offset = _dropout_args(p, training, seed, offset, "dropout", x.device)
    if p == 0.0:
        return x
    return _call("dropout", x, p, seed, offset)


def cross_entropy(logits, target, *, ignore_index=-100, reduction="mean"):
    """torch.nn.functional.cross_entropy over class indices, in one op with
    its own backward: logits (N, C) or (C,), target (N,) or () of int64 class
    indices, rows whose target is ignore_index left out; reduction "mean"
    (over the rows kept), "sum" or "none". Computed in float32 (float64 for
    float64 logits), float32 under autocast, as stock's. No class weights,
    label smoothing or probability targets: use F.cross_entropy for those.
    """
    op = "cross_entropy"
    loss, _ = _call(op, _tensor(logits, "logits", op), _tensor(target, "target", op),
                    _integer(ignore_index, "ignore_index", op),
                    _string(reduction, "reduction", op))
    return loss


# --- torch.vmap ----------------------------------------------------------------
# Batch rules, so that vmap runs one call over the stacked batch rather than a
# loop over samples. Dropout follows vmap's randomness=: 'different' gives
# every sample its own mask (one mask over the stacked batch), 'same' one mask
# for all (one call per sample with the same seed and offset); with an
# explicit seed (the only way to reach a rule in the default 'error' mode,
# which _check_vmap_randomness enforces) a sample's mask is the one
# dropout(sample, seed) draws alone, the same for all. Arguments are found by
# their names in the op's schema.

def _vmap_rule(op):
    """The batch rule's view of op's arguments: (in_dims and args by name)."""
    names = [a.name for a in getattr(torch.ops.mlpbench, op).default._schema.arguments]

    def named(in_dims, args):
        return dict(zip(names, in_dims)), dict(zip(names, args))
    return named


def _check_unbatched_seed(dims, op):
    if dims["seed"] is not None:
        raise ValueError(f"{op}: under vmap the seed must be one tensor for the whole batch, "
                         "not batched")


def _per_sample(op, info, dims, args, offset_step):
    """op once per sample (unbatched arguments shared), stacked; with
    'different' randomness sample i's dropout at offset + i * offset_step,
    else the same offset for all: every sample gets the mask it would alone."""
    outs = []
    for i in range(info.batch_size):
        call = {}
        for name, value in args.items():
            dim = dims[name]
            if isinstance(value, (list, tuple)):
                call[name] = [v if d is None else v.select(d, i)
                              for v, d in zip(value, dim or [None] * len(value))]
            else:
                call[name] = value if dim is None else value.select(dim, i)
        if info.randomness == "different":
            call["offset"] = args["offset"] + i * offset_step
        outs.append(getattr(torch.ops.mlpbench, op).default(*call.values()))
    return outs


@torch.library.register_vmap("mlpbench::dropout")
def _dropout_vmap(info, in_dims, *args):
    dims, args = _vmap_rule("dropout")(in_dims, args)
    _check_unbatched_seed(dims, "dropout")
    if info.randomness == "different":
        x = args["x"].movedim(dims["x"], 0)
        return torch.ops.mlpbench.dropout.default(x, args["p"], args["seed"], args["offset"]), 0
    return torch.stack(_per_sample("dropout", info, dims, args, 0)), 0


@torch.library.register_vmap("mlpbench::activation")
def _activation_vmap(info, in_dims, x, *args):
    return torch.ops.mlpbench.activation.default(x, *args), in_dims[0]


def _aux_out(aux, batch):
    """aux of a call over the stacked batch: (rows, units) over every leading
    dimension of x, batch included, as (batch, rows, units); empty: unbatched."""
    if aux.dim() == 2:
        return aux.reshape(batch, -1, aux.shape[-1]), 0
    return aux, None


@torch.library.register_vmap("mlpbench::linear_act")
def _linear_act_vmap(info, in_dims, *args):
    dims, args = _vmap_rule("linear_act")(in_dims, args)
    _check_unbatched_seed(dims, "linear_act")
    params_batched = dims["weight"] is not None or dims["bias"] is not None
    if params_batched or (info.randomness == "same" and args["dropout_p"] > 0.0):
        outs = _per_sample("linear_act", info, dims, args, 1)
        return (torch.stack([y for y, _ in outs]), torch.stack([a for _, a in outs])), (0, 0)
    call = dict(args, x=args["x"].movedim(dims["x"], 0))
    y, aux = torch.ops.mlpbench.linear_act.default(*call.values())
    aux, aux_dim = _aux_out(aux, info.batch_size)
    return (y, aux), (0, aux_dim)


@torch.library.register_vmap("mlpbench::mlp")
def _mlp_vmap(info, in_dims, *args):
    dims, args = _vmap_rule("mlp")(in_dims, args)
    _check_unbatched_seed(dims, "mlp")
    params_batched = any(d is not None for d in (*(dims["weights"] or ()), *(dims["biases"] or ())))
    if params_batched or (info.randomness == "same" and args["dropout_p"] > 0.0):
        # Each sample's layers at offsets of their own ('different').
        calls = _per_sample("mlp", info, dims, args, len(args["weights"]))
        y = torch.stack([c[0] for c in calls])
        hidden = [torch.stack(h) for h in zip(*(c[1] for c in calls))]
        aux = [torch.stack(a) for a in zip(*(c[2] for c in calls))]
        return (y, hidden, [a if a.dim() > 1 else a[0] for a in aux]), (
            0, [0] * len(hidden), [0 if a.dim() > 1 else None for a in aux])
    call = dict(args, x=args["x"].movedim(dims["x"], 0))
    y, hidden, aux = torch.ops.mlpbench.mlp.default(*call.values())
    aux, aux_dims = zip(*(_aux_out(a, info.batch_size) for a in aux)) if aux else ((), ())
    return (y, hidden, list(aux)), (0, [0] * len(hidden), list(aux_dims))


@torch.library.register_vmap("mlpbench::cross_entropy")
def _cross_entropy_vmap(info, in_dims, logits, target, ignore_index, reduction):
    """One call over every sample's rows (reduction none), then each sample's
    own mean or sum."""
    logits_dim, target_dim = in_dims[:2]
    batch = info.batch_size
    logits = (logits.movedim(logits_dim, 0) if logits_dim is not None
              else logits.expand(batch, *logits.shape))
    target = (target.movedim(target_dim, 0) if target_dim is not None
              else target.expand(batch, *target.shape))
    loss, lse = torch.ops.mlpbench.cross_entropy.default(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index, "none")
    loss, lse = loss.view(target.shape), lse.view(target.shape)
    if reduction != "none":
        rows = loss.reshape(batch, -1).sum(1)
        kept = (target.reshape(batch, -1) != ignore_index).sum(1)
        loss = rows if reduction == "sum" else (rows / kept).to(rows.dtype)
    return (loss, lse), (0, 0)


# Autograd and the meta kernels are registered in C++ (csrc/autograd.cpp,
# csrc/meta.cpp), for every backend. draw_seed has no tensor argument, so
# fake tensors cannot route it to a meta kernel: its fake kernel is here.
@torch.library.register_fake("mlpbench::draw_seed")
def _draw_seed_fake(device=None):
    return torch.empty((), dtype=torch.int64, device=device)
