"""Training and evaluation of the lecture's MLPs, shared by the CLI and the
experiments: batches are index slices of tensors already in memory, the same
performance hygiene applies to stock and fused models, and a checkpoint holds
everything needed to continue with identical results."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import _C, ops
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import MNIST, load_mnist, standardize
from .distributed import Context
from ..models import MLP
from ..nn import cross_entropy_backward

__all__ = ["Config", "History", "batch_starts", "evaluate", "make_optimizer", "make_scheduler",
           "train"]

OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("fp32", "bf16", "fp16")


def autocast(config: Config):
    """The forward's precision: torch.autocast to bfloat16 or float16 (the
    parameters stay float32, as with stock modules), or nothing for fp32."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(torch.device(config.device).type, dtype=dtype)
SCHEDULERS = ("none", "step", "cosine", "plateau")


@dataclass
class Config:
    """One training run; the defaults are the lecture's plotted run."""

    fused: bool | str = True  # models.MLP's fused=: "mlp", "layer", True (fastest) or False
    arch: tuple = (784, 256, 256, 256, 10)
    activation: str = "relu"
    dropout: float = 0.3
    init: str = "xavier"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: str = "none"
    epochs: int = 15
    batch_size: int = 100
    standardize: bool = False
    batchnorm: bool = False
    device: str = "cpu"
    seed: int = 0
    train_limit: int | None = None  # use only the first N training images (tests, quick runs)
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "fp16" (autocast, GradScaler; CUDA)


@dataclass
class History:
    config: dict
    epochs: list = field(default_factory=list)
    diverged: str | None = None  # why training stopped early, if it did
    model: object = None  # the trained model (not serialised)

    def to_json(self) -> dict:
        return {"config": self.config, "versions": versions(), "epochs": self.epochs,
                **({"diverged": self.diverged} if self.diverged else {})}


def versions() -> dict:
    import mlpbench

    return {"mlpbench": mlpbench.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cuda": torch.version.cuda, "machine": platform.machine()}


def make_optimizer(params, config: Config):
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    try:  # the fused implementation where this torch and device have one (fair to both paths)
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config: Config):
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3),
                                               gamma=0.3)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=1)
    return None


@torch.no_grad()
def evaluate(model, x, y, batch_size=1000, precision=contextlib.nullcontext):
    """(mean cross-entropy, accuracy in [0, 1]) in eval mode; precision makes
    the forward's autocast context."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        with precision():
            logits = model(x[i:i + batch_size]).float()
        loss += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return loss / len(x), correct / len(x)


def prepare_data(config: Config, data: MNIST | None = None, data_dir=None):
    data = data if data is not None else load_mnist(data_dir)
    train_x, train_y, test_x, test_y = data.train_x, data.train_y, data.test_x, data.test_y
    if config.train_limit is not None:
        train_x, train_y = train_x[:config.train_limit], train_y[:config.train_limit]
    if config.standardize:
        train_x, test_x, _, _ = standardize(train_x, test_x)
    device = torch.device(config.device)
    return (train_x.to(device), train_y.to(device), test_x.to(device), test_y.to(device))


def _rng_state(device):
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state, device):
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def batch_starts(n: int, batch: int, batchnorm: bool, ranks: int = 1) -> list:
    """Where each (global) batch of an epoch starts. With batch norm, a last
    batch too small to give every rank two samples (batch statistics of one
    sample are undefined) joins the batch before it."""
    starts = list(range(0, n, batch))
    if batchnorm and len(starts) > 1 and n - starts[-1] < 2 * ranks:
        starts.pop()
    return starts


class Terminated(KeyboardInterrupt):
    """SIGTERM (batch schedulers, `kill`, container stops), handled as Ctrl-C is."""


STOP_SIGNALS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}


@contextlib.contextmanager
def stop_signals():
    """Within the block SIGTERM raises Terminated, as Ctrl-C raises
    KeyboardInterrupt (a no-op outside the main thread, where signals cannot
    be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done, so that the files it
    writes agree; then the first of them raises."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise STOP_SIGNALS[caught[0]]


def resolve_device(device: str, fused=True) -> str:
    """"auto": CUDA when a device is visible and (for fused layers) this
    build has CUDA kernels, else the CPU; "cpu" and "cuda" as they are."""
    if device != "auto":
        return device
    usable = torch.cuda.is_available() and (fused is False or _C.has_cuda())
    return "cuda" if usable else "cpu"


def describe_setup(device: str, precision: str) -> str:
    """The device, precision and build a run uses, in one line."""
    where = (f"cuda ({torch.cuda.get_device_name()})" if device == "cuda"
             else f"cpu ({torch.get_num_threads()} threads, {_C.best_simd_level()} kernels)")
    build = "CPU and CUDA kernels" if _C.has_cuda() else "CPU kernels only"
    return f"device {where}, precision {precision}, build with {build}, torch {torch.__version__}"


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16, which every
    CPU with AMX-BF16 has too); without it oneDNN emulates bf16 products."""
    return _C.best_simd_level() == "avx512_bf16"


@dataclass
class _Run:
    """What a training run carries from epoch to epoch."""

    config: Config
    ctx: Context
    device: torch.device
    data: tuple  # train_x, train_y, test_x, test_y on the device
    model: torch.nn.Module
    forward: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    shuffle: torch.Generator
    history: History
    batches: list  # (start, end) of each global batch


def _validated(config: Config, checkpoint, resume, ctx: Context) -> Config:
    """config, or the checkpoint's with its --epochs raised to config's;
    ValueError or CheckpointError for what cannot run."""
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs --device cuda (on the CPU use bf16)")
    if checkpoint is None:
        return config
    saved_ranks = len(checkpoint["rng"])
    if saved_ranks != ctx.world_size:
        raise CheckpointError(f"{resume}: written by {saved_ranks} process(es); resume it "
                              f"with as many (this run has {ctx.world_size})")
    return Config(**{**checkpoint["config"], "epochs": max(config.epochs,
                                                           checkpoint["config"]["epochs"])})


def _start(config: Config, data, data_dir, ctx: Context) -> _Run:
    """The model, optimiser, schedule and data of a fresh run, seeded."""
    device = torch.device(config.device)
    tensors = prepare_data(config, data, data_dir)
    n = len(tensors[0])
    if config.batchnorm and n < 2 * ctx.world_size:
        raise ValueError(f"batch norm needs at least 2 training images per process, got {n}")
    torch.manual_seed(config.seed)
    model = MLP(config.arch, config.activation, config.dropout, config.init, config.fused,
                config.batchnorm).to(device)
    if ctx.active:
        torch.manual_seed(config.seed + ctx.rank)  # each rank its own dropout masks
    optimizer = make_optimizer(model.parameters(), config)
    forward = torch.nn.parallel.DistributedDataParallel(model) if ctx.active else model
    starts = batch_starts(n, config.batch_size * ctx.world_size, config.batchnorm, ctx.world_size)
    # float16 needs its gradients scaled (bfloat16 has float32's range);
    # disabled, the scaler passes everything through.
    return _Run(config=config, ctx=ctx, device=device, data=tensors, model=model, forward=forward,
                optimizer=optimizer, scheduler=make_scheduler(optimizer, config),
                scaler=torch.amp.GradScaler(device.type, enabled=config.precision == "fp16"),
                shuffle=torch.Generator().manual_seed(config.seed), history=History(asdict(config)),
                batches=list(zip(starts, starts[1:] + [n])))


def _restore(run: _Run, checkpoint) -> None:
    """Every state a checkpoint holds, so that the run continues as if uninterrupted."""
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    if run.scheduler is not None:
        run.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    run.shuffle.set_state(checkpoint["shuffle"])
    _set_rng_state(checkpoint["rng"][run.ctx.rank], run.device)
    run.history.epochs = checkpoint["epochs"]


def _train_epoch(run: _Run, epoch: int, progress: bool):
    """One epoch of steps; returns (loss sum, correct, seen) over every rank,
    or None when the loss stopped being finite (history.diverged says where)."""
    from tqdm import tqdm

    config, ctx, device = run.config, run.ctx, run.device
    train_x, train_y = run.data[0], run.data[1]
    run.model.train()
    order = torch.randperm(len(train_x), generator=run.shuffle).to(device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # this rank's
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0

    def totals():  # (loss sum, correct, seen) over every rank
        local = torch.stack([loss_sum, correct.double(),
                             torch.tensor(seen, dtype=torch.float64, device=device)])
        return ctx.sum(local).tolist()

    # The fused network trains with the fused loss too (the same values), and
    # the whole-MLP one without an autograd graph (nn.cross_entropy_backward,
    # which also sets the gradients afresh, no zero_grad, and steps the
    # optimizer, a fused Adam inside the backward) unless float16's loss
    # scaling needs one.
    loss_fn = ops.cross_entropy if config.fused else F.cross_entropy
    direct = config.fused and not run.scaler.is_enabled()
    bar = tqdm(run.batches, desc=f"epoch {epoch}/{config.epochs}", leave=False,
               disable=not (progress and ctx.is_main), file=sys.stderr)
    for step, (start, end) in enumerate(bar):
        idx = ctx.shard(order[start:end])
        xb, yb = train_x[idx], train_y[idx]
        if direct:
            with autocast(config):
                loss, logits = cross_entropy_backward(run.forward, xb, yb, accumulate=False,
                                                      optimizer=run.optimizer)
        else:
            run.optimizer.zero_grad(set_to_none=True)
            with autocast(config):
                logits = run.forward(xb)
                loss = loss_fn(logits.float(), yb)
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == yb).sum()
        seen += len(idx)
        if step % 50 == 0 or step == len(run.batches) - 1:
            total_loss, total_correct, total_seen = totals()
            if not math.isfinite(total_loss / total_seen):
                run.history.diverged = (f"loss became {total_loss / total_seen} at epoch "
                                        f"{epoch}, step {step}")
                bar.close()
                return None
            bar.set_postfix(loss=f"{total_loss / total_seen:.4f}",
                            acc=f"{total_correct / total_seen:.4f}")
    bar.close()
    return totals()


def _record(run: _Run, epoch: int, totals, seconds: float, progress: bool) -> dict:
    """The epoch's record: its training totals, the test set's loss and
    accuracy (rank 0 evaluates), the learning rate; the schedule steps."""
    total_loss, total_correct, total_seen = totals
    test_x, test_y = run.data[2], run.data[3]
    test_loss, test_acc = run.ctx.broadcast(
        list(evaluate(run.model, test_x, test_y, precision=lambda: autocast(run.config)))
        if run.ctx.is_main else [None, None])
    if run.scheduler is not None:
        if run.config.scheduler == "plateau":
            run.scheduler.step(test_loss)
        else:
            run.scheduler.step()
    record = {"epoch": epoch, "train_loss": total_loss / total_seen,
              "train_accuracy": total_correct / total_seen,
              "test_loss": test_loss, "test_accuracy": test_acc, "seconds": seconds,
              "lr": run.optimizer.param_groups[0]["lr"]}
    run.history.epochs.append(record)
    if progress and run.ctx.is_main:
        print(f"epoch {epoch:3d}  train loss {record['train_loss']:.4f} acc "
              f"{record['train_accuracy']:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  "
              f"{seconds:.1f} s", file=sys.stderr)
    return record


def train(config: Config, *, data: MNIST | None = None, data_dir=None, out: Path | None = None,
          resume: Path | None = None, progress: bool = True, on_epoch=None,
          context: Context | None = None) -> History:
    """Train `config` (or continue the checkpoint `resume`), writing
    checkpoint.pt, then metrics.json and curves.png, to `out` after every
    epoch (rank 0 only; `context` is the torchrun process group, if any)."""
    ctx = context or Context()
    checkpoint = load_checkpoint(resume) if resume else None
    run = _start(_validated(config, checkpoint, resume, ctx), data, data_dir, ctx)
    if checkpoint is not None:
        _restore(run, checkpoint)
    for epoch in range(len(run.history.epochs) + 1, run.config.epochs + 1):
        start = time.perf_counter()
        totals = _train_epoch(run, epoch, progress)
        if totals is None:
            break
        record = _record(run, epoch, totals, time.perf_counter() - start, progress)
        if on_epoch is not None:
            on_epoch(run.model, record)
        if out is not None:
            write_outputs(out, run)
    if out is not None and run.history.diverged:
        write_outputs(out, run)
    run.history.model = run.model
    return run.history


def write_outputs(out: Path, run: _Run) -> None:
    """checkpoint.pt first, then metrics.json and curves.png, each written to
    a temporary file and renamed into place, so that metrics never run ahead
    of the checkpoint and no file is ever half written; Ctrl-C and SIGTERM
    wait until all three are. Every rank sends its random state; rank 0
    writes."""
    from .plots import plot_curves

    rng = run.ctx.gather(_rng_state(run.device))
    if not run.ctx.is_main:
        return
    out.mkdir(parents=True, exist_ok=True)
    history = run.history
    with _signals_deferred():
        save_checkpoint({"config": history.config, "epochs": history.epochs,
                         "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                         "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
                         "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else None,
                         "shuffle": run.shuffle.get_state(), "rng": rng}, out / "checkpoint.pt")
        metrics = out / "metrics.json"
        metrics.with_name("metrics.json.tmp").write_text(json.dumps(history.to_json(), indent=2))
        os.replace(metrics.with_name("metrics.json.tmp"), metrics)
        if history.epochs:
            plot_curves(history.epochs, out / "curves.png.tmp")
            os.replace(out / "curves.png.tmp", out / "curves.png")
