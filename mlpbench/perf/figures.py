"""The report's figures, readable on a laptop screen: a heatmap of fused/stock
and fused/floor by layer and activation (log colour scale centred on 1, every
cell labelled), each activation's time relative to ReLU's (the lecture's
question), and the lecture network's step against its floor.

Every plot function returns the values it drew, so that a test can check
them against the report's tables without comparing pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from .summary import ratio, summary  # noqa: E402

__all__ = ["plot_heatmap", "plot_relu", "plot_step", "write_figures"]


def plot_heatmap(matrices, path, title):
    """matrices: {(dtype, mode): summary's linear_act entry}, one dtype. A grid
    of panels, a row per mode (fwd, fwdbwd), a column per reference (stock,
    floor), all on one log colour scale centred on 1. Returns {(mode, ref):
    {(layer, act): value}}."""
    modes = sorted({mode for _, mode in matrices}, key=["fwd", "fwdbwd"].index)
    refs = [ref for ref in ("stock", "floor") if any(m[ref] for m in matrices.values())]
    if not modes or not refs:
        return {}
    by_mode = {mode: m for (_, mode), m in matrices.items()}
    finite = [v for m in matrices.values() for ref in refs for v in m[ref].values()]
    span = max(max(finite), 1 / min(finite), 1.25)
    norm = LogNorm(vmin=1 / span, vmax=span)
    rows = max(len(m["rows"]) for m in matrices.values())
    fig, axes = plt.subplots(len(modes), len(refs), squeeze=False,
                             figsize=(7.5 * len(refs), 0.45 * rows * len(modes) + 1.6 * len(modes)))
    drawn = {}
    for i, mode in enumerate(modes):
        m = by_mode[mode]
        for j, ref in enumerate(refs):
            ax = axes[i][j]
            values = [[m[ref].get((layer, act), math.nan) for act in m["acts"]] for layer in m["rows"]]
            image = ax.imshow(values, cmap="RdYlGn_r", norm=norm, aspect="auto")
            for r, row in enumerate(values):
                for c, v in enumerate(row):
                    if v == v:
                        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(m["acts"])), m["acts"], rotation=30, ha="right", fontsize=9)
            ax.set_yticks(range(len(m["rows"])), m["rows"] if j == 0 else [], fontsize=9)
            ax.set_title(f"fused / {ref}, {mode}", fontsize=11)
            drawn[(mode, ref)] = {key: v for key, v in m[ref].items()}
    fig.colorbar(image, ax=axes, fraction=0.02, pad=0.01)
    fig.suptitle(title + ": below 1 fused is faster (log colour scale centred on 1)", fontsize=12)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return drawn


def plot_relu(relu, path, title):
    """relu: summary's relu entry. One panel per size: each activation's time
    over ReLU's, stock beside fused, forward and backward (log scale, ReLU and
    the lecture's 6x marked). Returns {size: {activation: {series: value}}}."""
    sizes = sorted(relu)
    if not sizes:
        return {}
    series = ["stock fwd", "fused fwd", "stock bwd", "fused bwd"]
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.5), squeeze=False)
    drawn = {}
    for ax, size in zip(axes[0], sizes):
        names = list(relu[size])
        drawn[size] = {}
        for k, s in enumerate(series):
            values = [relu[size][n].get(s, math.nan) for n in names]
            ax.bar([i + (k - 1.5) * 0.2 for i in range(len(names))], values, width=0.2, label=s)
            for n, v in zip(names, values):
                if v == v:
                    drawn[size].setdefault(n, {})[s] = v
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(6.0, color="red", linestyle="--", linewidth=0.8, label="the lecture's 6x")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel("time / ReLU's time")
        ax.set_title(f"{size}")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def plot_step(groups, path, title):
    """The step and fwd+bwd groups: each row's time over the floor (the floor
    is 1). Returns {group name: {row: value}}."""
    rows = ["stock", "stock bf16", "compile", "fused layer", "fused"]
    groups = [g for g in groups if "floor" in g.times]
    if not groups:
        return {}
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(groups)), 4.8))
    drawn = {}
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        values = []
        for g in groups:
            r = ratio(g, row, "floor")
            values.append(r[0] if r else math.nan)
            if r:
                drawn.setdefault(g.name, {})[row] = r[0]
        bars = ax.bar([i + (k - len(rows) / 2 + 0.5) * width for i in range(len(groups))], values,
                      width=width, label=row)
        ax.bar_label(bars, labels=["" if v != v else f"{v:.2f}" for v in values], fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8, label="floor (the products)")
    labels = [g.name.split("[", 1)[0] + ", " + ", ".join(p for p in g.name.rstrip("]").split(", ")[1:])
              for g in groups]
    ax.set_xticks(range(len(groups)), labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("time / floor")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def write_figures(groups, device, directory: Path):
    """Every figure of `device`'s rows into directory; {path: caption}."""
    directory.mkdir(parents=True, exist_ok=True)
    s = summary(groups, device)
    written = {}
    for dtype in sorted({dt for dt, _ in s["linear_act"]}):
        path = directory / f"linear_act_{device}_{dtype}.png"
        matrices = {k: v for k, v in s["linear_act"].items() if k[0] == dtype}
        if plot_heatmap(matrices, path, f"linear_act, {device}, {dtype}"):
            written[path] = f"fused over stock and over the floor, linear_act, {device}, {dtype}"
    path = directory / f"relu_{device}.png"
    if plot_relu(s["relu"], path, f"each activation over ReLU ({device}, float32)"):
        written[path] = f"each activation's time over ReLU's, {device}"
    path = directory / f"step_{device}.png"
    if plot_step(s["step"], path, f"the lecture network over its floor ({device})"):
        written[path] = f"the lecture network's fwd+bwd and step over the floor, {device}"
    return written
