"""The lecture's experiments on real MNIST, each writing a markdown table and a
figure to --out (default results/).

    python -m mlpbench.experiments lecture              # the six runs, stock and fused
    python -m mlpbench.experiments lecture --runs 4,6 --epochs 3
    python -m mlpbench.experiments activations|init|xor|lr|batch|standardize|l2|precision
    python -m mlpbench.experiments all                  # every study, as results/ holds them

Studies: lecture (the lecture's table), activations (accuracy, time and the
per-layer gradient norms behind the vanishing-gradient point), init (zeros /
normal / xavier / he), xor (a single layer cannot learn XOR, 2-2-1 can), lr
(too small, right, too large), batch (batch size vs time and accuracy),
standardize (raw vs standardised inputs), l2 (weight decay vs overfitting),
precision (run 6 in float32 and bfloat16).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import MNISTDataError, load_mnist
from .plots import plot_runs
from .training import Config, describe_setup, resolve_device, train

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
        rows.append([r, description, _cell(acc[False], "{:.4f}"), _cell(acc[True], "{:.4f}"),
                     _cell(secs[False], "{:.2f}"), _cell(secs[True], "{:.2f}"), lecture])
    plot_runs(curves, args.out / "lecture.png", title="lecture runs: test accuracy"
              + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over seeds {args.seeds} (each in brackets)"
    body = (f"{args.epochs} epochs, batch 100, CrossEntropy, Adam lr 0.001 unless stated "
            f"(run 1: SGD lr 0.001); hidden layers ReLU; normal init is N(0, 1); "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {seed_text}.\n\n"
            + _table(["run", "network", "stock accuracy", "fused accuracy", "stock s/epoch",
                      "fused s/epoch", "lecture"], rows) + "\n\n![test accuracy](lecture.png)")
    _write(args.out, "lecture", "The lecture's runs, stock and fused", body, log, curves)


def study_precision(args, data, log):
    """Lecture run 6 in float32 and under bfloat16 autocast, stock and fused."""
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    _, changes, _ = LECTURE_RUNS[6]
    rows, curves = [], {}
    for precision in ("fp32", "bf16"):
        for fused in (False, True):
            acc, secs = [], []
            for seed in seeds:
                label = f"{'fused' if fused else 'stock'} {precision} seed {seed}"
                history = _run(label, _base(args, fused=fused, seed=seed, precision=precision,
                                            **changes), data, log)
                curves[label] = history.epochs
                acc.append(_acc(history))
                secs.append(_seconds_per_epoch(history))
            rows.append([precision, "fused" if fused else "stock", _cell(acc, "{:.4f}"),
                         _cell(secs, "{:.2f}")])
    plot_runs(curves, args.out / "precision.png", title="run 6: test accuracy, fp32 and bf16")
    body = (f"Lecture run 6 (784-256-256-256-10, ReLU, dropout 0.3, xavier, Adam lr 0.001, batch "
            f"100, {args.epochs} epochs); bf16: torch.autocast to bfloat16 with float32 "
            f"parameters. torch {torch.__version__}, {torch.get_num_threads()} threads; mean "
            f"over seeds {','.join(map(str, seeds))} (each in brackets).\n\n"
            + _table(["precision", "layers", "test accuracy", "s/epoch"], rows)
            + "\n\n![precision](precision.png)")
    _write(args.out, "precision", "float32 and bfloat16 training, stock and fused", body, log,
           curves)


def _cell(values, fmt):
    """The mean, and each value in brackets when there are several."""
    mean = sum(values) / len(values)
    return fmt.format(mean) + (" (" + " / ".join(fmt.format(v) for v in values) + ")"
                               if len(values) > 1 else "")


def _layer_grad_norms(model, x, y):
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    F.cross_entropy(model(x), y).backward()
    model.train(was_training)
    norms = [layer.weight.grad.norm().item() for layer in model.layers]
    model.zero_grad(set_to_none=True)
    return norms


def _to_accuracy(history, target):
    """(epochs, seconds) until the test accuracy first reaches target, or None."""
    seconds = 0.0
    for record in history.epochs:
        seconds += record["seconds"]
        if record["test_accuracy"] >= target:
            return record["epoch"], seconds
    return None


def study_activations(args, data, log):
    """Each activation on the deep network, stock and fused: accuracy, epochs
    and seconds to TARGET test accuracy (the lecture's "ReLU learns 6x faster"
    in time-to-accuracy), and gradient norms by depth."""
    names = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "gelu", "silu"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    probe_x, probe_y = data.train_x[:1000].to(args.device), data.train_y[:1000].to(args.device)
    rows, init_norms, curves, reach = [], {}, {}, {}
    from ..models import MLP

    for name in names:
        config = _base(args, arch=DEEP, activation=name)
        torch.manual_seed(config.seed)
        fresh = MLP(config.arch, name, 0.0, config.init, True).to(args.device)
        init_norms[name] = _layer_grad_norms(fresh, probe_x, probe_y)
        for fused in (False, True):
            kind = "fused" if fused else "stock"
            acc, epochs, seconds, per_epoch = [], [], [], []
            for seed in seeds:
                label = f"{name} {kind} seed {seed}"
                history = _run(label, replace(config, fused=fused, seed=seed), data, log)
                curves[label] = history.epochs
                acc.append(_acc(history))
                per_epoch.append(_seconds_per_epoch(history))
                hit = _to_accuracy(history, TARGET)
                epochs.append(hit[0] if hit else math.nan)
                seconds.append(hit[1] if hit else math.nan)
            reach[(name, kind)] = (_mean(epochs), _mean(seconds))
            rows.append([name, kind, _cell(acc, "{:.4f}"), _cell(epochs, "{:.1f}"),
                         _cell(seconds, "{:.1f}"), _cell(per_epoch, "{:.2f}")])
    _plot_norms(init_norms, args.out / "activations.png")
    plot_runs(curves, args.out / "activations-curves.png",
              title=f"test accuracy by activation ({DEEP}, mean over seeds)")
    fmt = lambda v: " ".join(f"{n:.2g}" for n in v)  # noqa: E731
    norms = [[name, fmt(init_norms[name])] for name in names]
    body = (f"{DEEP}, xavier init, Adam lr 0.001, batch 100, {args.epochs} epochs, stock and fused "
            f"(the whole-MLP op); mean over seeds {','.join(map(str, seeds))} (each in brackets). "
            f"'to {TARGET:.0%}': the first epoch whose test accuracy reaches {TARGET:.0%}, and the "
            f"training seconds until then (NaN: never within {args.epochs} epochs).\n\n"
            + _answer(reach) + "\n\n"
            + _table(["activation", "layers", "test accuracy", f"epochs to {TARGET:.0%}",
                      f"seconds to {TARGET:.0%}", "s/epoch"], rows)
            + "\n\nWeight-gradient norm of each layer (first to last) at initialisation, on 1000 "
              "training images, in eval mode:\n\n"
            + _table(["activation", "grad norm per layer at init"], norms)
            + "\n\n![gradient norms](activations.png)\n\n![curves](activations-curves.png)")
    _write(args.out, "activations", "Activations on the deep network: time to accuracy", body,
           log, curves)


TARGET = 0.97  # the activations study's accuracy to reach


def _mean(values):
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if len(finite) == len(values) else math.nan


def _answer(reach):
    """The lecture's claim against the measured epochs and seconds to TARGET."""
    lines = []
    for kind in ("stock", "fused"):
        relu_epochs, relu_seconds = reach.get(("relu", kind), (math.nan, math.nan))
        times = {name: secs for (name, k), (_, secs) in reach.items() if k == kind}
        fastest = min((v, n) for n, v in times.items() if v == v) if any(
            v == v for v in times.values()) else (math.nan, "none")
        for other in ("tanh", "sigmoid"):
            epochs, seconds = reach.get((other, kind), (math.nan, math.nan))
            lines.append(f"- {kind}: {other} took {epochs:.1f} epochs and {seconds:.1f} s to "
                         f"reach {TARGET:.0%}, ReLU {relu_epochs:.1f} epochs and "
                         f"{relu_seconds:.1f} s: ReLU was {seconds / relu_seconds:.2f}x as fast "
                         f"in time ({epochs / relu_epochs:.2f}x in epochs).")
        lines.append(f"- {kind}: the first to {TARGET:.0%} was {fastest[1]} ({fastest[0]:.1f} s).")
    return ("**The lecture's \"ReLU learns 6x faster\"** (AlexNet's result, iterations to a "
            "training error on CIFAR-10), measured here in time to accuracy:\n\n" + "\n".join(lines))


def _plot_norms(init_norms, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, norms in init_norms.items():
        ax.plot(range(1, len(norms) + 1), norms, marker="o", label=name)
    ax.set(yscale="log", xlabel="layer (1 = first)", ylabel="weight-gradient norm at initialisation",
           title="gradients by depth (784-256x4-10, xavier)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    if key == "generalisation_gap":  # train minus test accuracy, epoch by epoch
        curves = {label: [{**e, key: e["train_accuracy"] - e["test_accuracy"]} for e in epochs]
                  for label, epochs in curves.items()}
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
                  "last column: train minus test accuracy, which the figure follows epoch by "
                  "epoch.", key="generalisation_gap", ylabel="train - test accuracy",
                  extra=("train - test", gap))


def study_xor(args, data, log):
    from .. import nn as mnn

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
           "standardize": study_standardize, "l2": study_l2, "precision": study_precision}

# `all`: every study, with the seeds each needs to answer its question (the
# others take one seed); --seeds given on the command line wins.
ALL = [("xor", {}), ("lr", {}), ("init", {}), ("standardize", {}), ("l2", {}), ("batch", {}),
       ("activations", {"seeds": "0,1"}), ("precision", {"seeds": "0,1,2"}),
       ("lecture", {"seeds": "0,1,2"})]


def study_all(args, data, log):
    start = time.perf_counter()
    for name, settings in ALL:
        study_args = argparse.Namespace(**{**vars(args), **{k: v for k, v in settings.items()
                                                             if getattr(args, k) is None}})
        log(f"== {name}")
        STUDIES[name](study_args, data, log)
    log(f"all studies: {(time.perf_counter() - start) / 60:.1f} min")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mlpbench.experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("study", choices=[*STUDIES, "all"])
    p.add_argument("--epochs", type=int, default=15, help="epochs per run (default 15)")
    p.add_argument("--runs", help="lecture: comma-separated run numbers (default all six)")
    p.add_argument("--train-limit", type=int, metavar="N", help="first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="lecture, precision: comma-separated seeds; the table shows "
                                    "the mean")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto (default): CUDA when a device is visible and this build has CUDA "
                        "kernels, else the CPU")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.train_limit is not None and args.train_limit < 1:
        p.error(f"--train-limit must be >= 1, got {args.train_limit}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    args.device = resolve_device(args.device)
    torch.set_flush_denormal(True)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(message, file=sys.stderr)

    try:
        data = None if args.study == "xor" else load_mnist(args.data_dir)
    except MNISTDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"mlpbench.experiments: {describe_setup(args.device, 'per study')}")
    log(f"{args.study}: {args.epochs} epoch(s) per run")
    (study_all if args.study == "all" else STUDIES[args.study])(args, data, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
