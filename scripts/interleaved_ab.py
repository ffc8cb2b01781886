"""Stock against fused linear_act forward+backward, timed interleaved.

pytest-benchmark times one row after another, so on a shared machine slow
drift lands on whichever rows run during it. Here the floor (the three matrix
products), stock and fused take turns call by call for the whole budget, and
each gets its lower-quartile time: drift hits all three alike. The floor's
products run as the fused kernels run theirs (mlpbench._C.cpu_mm).

    python scripts/interleaved_ab.py --layers 256x10x100,784x256x100 --acts relu,gelu
"""

import argparse
import sys

import torch

from mlpbench import ops
from mlpbench.perf.fair_timing import fair_timing, lower_quartile_us
from mlpbench.reference import stock_linear_act


def time_layer(n_in, n_out, batch, act, seconds):
    """Lower-quartile microseconds of floor, stock and fused fwd+bwd for one layer."""
    torch.manual_seed(0)
    x = torch.randn(batch, n_in, requires_grad=True)
    w = (torch.randn(n_out, n_in) / n_in**0.5).requires_grad_()
    b = torch.randn(n_out, requires_grad=True)
    g = torch.randn(batch, n_out)
    xd, wd = x.detach(), w.detach()
    mm = ops._C.cpu_mm  # the products as the fused kernels run them (MKL or oneDNN)
    return lower_quartile_us({
        "floor": lambda: (mm(xd, wd.t()), mm(g, wd), mm(g.t(), xd)),
        "stock": lambda: torch.autograd.grad(stock_linear_act(x, w, b, act), (x, w, b), g),
        "fused": lambda: torch.autograd.grad(ops.linear_act(x, w, b, act), (x, w, b), g),
    }, seconds)


def layer(spec):
    try:
        n_in, n_out, batch = (int(v) for v in spec.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a layer is IN x OUT x BATCH, like 256x10x100; got {spec!r}") from None
    if min(n_in, n_out, batch) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {spec!r}")
    return n_in, n_out, batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="256x10x100,784x256x100",
                        type=lambda s: [layer(v) for v in s.split(",")],
                        help="comma-separated IN x OUT x BATCH (default 256x10x100,784x256x100)")
    parser.add_argument("--acts", default="relu", type=lambda s: s.split(","),
                        help="comma-separated activations (default relu)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="timing budget per layer and activation (default 3)")
    args = parser.parse_args(argv)
    unknown = [a for a in args.acts
               if a not in ops.ACTIVATIONS or not ops.activation_info(a)["elementwise"]]
    if unknown:
        parser.error(f"--acts: unknown or unsupported activation(s) {unknown}")
    fair_timing()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
          f"fwd+bwd, lower quartile of interleaved calls\n")
    print("| layer | act | floor | stock | fused | fused / stock |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for n_in, n_out, batch in args.layers:
        for act in args.acts:
            t = time_layer(n_in, n_out, batch, act, args.seconds)
            print(f"| {n_in}x{n_out}, batch {batch} | {act} | {t['floor']:.1f} us | "
                  f"{t['stock']:.1f} us | {t['fused']:.1f} us | {t['fused'] / t['stock']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
