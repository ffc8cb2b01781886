"""What a user of the training CLI sees: `--fused` against `--no-fused`, epoch
for epoch, in one process. The two runs take turns epoch by epoch (ABBA:
fused first in odd epochs, stock first in even ones), so the machine's drift
lands on both; each epoch is timed as the CLI's is (its steps and the test
set's evaluation).

    python scripts/train_ab.py --epochs 4                  # the lecture's network
    python scripts/train_ab.py --epochs 2 --precision bf16 --train-limit 20000
"""

import argparse
import statistics
import sys
import time

import torch

from mlpbench.lecture.data import MNISTDataError
from mlpbench.lecture.training import (PRECISIONS, Config, _record, _start, _train_epoch,
                                       describe_setup, resolve_device)
from mlpbench.lecture.distributed import Context
from mlpbench.perf.fair_timing import fair_timing


def epoch_seconds(run, epoch):
    start = time.perf_counter()
    totals = _train_epoch(run, epoch, progress=False)
    if totals is None:
        raise RuntimeError(f"training diverged: {run.history.diverged}")
    seconds = time.perf_counter() - start
    _record(run, epoch, totals, seconds, progress=False)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--train-limit", type=int, metavar="N",
                        help="the first N training images only")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args(argv)
    if args.epochs < 1 or (args.train_limit is not None and args.train_limit < 1):
        parser.error("--epochs and --train-limit must be >= 1")
    fair_timing()
    device = resolve_device(args.device)
    configs = {name: Config(fused=fused, epochs=args.epochs, precision=args.precision,
                            device=device, train_limit=args.train_limit)
               for name, fused in (("fused", True), ("stock", False))}
    try:
        runs = {name: _start(config, None, None, Context()) for name, config in configs.items()}
    except MNISTDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{describe_setup(device, args.precision)}; lecture network 784-256-256-256-10, ReLU, "
          f"dropout 0.3, Adam, batch 100, {len(runs['fused'].data[0])} training images\n")
    print("| epoch | fused | stock | fused / stock |\n| ---: | ---: | ---: | ---: |")
    ratios = []
    for epoch in range(1, args.epochs + 1):
        order = ["fused", "stock"] if epoch % 2 else ["stock", "fused"]
        seconds = {name: epoch_seconds(runs[name], epoch) for name in order}
        ratios.append(seconds["fused"] / seconds["stock"])
        print(f"| {epoch} | {seconds['fused']:.2f} s | {seconds['stock']:.2f} s | "
              f"{ratios[-1]:.2f}x |", flush=True)
    accuracy = {n: r.history.epochs[-1]["test_accuracy"] for n, r in runs.items()}
    print(f"\nfused / stock per epoch: median {statistics.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}x ... {max(ratios):.2f}x; test accuracy fused "
          f"{accuracy['fused']:.4f}, stock {accuracy['stock']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
