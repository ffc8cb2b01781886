"""The lecture's experiments on real MNIST, each writing a markdown table and a
figure to --out (default results/).

    python -m mlpbench.experiments lecture              # the six runs, stock and fused
    python -m mlpbench.experiments lecture --runs 4,6 --epochs 3
    python -m mlpbench.experiments activations|init|xor|lr|batch|standardize|l2

Studies: lecture (the lecture's table), activations (accuracy, time and the
per-layer gradient norms behind the vanishing-gradient point), init (zeros /
normal / xavier / he), xor (a single layer cannot learn XOR, 2-2-1 can), lr
(too small, right, too large), batch (batch size vs time and accuracy),
standardize (raw vs standardised inputs), l2 (weight decay vs overfitting).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import MNISTDataError, load_mnist
from .plots import plot_runs
from .training import Config, train

__all__ = ["LECTURE_RUNS", "main"]

DEEP = (784, 256, 256, 256, 256, 10)
# (description, config changes from the defaults, the lecture's test accuracy)
LECTURE_RUNS = {
    1: ("normal init, 784-10, SGD", dict(init="normal", arch=(784, 10), optimizer="sgd"), 0.42),
    2: ("normal init, 784-10, Adam", dict(init="normal", arch=(784, 10)), 0.77),
    3: ("normal init, 784-256-256-10", dict(init="normal", arch=(784, 256, 256, 10)), 0.94),
    4: ("xavier init, 784-256-256-10", dict(arch=(784, 256, 256, 10)), 0.9791),
    5: ("xavier init, 784-256-256-256-256-10", dict(arch=DEEP), 0.9824),
    6: ("xavier init, 784-256-256-256-10, dropout 0.3",
        dict(arch=(784, 256, 256, 256, 10), dropout=0.3), 0.9776),
}


def _base(args, **changes):
    config = Config(dropout=0.0, epochs=args.epochs, seed=args.seed, device=args.device,
                    train_limit=args.train_limit)
    return replace(config, **changes)


def _run(label, config, data, log):
    start = time.perf_counter()
    history = train(config, data=data, progress=False)
    epochs = history.epochs
    final = epochs[-1] if epochs else None
    status = (f"diverged ({history.diverged})" if history.diverged
              else f"test accuracy {final['test_accuracy']:.4f}")
    log(f"  {label}: {status}, {time.perf_counter() - start:.0f} s")
    return history


def _seconds_per_epoch(history):
    epochs = history.epochs
    return sum(e["seconds"] for e in epochs) / len(epochs) if epochs else float("nan")


def _acc(history):
    return history.epochs[-1]["test_accuracy"] if history.epochs and not history.diverged else float("nan")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _write(out: Path, name, title, body, log, curves=None):
    """results/<name>.md, and the per-epoch records of every run as <name>.json."""
    out.mkdir(parents=True, exist_ok=True)
    if curves is not None:
        (out / f"{name}.json").write_text(json.dumps(curves, indent=1))
    text = f"# {title}\n\n{body}\n"
    (out / f"{name}.md").write_text(text)
    log(f"wrote {out / name}.md")
    print(text)


def study_lecture(args, data, log):
    runs = [int(r) for r in args.runs.split(",")] if args.runs else list(LECTURE_RUNS)
    for r in runs:
        if r not in LECTURE_RUNS:
            raise SystemExit(f"--runs: no lecture run {r}; the runs are 1-6")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]

    def cell(values, fmt):
        mean = sum(values) / len(values)
        return fmt.format(mean) + (" (" + " / ".join(fmt.format(v) for v in values) + ")"
                                   if len(values) > 1 else "")

    rows, curves = [], {}
    for r in runs:
        description, changes, lecture = LECTURE_RUNS[r]
        acc, secs = {False: [], True: []}, {False: [], True: []}
        for seed in seeds:
            for fused in (False, True):
                label = f"run {r} {'fused' if fused else 'stock'}" + (f" seed {seed}" if len(seeds) > 1 else "")
                history = _run(label, _base(args, fused=fused, seed=seed, **changes), data, log)
                curves[label] = history.epochs
                acc[fused].append(_acc(history))
                secs[fused].append(_seconds_per_epoch(history))
        rows.append([r, description, cell(acc[False], "{:.4f}"), cell(acc[True], "{:.4f}"),
                     cell(secs[False], "{:.2f}"), cell(secs[True], "{:.2f}"), lecture])
    plot_runs(curves, args.out / "lecture.png", title="lecture runs: test accuracy"
              + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over seeds {args.seeds} (each in brackets)"
    body = (f"{args.epochs} epochs, batch 100, CrossEntropy, Adam lr 0.001 unless stated "
            f"(run 1: SGD lr 0.001); hidden layers ReLU; normal init is N(0, 1); "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {seed_text}.\n\n"
            + _table(["run", "network", "stock accuracy", "fused accuracy", "stock s/epoch",
                      "fused s/epoch", "lecture"], rows) + "\n\n![test accuracy](lecture.png)")
    _write(args.out, "lecture", "The lecture's runs, stock and fused", body, log, curves)


def _layer_grad_norms(model, x, y):
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    F.cross_entropy(model(x), y).backward()
    model.train(was_training)
    norms = [layer.weight.grad.norm().item() for layer in model.layers]
    model.zero_grad(set_to_none=True)
    return norms


def study_activations(args, data, log):
    names = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "gelu", "silu"]
    probe_x, probe_y = data.train_x[:1000].to(args.device), data.train_y[:1000].to(args.device)
    rows, init_norms = [], {}
    for name in names:
        after = {}

        def on_epoch(model, record, after=after):
            if record["epoch"] == 1:
                after["norms"] = _layer_grad_norms(model, probe_x, probe_y)

        config = _base(args, arch=DEEP, activation=name)
        torch.manual_seed(config.seed)
        from .models import MLP

        fresh = MLP(config.arch, name, 0.0, config.init, True).to(args.device)
        init_norms[name] = _layer_grad_norms(fresh, probe_x, probe_y)
        start = time.perf_counter()
        history = train(config, data=data, progress=False, on_epoch=on_epoch)
        log(f"  {name}: test accuracy {_acc(history):.4f}, {time.perf_counter() - start:.0f} s")
        fmt = lambda v: " ".join(f"{n:.2g}" for n in v)  # noqa: E731
        rows.append([name, f"{_acc(history):.4f}", f"{_seconds_per_epoch(history):.2f}",
                     fmt(init_norms[name]), fmt(after.get("norms", []))])
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, norms in init_norms.items():
        ax.plot(range(1, len(norms) + 1), norms, marker="o", label=name)
    ax.set(yscale="log", xlabel="layer (1 = first)", ylabel="weight-gradient norm at initialisation",
           title="gradients by depth (784-256x4-10, xavier)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "activations.png", dpi=110)
    plt.close(fig)
    body = (f"{DEEP}, xavier init, Adam lr 0.001, {args.epochs} epochs, fused layers. Gradient "
            "norms: the weight gradient of each layer (first to last) on 1000 training images, "
            "in eval mode.\n\n"
            + _table(["activation", "test accuracy", "s/epoch", "grad norm per layer at init",
                      "after 1 epoch"], rows) + "\n\n![gradient norms](activations.png)")
    _write(args.out, "activations", "Activations on the deep network", body, log)


def _simple_study(args, data, log, name, title, variants, note, key="test_accuracy",
                  ylabel="test accuracy", logy=False, extra=None):
    """Train each (label, config); extra = (column name, history -> cell), if any."""
    rows, curves = [], {}
    for label, config in variants:
        history = _run(label, config, data, log)
        curves[label] = history.epochs
        last = history.epochs[-1] if history.epochs else {}
        row = [label, f"{_acc(history):.4f}", f"{last.get('train_accuracy', float('nan')):.4f}",
               f"{_seconds_per_epoch(history):.2f}", history.diverged or ""]
        rows.append(row + ([extra[1](history)] if extra else []))
    plot_runs(curves, args.out / f"{name}.png", key=key, ylabel=ylabel, title=title, logy=logy)
    header = ["run", "test accuracy", "train accuracy", "s/epoch", "diverged"]
    header += [extra[0]] if extra else []
    body = note + "\n\n" + _table(header, rows) + f"\n\n![{name}]({name}.png)"
    _write(args.out, name, title, body, log, curves)


def study_init(args, data, log):
    variants = [(init, _base(args, arch=DEEP, init=init)) for init in ("zeros", "normal", "xavier", "he")]
    _simple_study(args, data, log, "init", "Initialisation on the deep network", variants,
                  f"{DEEP}, ReLU, Adam lr 0.001, fused layers. Zeros: every unit of a layer gets "
                  "the same gradient, so the units never differ.")


def study_lr(args, data, log):
    variants = [(f"SGD lr {lr:g}", _base(args, arch=(784, 256, 256, 10), optimizer="sgd", lr=lr))
                for lr in (1e-4, 1e-2, 1.0, 100.0)]
    _simple_study(args, data, log, "lr", "Learning rate: too small, right, too large", variants,
                  "784-256-256-10, ReLU, plain SGD. A loss that becomes NaN or inf is reported "
                  "as diverged and the run stops.", key="train_loss", ylabel="train loss", logy=True)


def study_batch(args, data, log):
    variants = [(f"batch {b}", _base(args, arch=(784, 256, 256, 10), batch_size=b))
                for b in (10, 32, 100, 1000, 10000)]
    _simple_study(args, data, log, "batch", "Batch size vs time and accuracy", variants,
                  "784-256-256-10, ReLU, Adam lr 0.001, fused layers: small batches take more "
                  "steps per epoch.")


def study_standardize(args, data, log):
    variants = [(f"{'standardised' if s else 'raw [0, 1]'} inputs, {opt}",
                 _base(args, arch=(784, 256, 256, 10), standardize=s, optimizer=opt,
                       lr=0.01 if opt == "sgd" else 1e-3))
                for opt in ("sgd", "adam") for s in (False, True)]
    _simple_study(args, data, log, "standardize", "Raw vs standardised inputs", variants,
                  "784-256-256-10, ReLU, fused layers; mean and std per pixel from the training "
                  "set (constant border pixels keep std 1). SGD lr 0.01, Adam lr 0.001.")


def study_l2(args, data, log):
    limit = args.train_limit or 5000
    variants = [(f"weight decay {wd:g}", _base(args, arch=(784, 256, 256, 10), weight_decay=wd,
                                             train_limit=limit))
                for wd in (0.0, 1e-4, 1e-3, 1e-2)]

    def gap(history):
        last = history.epochs[-1] if history.epochs else None
        return f"{last['train_accuracy'] - last['test_accuracy']:.4f}" if last else ""

    _simple_study(args, data, log, "l2", "L2 regularisation vs overfitting", variants,
                  f"784-256-256-10, ReLU, Adam lr 0.001 with weight decay (the lecture's L2 "
                  f"term), trained on the first {limit} images only so that it can overfit; "
                  "last column: train minus test accuracy.", extra=("train - test", gap))


def study_xor(args, data, log):
    from . import nn as mnn

    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    torch.manual_seed(args.seed)
    models = {"single layer 2-1 (sigmoid)": torch.nn.Sequential(mnn.FusedLinear(2, 1, "sigmoid")),
              "MLP 2-2-1 (sigmoid)": torch.nn.Sequential(mnn.FusedLinear(2, 2, "sigmoid"),
                                                         mnn.FusedLinear(2, 1, "sigmoid"))}
    rows, outputs = [], {}
    for label, model in models.items():
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        for _ in range(3000):
            opt.zero_grad()
            loss = F.binary_cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = model(x).squeeze(1)
        outputs[label] = out
        solved = bool(((out > 0.5).float() == y.squeeze(1)).all())
        rows.append([label, f"{loss.item():.4f}", "yes" if solved else "no"])
        log(f"  {label}: loss {loss.item():.4f}, solved: {solved}")
    truth = [[f"{int(a)} {int(b)}", int(t)] + [f"{outputs[m][i]:.3f}" for m in models]
             for i, ((a, b), t) in enumerate(zip(x.tolist(), y.squeeze(1).tolist()))]
    body = ("3000 full-batch Adam steps (lr 0.1), binary cross-entropy, fused layers.\n\n"
            + _table(["model", "final loss", "learns XOR"], rows) + "\n\nTruth table:\n\n"
            + _table(["x1 x2", "XOR", *models], truth))
    _write(args.out, "xor", "XOR: one layer cannot, two can", body, log)


STUDIES = {"lecture": study_lecture, "activations": study_activations, "init": study_init,
           "xor": study_xor, "lr": study_lr, "batch": study_batch,
           "standardize": study_standardize, "l2": study_l2}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mlpbench.experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=list(STUDIES))
    p.add_argument("--epochs", type=int, default=15, help="epochs per run (default 15)")
    p.add_argument("--runs", help="lecture: comma-separated run numbers (default all six)")
    p.add_argument("--train-limit", type=int, metavar="N", help="first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="lecture: comma-separated seeds; the table shows the mean")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.train_limit is not None and args.train_limit < 1:
        p.error(f"--train-limit must be >= 1, got {args.train_limit}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    torch.set_flush_denormal(True)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(message, file=sys.stderr)

    try:
        data = None if args.study == "xor" else load_mnist(args.data_dir)
    except MNISTDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"{args.study}: {args.epochs} epoch(s) per run")
    STUDIES[args.study](args, data, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
