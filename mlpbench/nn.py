"""Drop-in modules built on the fused ops."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module_hooks  # the global module hooks
from torch.optim import optimizer as _optimizer_hooks  # the global optimizer hooks

from . import ops

__all__ = ["INITS", "FusedDropout", "FusedLinear", "FusedMLP", "cross_entropy_backward",
           "init_linear_", "mlp_forward"]

INITS = ("default", "zeros", "normal", "xavier", "xavier_normal", "he", "he_fan_out")


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, init: str) -> None:
    """Initialise one layer as the lecture does: weights by `init`, biases zero
    ("default": nn.Linear's own, left as it is)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(map(repr, INITS))}")
    if init == "default":
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
                 bias: bool = True, *, dropout: float = 0.0,
                 negative_slope: float = ops.DEFAULTS["negative_slope"],
                 alpha: float = ops.DEFAULTS["alpha"], approximate: str = ops.DEFAULTS["approximate"],
                 pieces: int = ops.DEFAULTS["pieces"], device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"FusedLinear: {name} must be an int >= 0, got {value!r}")
        # Every argument the op would refuse, refused now rather than at the first forward;
        # the op's activation argument is built once.
        self.spec = ops.activation_spec(activation, negative_slope=negative_slope, alpha=alpha,
                                        approximate=approximate, pieces=pieces, op="FusedLinear")
        dropout = ops.check_probability(dropout, "FusedLinear")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.dropout = dropout
        self.pieces = int(pieces) if "pieces" in ops.activation_info(activation)["params"] else 1
        rows = out_features * self.pieces
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(rows, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(rows, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's own initialisation, on our parameters.
        nn.Linear.reset_parameters(self)

    def forward(self, x: torch.Tensor, *, seed=None, offset: int = 0) -> torch.Tensor:
        """seed=None draws one per training call; models.MLP passes one seed and
        each layer's offset, as the whole-MLP op uses them."""
        return ops.linear_act_spec(x, self.weight, self.bias, self.spec, dropout_p=self.dropout,
                                   training=self.training, seed=seed, offset=offset)

    def extra_repr(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, activation={self.spec!r}{extra}")


class FusedDropout(nn.Module):
    """Inverted dropout that stores no mask (see mlpbench.ops.dropout)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = ops.check_probability(p, "FusedDropout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _modules_of(layers):
    """The layers as a list, read from a ModuleList's own table: on this
    per-call path, indexing a ModuleList and attribute access through
    nn.Module.__getattr__ cost several times as much (torch.compile traces
    the plain access, which its graph needs)."""
    if torch.compiler.is_compiling() or not isinstance(layers, nn.ModuleList):
        return layers
    return list(layers._modules.values())


def _parameters_of(modules, name):
    """Each module's parameter `name`, from the module's own table where it
    has one (a parametrized one has no entry there and comes through its
    attribute; so does everything under torch.compile)."""
    if torch.compiler.is_compiling():
        return [getattr(m, name) for m in modules]
    found = []
    for m in modules:
        p = m._parameters.get(name)
        found.append(p if p is not None else getattr(m, name))
    return found


def mlp_forward(layers, x, *, dropout: float, training: bool, seed=None, offset: int = 0):
    """The whole-MLP op over a list of FusedLinear layers (their weights,
    biases and activations: hidden ones alike, the last one the output's);
    dropout after every hidden layer."""
    modules = _modules_of(layers)
    biases = _parameters_of(modules, "bias")
    return ops.mlp_spec(x, _parameters_of(modules, "weight"),
                        biases if biases[0] is not None else None, modules[0].spec,
                        modules[-1].spec, dropout_p=dropout, training=training, seed=seed,
                        offset=offset)


class FusedMLP(nn.Module):
    """A whole MLP as one op (mlpbench.ops.mlp): Linear layers of `sizes` with
    `activation` and dropout after every hidden layer, the last layer with
    `output_activation` (logits by default), one autograd node for all.

    Parameters are models.MLP's (layers.i.weight, layers.i.bias), so state
    dicts move between this module and models.MLP, fused or stock.
    """

    def __init__(self, sizes, activation: str = "relu", dropout: float = 0.0, *,
                 bias: bool = True, init: str = "default", pieces: int = ops.DEFAULTS["pieces"],
                 output_activation: str = "identity",
                 negative_slope: float = ops.DEFAULTS["negative_slope"],
                 alpha: float = ops.DEFAULTS["alpha"], approximate: str = ops.DEFAULTS["approximate"],
                 device=None, dtype=None):
        super().__init__()
        sizes = list(sizes) if isinstance(sizes, (list, tuple)) else sizes
        if not isinstance(sizes, list) or len(sizes) < 2 or any(
                isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"FusedMLP: sizes must be at least two positive ints, got {sizes!r}")
        act = {"negative_slope": negative_slope, "alpha": alpha, "approximate": approximate,
               "pieces": pieces}
        for name in (activation, output_activation):
            ops.activation_spec(name, op="FusedMLP", **act)
        if init not in INITS:
            raise ValueError(f"FusedMLP: unknown init {init!r}; expected one of "
                             f"{', '.join(map(repr, INITS))}")
        self.dropout = ops.check_probability(dropout, "FusedMLP")
        self.sizes, self.activation = sizes, activation
        self.layers = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < len(sizes) - 2
            layer = FusedLinear(n_in, n_out, activation if hidden else output_activation, bias,
                                device=device, dtype=dtype, **act)
            init_linear_(layer.weight, layer.bias, init)
            self.layers.append(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mlp_forward(self.layers, x, dropout=self.dropout, training=self.training)

    def whole_mlp_layers(self):
        """The layers that forward runs as one whole-MLP op (cross_entropy_backward)."""
        return self.layers

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation!r}, dropout={self.dropout}"


def _whole_mlp_layers(model):
    """The model's layers when its forward is exactly one whole-MLP op
    (whole_mlp_layers, defined by FusedMLP and models.MLP), else None."""
    for cls in type(model).__mro__:
        if "whole_mlp_layers" in cls.__dict__:
            # A subclass with a forward of its own may do more than the op.
            return model.whole_mlp_layers() if type(model).forward is cls.forward else None
    return None


def _hooked(model, params) -> bool:
    """Whether anything would see the autograd path that the direct one skips:
    module hooks (global ones, or the model's own) or hooks on its parameters
    `params`. (Hooks on the layers inside never run on either path: a
    whole-MLP model's forward calls the op, not its layers.)"""
    m = _module_hooks
    return bool(m._global_forward_hooks or m._global_forward_pre_hooks
                or m._global_backward_hooks or m._global_backward_pre_hooks
                or model._forward_hooks or model._forward_pre_hooks or model._backward_hooks
                or model._backward_pre_hooks
                or any(p._backward_hooks or p._post_accumulate_grad_hooks for p in params))


def _adam_in_backward(optimizer, params):
    """The state and hyperparameters that _C.mlp_adam_step takes when
    optimizer.step() would run exactly ATen's fused Adam (or AdamW) kernel
    on exactly `params`, with nothing else watching it (no step hooks; an LR
    scheduler's step counter is kept, below); else None, and the optimizer's
    own step runs. Its state must exist (the first step makes it)."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or \
            len(optimizer.param_groups) != 1:
        return None
    step = optimizer.step
    if getattr(step, "_wrapped_by_lr_sched", False):
        if step.__wrapped__ is not type(optimizer).step:  # the scheduler's counter around it
            return None
    elif getattr(step, "__func__", None) is not type(optimizer).step:
        return None
    if (optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or _optimizer_hooks._global_optimizer_pre_hooks
            or _optimizer_hooks._global_optimizer_post_hooks):
        return None
    group = optimizer.param_groups[0]
    numbers = (group["lr"], *group["betas"], group["weight_decay"], group["eps"])
    if (group.get("fused") is not True or group.get("capturable") or group.get("differentiable")
            or any(isinstance(v, torch.Tensor) for v in numbers)
            or len(group["params"]) != len(params)
            or {id(p) for p in group["params"]} != {id(p) for p in params}):
        return None
    amsgrad = bool(group["amsgrad"])
    keys = ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    states = [optimizer.state.get(p) for p in params]
    if any(not s or any(k not in s for k in keys) for s in states):
        return None
    decoupled = type(optimizer) is torch.optim.AdamW or bool(group.get("decoupled_weight_decay"))
    return ([s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if amsgrad else [],
            [s["step"] for s in states], *map(float, numbers), amsgrad,
            bool(group["maximize"]), decoupled)


def cross_entropy_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                           ignore_index: int = -100, reduction: str = "mean",
                           accumulate: bool = True, optimizer: torch.optim.Optimizer = None):
    """(loss, logits), detached: the cross-entropy of model(x) against the class
    indices `target`, with its backward run, every parameter's gradient
    accumulated into .grad: the values of

        logits = model(x); loss = ops.cross_entropy(logits, target); loss.backward()

    With accumulate=False the gradients this call computes replace .grad
    instead of adding to it: on the direct path below, the whole-MLP layers'
    weights and biases (all of FusedMLP's and models.MLP's parameters) are
    set; on the autograd path model.zero_grad(set_to_none=True) runs first.
    Either way a training loop needs no optimizer.zero_grad() (up to 3% of a
    lecture step at batch 100 on the CPU, docs/cpu-tuning.md).

    A whole-MLP model (FusedMLP, models.MLP with fused="mlp") runs it as the
    ops alone (ops.mlp_cross_entropy_grads), without building and walking an
    autograd graph (at the lecture's batch of 100 on the CPU a training step
    then takes about 0.9x the time: docs/cpu-tuning.md). Any other model, one
    with hooks, an x that needs its own gradient, or torch.compile, goes
    through autograd as above.

    With an optimizer, the call ends with its step, as optimizer.step() after
    it would: .grad holds the gradients the step used. On the direct path on
    the CPU, with accumulate=False and an Adam or AdamW built with fused=True
    (one parameter group of the model's parameters, no step hooks), each
    layer's update runs inside the backward as soon as its gradients exist
    (ops.mlp_adam_step), with the same kernel and the same results as
    optimizer.step(), without its Python (docs/cpu-tuning.md). Any other
    optimizer steps after the backward."""
    op = "cross_entropy_backward"
    ops.check_scalar_reduction(reduction, op)
    if type(accumulate) is not bool:
        raise TypeError(f"{op}: accumulate must be a bool, got {type(accumulate).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{op}: optimizer must be a torch.optim.Optimizer or None, got "
                        f"{type(optimizer).__name__}")
    layers = _whole_mlp_layers(model)
    modules = _modules_of(layers) if layers is not None else []
    weights = _parameters_of(modules, "weight")
    biases = _parameters_of(modules, "bias")
    biases = biases if biases and biases[0] is not None else []
    params = weights + biases
    direct = (layers is not None and torch.is_grad_enabled() and not torch.compiler.is_compiling()
              and isinstance(x, torch.Tensor) and not x.requires_grad
              and all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
              and not _hooked(model, params))
    adam = (_adam_in_backward(optimizer, params)
            if direct and optimizer is not None and not accumulate and x.device.type == "cpu"
            else None)
    if adam is not None:
        loss, logits, grad_ws, grad_bs = ops.mlp_adam_step(
            x, weights, biases, modules[0].spec, modules[-1].spec, target, adam,
            dropout_p=model.dropout, training=model.training, ignore_index=ignore_index,
            reduction=reduction)
        _set_grads(params, grad_ws + grad_bs, accumulate=False)
        if getattr(optimizer.step, "_wrapped_by_lr_sched", False):
            optimizer._opt_called = True  # what the scheduler's wrapper records
        return loss, logits
    loss, logits = _gradients(model, x, target, direct, modules, weights, biases, params,
                              ignore_index, reduction, accumulate)
    if optimizer is not None:
        optimizer.step()
    return loss, logits


def _gradients(model, x, target, direct, modules, weights, biases, params, ignore_index,
               reduction, accumulate):
    """cross_entropy_backward without an optimizer: (loss, logits), .grad set."""
    if not direct:
        if not accumulate:
            model.zero_grad(set_to_none=True)
        logits = model(x)
        loss = ops.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
        with torch.autocast(logits.device.type, enabled=False):  # backward outside autocast
            loss.backward()
        return loss.detach(), logits.detach()
    loss, logits, grad_ws, grad_bs = ops.mlp_cross_entropy_grads(
        x, weights, biases, modules[0].spec, modules[-1].spec, target, dropout_p=model.dropout,
        training=model.training, ignore_index=ignore_index, reduction=reduction)
    _set_grads(params, grad_ws + grad_bs, accumulate)
    return loss, logits


def _set_grads(params, grads, accumulate):
    """Each parameter's .grad set to its gradient, or with accumulate added to it."""
    if not accumulate:
        for p, g in zip(params, grads):
            p.grad = g
        return
    with torch.no_grad():
        for p, g in zip(params, grads):
            if p.grad is None:
                p.grad = g
            else:
                p.grad += g
