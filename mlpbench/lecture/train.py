"""Train a lecture MLP on real MNIST.

    python -m mlpbench.train --fused            # the lecture's plotted run
    python -m mlpbench.train --no-fused --activation tanh --dropout 0 --epochs 5

Writes checkpoint.pt, metrics.json and curves.png to --out (default
runs/<timestamp>) after every epoch; --resume continues a checkpoint's run with
identical results to an uninterrupted one (only --epochs may change). Under
torchrun it trains data-parallel:

    torchrun --nproc_per_node=2 -m mlpbench.train --fused
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .. import ops
from .checkpoint import CheckpointError, load_checkpoint
from .data import MNISTDataError
from .distributed import setup, teardown
from ..models import INITS
from .training import (OPTIMIZERS, PRECISIONS, SCHEDULERS, Config, Terminated, describe_setup,
                       native_bf16_cpu, resolve_device, stop_signals, train)

__all__ = ["main", "parse_args"]


def _arch(text):
    try:
        sizes = tuple(int(s) for s in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 784-256-10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive sizes, got {text!r}")
    if sizes[0] != 784 or sizes[-1] != 10:
        raise argparse.ArgumentTypeError(f"MNIST needs 784 inputs and 10 outputs, got {text!r}")
    return sizes


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"expected an int in [0, 2**64), got {text!r}")
    return value


def _bounded(kind, low, high=None, low_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high) or value != value:
            bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"expected a value {bound}, got {text!r}")
        return value
    return parse


def parse_args(argv=None):
    d = Config()
    # allow_abbrev=False: an abbreviated flag (--prec) would not count as given
    # when --resume compares the flags with the checkpoint's.
    p = argparse.ArgumentParser(prog="python -m mlpbench.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--fused", nargs="?", const="mlp", default=d.fused, choices=["mlp", "layer"],
                   help="fused layers (default): the whole network as one op (mlp, the default "
                        "with --fused), or one op per layer (layer)")
    p.add_argument("--no-fused", dest="fused", action="store_const", const=False,
                   help="stock nn.Linear + activation + nn.Dropout")
    p.add_argument("--arch", type=_arch, default=d.arch, metavar="784-...-10",
                   help="layer sizes (default 784-256-256-256-10)")
    p.add_argument("--activation",
                   choices=[a for a in ops.ACTIVATIONS if ops.activation_info(a)["differentiable"]],
                   default=d.activation, help="hidden-layer activation (default relu)")
    p.add_argument("--dropout", type=_bounded(float, 0.0, 1.0), default=d.dropout,
                   help="dropout after each hidden layer, in [0, 1] (default 0.3)")
    p.add_argument("--init", choices=INITS, default=d.init, help="weight initialisation (default xavier)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="default adam")
    p.add_argument("--lr", type=_bounded(float, 0.0, low_open=True), default=d.lr,
                   help="learning rate (default 0.001)")
    p.add_argument("--momentum", type=_bounded(float, 0.0, 1.0), default=d.momentum,
                   help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=_bounded(float, 0.0), default=d.weight_decay,
                   help="L2 regularisation strength (default 0)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                   help="learning-rate schedule (default none)")
    p.add_argument("--epochs", type=_bounded(int, 1), default=d.epochs, help="default 15")
    p.add_argument("--batch-size", type=_bounded(int, 1), default=d.batch_size, help="default 100")
    p.add_argument("--standardize", action="store_true", help="(x - mean) / std per pixel")
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after each activation")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto (default): CUDA when a device is visible and this build has CUDA "
                        "kernels, else the CPU")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="fp32 (default), bf16 (autocast to bfloat16, float32 parameters) or "
                        "fp16 (autocast to float16 with gradient scaling; CUDA only)")
    p.add_argument("--seed", type=_seed, default=d.seed, help="default 0 (any int in [0, 2**64))")
    p.add_argument("--train-limit", type=_bounded(int, 1), default=None, metavar="N",
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--data-dir", type=Path, help="directory with the four MNIST IDX files")
    p.add_argument("--out", type=Path, help="output directory (default runs/<timestamp>)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue the run saved in this checkpoint.pt (its own settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = p.parse_args(argv)
    args.explicit = _explicit_flags(p, sys.argv[1:] if argv is None else argv)
    if args.resume is not None and not args.resume.is_file():
        p.error(f"--resume: {args.resume} is not a file")
    if args.out is not None:
        problem = _unwritable(args.out)
        if problem:
            p.error(f"--out: {problem}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.device == "cuda" and args.fused is not False and not ops._C.has_cuda():
        p.error("--device cuda: this build of mlpbench has CPU kernels only (rebuild with "
                "MLPBENCH_CUDA=1 bash scripts/setup.sh), or train stock layers with --no-fused")
    args.device = resolve_device(args.device, args.fused)
    if args.precision == "fp16" and args.device != "cuda":
        p.error("--precision fp16: needs --device cuda (on the CPU use bf16)")
    return args


def _explicit_flags(parser, argv) -> set:
    """The dests of the options given on the command line (not defaulted)."""
    given = set()
    for action in parser._actions:
        for option in action.option_strings:
            if any(arg == option or arg.startswith(option + "=") for arg in argv):
                given.add(action.dest)
    return given


def _unwritable(out: Path):
    """Why --out cannot hold the run's files, or None: checked before training,
    so that a bad path costs no work."""
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A probe of its own: torchrun's ranks check the same --out at once.
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mlpbench-write-test-"):
            pass
    except OSError as e:
        return f"cannot write to {out} ({e.strerror or e})"
    return None


def describe(config: dict) -> str:
    """A run's network in one line, as the final line prints it."""
    kind = {False: "stock", "layer": "fused per-layer"}.get(config["fused"], "fused")
    precision = config.get("precision", "fp32")
    return (f"{kind} {'-'.join(map(str, config['arch']))} {config['activation']}"
            + ("" if precision == "fp32" else f" {precision}"))


def _fused_mode(fused, batchnorm):
    return ("layer" if batchnorm else "mlp") if fused is True else fused


def _resume_conflicts(args, saved: dict) -> list:
    """The explicit flags that disagree with the checkpoint's run (--epochs
    may only grow)."""
    conflicts = []
    for dest in sorted(args.explicit & set(saved)):
        given, kept = getattr(args, dest), saved[dest]
        if dest == "fused":  # True is "mlp" (or "layer" with batch norm): the same run
            given, kept = (_fused_mode(v, saved["batchnorm"]) for v in (given, kept))
        if dest == "epochs":
            if given < kept:
                conflicts.append(f"--epochs {given} is fewer than the checkpoint's {kept}")
        elif (tuple(given) if isinstance(given, (list, tuple)) else given) != \
                (tuple(kept) if isinstance(kept, (list, tuple)) else kept):
            flag = "--" + dest.replace("_", "-")
            conflicts.append(f"{flag} {given!r} differs from the checkpoint's {kept!r}")
    return conflicts


def main(argv=None):
    args = parse_args(argv)
    context = setup(args.device)
    finished = False
    try:
        with stop_signals():
            result = _run(args, context)
        finished = True
        return result
    finally:
        teardown(context, finished=finished)


def _run(args, context):
    # Denormals cost 20-60% of late-epoch time on CPUs; set before the thread pool starts.
    torch.set_flush_denormal(True)
    config = Config(fused=args.fused, arch=args.arch, activation=args.activation,
                    dropout=args.dropout, init=args.init, optimizer=args.optimizer, lr=args.lr,
                    momentum=args.momentum, weight_decay=args.weight_decay,
                    scheduler=args.scheduler, epochs=args.epochs, batch_size=args.batch_size,
                    standardize=args.standardize, batchnorm=args.batchnorm, device=args.device,
                    seed=args.seed, train_limit=args.train_limit, precision=args.precision)
    out = args.out or (args.resume.parent if args.resume else
                       Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    say = print if context.is_main else (lambda *a, **k: None)
    problem = _unwritable(out) if context.is_main else None
    if problem:
        say(f"error: --out: {problem}", file=sys.stderr)
        return 2
    if args.resume is not None:
        try:
            saved = load_checkpoint(args.resume)
        except CheckpointError as e:
            say(f"error: {e}", file=sys.stderr)
            return 2
        conflicts = _resume_conflicts(args, saved["config"])
        if conflicts:
            say(f"error: --resume {args.resume}: " + "; ".join(conflicts) + ". Leave those flags "
                "out to continue that run, or start a new one without --resume.", file=sys.stderr)
            return 2
    # A resumed run goes on with its checkpoint's settings.
    device, precision = ((saved["config"]["device"], saved["config"].get("precision", "fp32"))
                         if args.resume is not None else (args.device, args.precision))
    say(f"mlpbench.train: {describe_setup(device, precision)}", file=sys.stderr)
    if args.resume is not None:
        done, total = len(saved["epochs"]), max(args.epochs, saved["config"]["epochs"])
        say(f"resuming {args.resume}: {describe(saved['config'])}, after epoch {done} of "
            f"{total}", file=sys.stderr)
    if precision == "bf16" and device == "cpu" and not native_bf16_cpu():
        say("warning: --precision bf16: this CPU has no native bfloat16 arithmetic (neither "
            "AVX512-BF16 nor AMX-BF16), so its bf16 products are emulated: expect steps several "
            "times slower than --precision fp32 (15.6x measured on an AVX2-only CPU)",
            file=sys.stderr)
    try:
        history = train(config, data_dir=args.data_dir, out=out, resume=args.resume,
                        progress=not args.quiet, context=context)
    except (MNISTDataError, CheckpointError, ValueError) as e:
        say(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
        where = out / "checkpoint.pt"
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        say(f"{what}; " + (f"the last checkpoint is {where} (continue with --resume {where})"
                           if where.is_file() else "no epoch had finished, nothing was saved"),
            file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    if history.diverged:
        say(f"training diverged: {history.diverged}; try a smaller --lr", file=sys.stderr)
        return 3
    last = history.epochs[-1]
    say(f"{describe(asdict(config) if args.resume is None else history.config)}: test accuracy "
        f"{last['test_accuracy']:.4f} after {last['epoch']} epochs; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
