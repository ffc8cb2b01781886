"""Figures of training runs (matplotlib, written to PNG files)."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["mean_over_seeds", "plot_curves", "plot_runs"]


def plot_curves(epochs, path, title=None):
    """Loss and accuracy against epoch, train and test, for one run."""
    x = [e["epoch"] for e in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("test", "--")):
        ax_loss.plot(x, [e[f"{split}_loss"] for e in epochs], style, label=split)
        ax_acc.plot(x, [e[f"{split}_accuracy"] for e in epochs], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def mean_over_seeds(runs, key):
    """{label without " seed N": [epoch records of the mean of `key`]} for runs
    labelled "... seed N"; other labels pass through."""
    groups = {}
    for label, epochs in runs.items():
        groups.setdefault(re.sub(r" seed \d+$", "", label), []).append(epochs)
    merged = {}
    for label, members in groups.items():
        n = min(len(m) for m in members)
        merged[label] = [{"epoch": members[0][i]["epoch"],
                          key: sum(m[i][key] for m in members) / len(members)} for i in range(n)]
    return merged


def plot_runs(runs, path, key="test_accuracy", ylabel="test accuracy", title=None, logy=False):
    """One line per run: runs is {label: [epoch records]}, runs of several seeds
    averaged. Runs whose labels differ only by "stock"/"fused" share a colour;
    fused lines are dashed."""
    runs = mean_over_seeds(runs, key)
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {}
    for label, epochs in runs.items():
        family = label.replace(" stock", "").replace(" fused", "")
        colour = colours.setdefault(family, f"C{len(colours) % 10}")
        ax.plot([e["epoch"] for e in epochs], [e[key] for e in epochs], label=label,
                color=colour, linestyle="--" if "fused" in label else "-",
                linewidth=2.2 if "fused" in label else 1.2)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title or "")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
