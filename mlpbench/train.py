"""Train a lecture MLP on real MNIST.

    python -m mlpbench.train --fused            # the lecture's plotted run
    python -m mlpbench.train --no-fused --activation tanh --dropout 0 --epochs 5

Writes metrics.json, curves.png and checkpoint.pt to --out (default
runs/<timestamp>) after every epoch; --resume continues a checkpoint's run with
identical results to an uninterrupted one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from . import ops
from .data import MNISTDataError
from .models import INITS
from .training import OPTIMIZERS, SCHEDULERS, Config, train

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
    p = argparse.ArgumentParser(prog="python -m mlpbench.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=d.fused,
                   help="fused mlpbench layers (default) or stock nn.Linear + activation + nn.Dropout")
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
    p.add_argument("--device", choices=["cpu", "cuda"], default=d.device, help="default cpu")
    p.add_argument("--seed", type=int, default=d.seed, help="default 0")
    p.add_argument("--train-limit", type=_bounded(int, 1), default=None, metavar="N",
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--data-dir", type=Path, help="directory with the four MNIST IDX files")
    p.add_argument("--out", type=Path, help="output directory (default runs/<timestamp>)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue the run saved in this checkpoint.pt (its own settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = p.parse_args(argv)
    if args.resume is not None and not args.resume.is_file():
        p.error(f"--resume: {args.resume} is not a file")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def main(argv=None):
    args = parse_args(argv)
    # Denormals cost 20-60% of late-epoch time on CPUs; set before the thread pool starts.
    torch.set_flush_denormal(True)
    config = Config(fused=args.fused, arch=args.arch, activation=args.activation,
                    dropout=args.dropout, init=args.init, optimizer=args.optimizer, lr=args.lr,
                    momentum=args.momentum, weight_decay=args.weight_decay,
                    scheduler=args.scheduler, epochs=args.epochs, batch_size=args.batch_size,
                    standardize=args.standardize, batchnorm=args.batchnorm, device=args.device,
                    seed=args.seed, train_limit=args.train_limit)
    out = args.out or (args.resume.parent if args.resume else
                       Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    try:
        history = train(config, data_dir=args.data_dir, out=out, resume=args.resume,
                        progress=not args.quiet)
    except MNISTDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if history.diverged:
        print(f"training diverged: {history.diverged}; try a smaller --lr", file=sys.stderr)
        return 3
    last = history.epochs[-1]
    print(f"{'fused' if config.fused else 'stock'} {'-'.join(map(str, config.arch))} "
          f"{config.activation}: test accuracy {last['test_accuracy']:.4f} after "
          f"{last['epoch']} epochs; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
