"""Turn a pytest-benchmark JSON file into markdown tables and a bar chart.

    pytest bench/ --benchmark-only --benchmark-json=BENCH.json
    python -m mlpbench.report BENCH.json [MORE.json ...] [--png chart.png] [--device cpu|cuda]

One table per benchmark group, each row with its fastest time per call (the
minimum over rounds: on a shared 2-core machine noise only ever adds time, and
a median there swung by 7x between runs when stray page faults hit) and its
ratio to the group's stock row and floor row (where the group has them); then
the lecture's claim that ReLU is fast because it needs no exp(), checked per
operation against the activation groups.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

__all__ = ["load_rows", "load_saved_bytes", "markdown", "linear_act_matrix", "relu_claim", "summary",
           "targets", "main"]

# The activations the lecture compares with ReLU (ReLU itself first).
CLAIM_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "silu"]

# The order rows appear in within a group.
ROW_ORDER = ["floor", "copy", "relu fwd", "stock", "stock fwd", "stock bwd", "compile", "fused",
             "fused fwd", "fused bwd", "cublaslt"]


def _benchmarks(paths, device):
    """(device, group, row, fastest seconds per call, extra_info) of every mlpbench row."""
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        data = json.loads(Path(path).read_text())
        if "benchmarks" not in data:
            raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' key)")
        for bench in data["benchmarks"]:
            info = bench.get("extra_info", {})
            dev = info.get("device", "cpu")
            if "row" in info and (not device or dev == device):
                yield dev, bench["group"], info["row"], bench["stats"]["min"] / info.get("inner", 1), info


def load_rows(paths, device=None):
    """{(device, group): {row: fastest seconds per call}} from benchmark JSON files."""
    groups = defaultdict(dict)
    for dev, group, row, seconds, _ in _benchmarks(paths, device):
        groups[(dev, group)][row] = seconds
    return dict(groups)


def load_saved_bytes(paths, device=None):
    """{(device, group): {row: bytes saved for backward}} for the memory rows."""
    saved = defaultdict(dict)
    for dev, group, row, _, info in _benchmarks(paths, device):
        if "saved_bytes" in info:
            saved[(dev, group)][row] = info["saved_bytes"]
    return dict(saved)


def _fmt_time(seconds):
    us = seconds * 1e6
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def markdown(groups, saved=None):
    """Markdown tables, one per group, rows in ROW_ORDER; a column of the bytes
    saved for backward where the group measured them."""
    out = []
    for (dev, group), rows in sorted(groups.items()):
        stock = rows.get("stock", rows.get("stock fwd"))
        floor = rows.get("floor", rows.get("copy"))
        memory = (saved or {}).get((dev, group), {})
        out.append(f"#### {group} ({dev})\n")
        out.append("| row | time | vs stock | vs floor |" + (" saved for backward |" if memory else ""))
        out.append("| --- | ---: | ---: | ---: |" + (" ---: |" if memory else ""))
        order = sorted(rows, key=lambda r: (ROW_ORDER.index(r) if r in ROW_ORDER else 99, r))
        for row in order:
            t = rows[row]
            vs_stock = f"{t / stock:.2f}x" if stock else ""
            vs_floor = f"{t / floor:.2f}x" if floor else ""
            extra = f" {memory[row]:,} B |" if row in memory else (" |" if memory else "")
            out.append(f"| {row} | {_fmt_time(t)} | {vs_stock} | {vs_floor} |{extra}")
        out.append("")
    return "\n".join(out)


def linear_act_matrix(groups):
    """linear_act at a glance: per device, one line per shape, batch and mode,
    one column per activation, each cell fused / stock (and fused / floor)."""
    cells = defaultdict(dict)  # (dev, "784x256, batch 100, fwd") -> {act: cell}
    acts = []
    for (dev, group), rows in groups.items():
        if not group.startswith("linear_act[") or "fused" not in rows or "stock" not in rows:
            continue
        shape, batch, act, mode = group[len("linear_act["):-1].split(", ")
        if act not in acts:
            acts.append(act)
        floor = f" / {rows['fused'] / rows['floor']:.2f}" if "floor" in rows else ""
        cells[(dev, f"{shape}, {batch}, {mode}")][act] = f"{rows['fused'] / rows['stock']:.2f}{floor}"
    out = []
    for dev in sorted({d for d, _ in cells}):
        out.append(f"#### linear_act, fused / stock (/ floor), {dev}\n")
        out.append("| layer | " + " | ".join(acts) + " |")
        out.append("| --- |" + " ---: |" * len(acts))
        for (d, layer), row in sorted(cells.items()):
            if d == dev:
                out.append(f"| {layer} | " + " | ".join(row.get(a, "") for a in acts) + " |")
        out.append("")
    return "\n".join(out)


def relu_claim(groups):
    """Each activation's forward time over ReLU's and over a copy's, stock and
    fused, per device and size; and whether any activation costs the lecture's
    6x of ReLU. The lecture's activations that need exp() or a slope, not
    identity or step. Empty when the JSON has no activation groups."""
    out = []
    sizes = sorted({(dev, g.split(", ")[-1].rstrip("]")) for dev, g in groups
                    if g.startswith("activation[")})
    for dev, size in sizes:
        acts = {g[len("activation["):].split(",")[0]: rows for (d, g), rows in groups.items()
                if d == dev and g.startswith("activation[") and g.endswith(f", {size}]")}
        copy = acts.get("reference", {}).get("copy")
        acts = {a: rows for a, rows in acts.items() if a in CLAIM_ACTIVATIONS}
        relu = acts.get("relu", {})
        if "stock fwd" not in relu:
            continue
        out.append(f"#### ReLU against the others, forward, {size} ({dev})\n")
        out.append("| activation | stock / stock ReLU | fused / fused ReLU | fused / copy |")
        out.append("| --- | ---: | ---: | ---: |")
        worst = {}
        for name, rows in sorted(acts.items(), key=lambda a: CLAIM_ACTIVATIONS.index(a[0])):
            cells = []
            for kind in ("stock", "fused"):
                ratio = rows.get(f"{kind} fwd", 0) / relu.get(f"{kind} fwd", float("inf"))
                cells.append(f"{ratio:.2f}x" if ratio else "")
                if ratio:
                    worst[kind] = max(worst.get(kind, (0, "")), (ratio, name))
            by_copy = f"{rows['fused fwd'] / copy:.2f}x" if copy and "fused fwd" in rows else ""
            out.append(f"| {name} | {cells[0]} | {cells[1]} | {by_copy} |")
        verdicts = [f"{kind}: {'holds' if ratio >= 6 else 'false'}, the costliest ({name}) takes "
                    f"{ratio:.2f}x ReLU's time" for kind, (ratio, name) in sorted(worst.items())]
        out.append(f"\n\"ReLU is 6x faster because it needs no exp()\", per operation: "
                   f"{'; '.join(verdicts)}.\n")
    return "\n".join(out)


def summary(groups):
    """One line per group that has a stock and a fused row: fused / stock."""
    lines = []
    for (dev, group), rows in sorted(groups.items()):
        for stock_row, fused_row in (("stock", "fused"), ("stock fwd", "fused fwd"),
                                     ("stock bwd", "fused bwd")):
            if stock_row in rows and fused_row in rows:
                ratio = rows[fused_row] / rows[stock_row]
                lines.append((dev, f"{group} {fused_row}", ratio))
    return lines


def targets(groups, device="cuda"):
    """The headline checks: fused fwd+bwd speed-up over stock at batch 4096 per
    activation and shape, the Linear+ReLU+dropout block, and the elementwise
    kernels' bandwidth as a fraction of a device copy's, on the largest tensor."""
    lines = ["| check | stock / fused (speed-up) or % of copy bandwidth |", "| --- | ---: |"]
    for (dev, group), rows in sorted(groups.items()):
        if dev != device or "stock" not in rows or "fused" not in rows:
            continue
        if ("batch 4096" in group and "fwdbwd" in group) or group.startswith("mlp_step"):
            lines.append(f"| {group} | {rows['stock'] / rows['fused']:.2f}x |")
    sizes = [g.split(", ")[1].rstrip("]") for (dev, g) in groups
             if dev == device and g.startswith("activation[reference")]
    largest = max(sizes, key=lambda s: int(s.rstrip("M")) if s.endswith("M") else 0, default=None)
    copy = groups.get((device, f"activation[reference, {largest}]"), {}).get("copy")
    for (dev, group), rows in sorted(groups.items()):
        if dev != device or not copy or not group.endswith(f", {largest}]"):
            continue
        for row, tensors in (("fused fwd", 2), ("fused bwd", 3)):
            if row in rows:
                pct = 100 * copy * tensors / 2 / rows[row]
                lines.append(f"| {group} {row} | {pct:.0f}% |")
    return "\n".join(lines)


def bar_chart(groups, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = summary(groups)
    if not lines:
        return None
    labels = [f"{label} ({dev})" for dev, label, _ in lines]
    ratios = [r for *_, r in lines]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.22 * len(lines))))
    ax.barh(range(len(lines)), ratios, color=["tab:green" if r <= 1 else "tab:red" for r in ratios])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(lines)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("fused time / stock time (lower is better)")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mlpbench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+", help="files written by pytest --benchmark-json")
    parser.add_argument("--png", help="bar chart of fused/stock per group (default: JSON name .png)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="only this device's rows")
    parser.add_argument("--targets", action="store_true",
                        help="print only the headline checks (speed-ups, bandwidth)")
    args = parser.parse_args(argv)
    try:
        groups = load_rows(args.json, args.device)
    except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
        parser.error(str(e))
    if not groups:
        parser.error(f"{args.json}: no mlpbench benchmark rows found")
    if args.targets:
        print(targets(groups, args.device or "cuda"))
        return 0
    print(markdown(groups, load_saved_bytes(args.json, args.device)))
    print(linear_act_matrix(groups))
    print(relu_claim(groups))
    png = bar_chart(groups, args.png or str(Path(args.json[0]).with_suffix(".png")))
    if png:
        print(f"bar chart: {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
