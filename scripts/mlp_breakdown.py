"""Where the lecture network's time goes (784-256-256-256-10, ReLU, dropout
0.3, CPU): each piece of a training step beside the products it needs, and
the parts every row pays besides (loss, autograd.grad, the modules' Python),
and the fused rows' loss (mlpbench.ops.cross_entropy).
All pieces of a batch take turns call by call; each gets its lower-quartile
time, so drift lands on all alike.

    python scripts/mlp_breakdown.py --batch 100 4096
    python scripts/mlp_breakdown.py --batch 4096 --precision bf16
"""

import argparse
import sys

import torch
import torch.nn.functional as F

from mlpbench import ops
from mlpbench.models import MLP
from mlpbench.perf.fair_timing import fair_timing, lower_quartile_us

SIZES = [784, 256, 256, 256, 10]
P = 0.3


def pieces(batch, dtype):
    """{label: callable}: the pieces timed for one batch size and dtype."""
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=P, fused="mlp").train()
    x32 = torch.rand(batch, SIZES[0])
    labels = torch.randint(0, 10, (batch,))
    x = x32.to(dtype)
    ws = [layer.weight.detach().to(dtype) for layer in model.layers]
    bs = [layer.bias.detach().to(dtype) for layer in model.layers]
    seed = torch.tensor([5])
    outs = [torch.randn(batch, w.shape[0]).to(dtype) for w in ws]
    ins = [x] + outs[:-1]
    y, hidden, aux = torch.ops.mlpbench.mlp(x, ws, bs, "relu", "identity", P, seed, 0)
    grad_y = torch.randn_like(y)
    logits = torch.randn(batch, 10, requires_grad=True)
    leaf = torch.randn(batch, 10, requires_grad=True)
    one_node = leaf * 2
    params = [layer.weight for layer in model.layers] + [layer.bias for layer in model.layers]
    specs = [layer.spec for layer in (model.layers[0], model.layers[-1])]
    linear = torch.ops.mkldnn._linear_pointwise.default
    name = "bf16" if dtype == torch.bfloat16 else "fp32"

    def forward_products():
        for h, w, b in zip(ins, ws, bs):
            torch.addmm(b, h, w.t())

    # The products as the kernels run them (MKL or oneDNN: _C.fp32_matmul).
    mm = ops._C.cpu_mm

    def backward_products():
        for i, (h, w, g) in enumerate(zip(ins, ws, outs)):
            mm(g.t(), h)
            if i:
                mm(g, w)

    rows = {
        f"forward: the mlp op ({name})":
            lambda: torch.ops.mlpbench.mlp(x, ws, bs, "relu", "identity", P, seed, 0),
        f"forward: 4 addmm ({name})": forward_products,
        f"forward: 4 mm ({name})": lambda: [torch.mm(h, w.t()) for h, w in zip(ins, ws)],
        f"forward: its 4 products ({name})": lambda: [mm(h, w.t()) for h, w in zip(ins, ws)],
        f"forward: 4 oneDNN linear ({name})":
            lambda: [linear(h, w, b, "none", [], "") for h, w, b in zip(ins, ws, bs)],
        f"backward: mlp_backward ({name})":
            lambda: torch.ops.mlpbench.mlp_backward(grad_y, x, ws, y, hidden, aux, True, "relu",
                                                    "identity", P, seed, 0, False),
        f"backward: its 7 products ({name})": backward_products,
        "cross-entropy forward and backward (autograd.grad)":
            lambda: torch.autograd.grad(F.cross_entropy(logits, labels), logits),
        "the same, mlpbench.ops.cross_entropy":
            lambda: torch.autograd.grad(ops.cross_entropy(logits, labels), logits),
        "autograd.grad of a one-node graph":
            lambda: torch.autograd.grad(one_node, leaf, grad_y.float(), retain_graph=True),
        "the module's forward (fp32, with grad)": lambda: model(x32),
        "the op's forward (fp32, with grad)":
            lambda: torch.ops.mlpbench.mlp(x32, params[:4], params[4:], *specs, P, seed, 0),
    }
    # The Philox mask's cost: layer 1 (256 -> 256) with and without dropout.
    for label, p in (("no dropout", 0.0), ("dropout 0.3", P)):
        rows[f"a hidden layer's forward, {label} ({name})"] = (
            lambda p=p: torch.ops.mlpbench.linear_act(ins[1], ws[1], bs[1], "relu", p,
                                                      seed if p else None, 0))
    if dtype == torch.bfloat16:
        def autocast_forward():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x32)
        rows["autocast forward of the module (no grad)"] = autocast_forward
        rows["the batch's cast to bf16"] = lambda: x32.to(dtype)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 4096],
                        help="batch sizes (default 100 4096)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="timing budget per batch size (default 10)")
    args = parser.parse_args(argv)
    if min(args.batch) < 1:
        parser.error(f"--batch: sizes must be positive, got {args.batch}")
    if args.seconds <= 0:
        parser.error(f"--seconds: must be positive, got {args.seconds}")
    fair_timing()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"lower quartile of interleaved calls\n")
    print("| piece | " + " | ".join(f"batch {b}" for b in args.batch) + " |")
    print("| --- |" + " ---: |" * len(args.batch))
    times = [lower_quartile_us(pieces(b, dtype), args.seconds) for b in args.batch]
    for label in times[0]:
        print(f"| {label} | " + " | ".join(f"{t[label]:.0f} us" for t in times) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
