"""Turn a pytest-benchmark JSON file into markdown tables and a bar chart.

    pytest bench/ --benchmark-only --benchmark-json=BENCH.json
    python -m mlpbench.report BENCH.json [MORE.json ...] [--png chart.png] [--device cpu|cuda]

One table per benchmark group, each row with its fastest time per call (the
minimum over rounds: on a shared 2-core machine noise only ever adds time, and
a median there swung by 7x between runs when stray page faults hit) and its
ratio to the group's stock row and floor row (where the group has them); then
the lecture's claim that ReLU is fast because it needs no exp(), checked per
operation against the activation groups.

A fused row that timed the stock and floor calls interleaved with its own
(extra_info["beside"], bench/conftest.py) takes its ratios from those, marked
*: the machine's speed drifts between rows run one after another.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

__all__ = ["load_rows", "load_saved_bytes", "load_beside", "ratio", "markdown",
           "linear_act_matrix", "relu_claim", "summary", "targets", "main"]

# The activations the lecture compares with ReLU (ReLU itself first).
CLAIM_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "silu"]

# The order rows appear in within a group.
ROW_ORDER = ["floor", "copy", "relu fwd", "stock", "stock fwd", "stock bwd", "compile",
             "fused layer", "fused",
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


def load_beside(paths, device=None):
    """{(device, group): {row: {other row: fastest seconds per call}}}: the rows
    each row timed interleaved with itself."""
    beside = defaultdict(dict)
    for dev, group, row, _, info in _benchmarks(paths, device):
        if info.get("beside"):
            inner = info.get("inner", 1)
            beside[(dev, group)][row] = {ref: t / inner for ref, t in info["beside"].items()}
    return dict(beside)


def ratio(rows, row, ref, beside=None):
    """(rows[row] / rows[ref], whether timed interleaved), or None when the
    group lacks either. beside: this group's load_beside() entry."""
    interleaved = (beside or {}).get(row, {})
    if row in rows and ref in interleaved:
        return rows[row] / interleaved[ref], True
    if row in rows and rows.get(ref):
        return rows[row] / rows[ref], False
    return None


def _fmt_ratio(r):
    return "" if r is None else f"{r[0]:.2f}x" + ("*" if r[1] else "")


def _fmt_time(seconds):
    us = seconds * 1e6
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def markdown(groups, saved=None, beside=None):
    """Markdown tables, one per group, rows in ROW_ORDER; a column of the bytes
    saved for backward where the group measured them."""
    out = []
    for (dev, group), rows in sorted(groups.items()):
        stock = "stock" if "stock" in rows else "stock fwd"
        floor = "floor" if "floor" in rows else "copy"
        memory = (saved or {}).get((dev, group), {})
        near = (beside or {}).get((dev, group))
        out.append(f"#### {group} ({dev})\n")
        out.append("| row | time | vs stock | vs floor |" + (" saved for backward |" if memory else ""))
        out.append("| --- | ---: | ---: | ---: |" + (" ---: |" if memory else ""))
        order = sorted(rows, key=lambda r: (ROW_ORDER.index(r) if r in ROW_ORDER else 99, r))
        for row in order:
            ref = f"stock {row.split()[1]}" if row in ("fused fwd", "fused bwd") else stock
            vs_stock = _fmt_ratio(ratio(rows, row, ref, near))
            vs_floor = _fmt_ratio(ratio(rows, row, floor, near))
            extra = f" {memory[row]:,} B |" if row in memory else (" |" if memory else "")
            out.append(f"| {row} | {_fmt_time(rows[row])} | {vs_stock} | {vs_floor} |{extra}")
        if near:
            out.append("\n\\* timed interleaved with that row")
        out.append("")
    return "\n".join(out)


def linear_act_matrix(groups, beside=None):
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
        near = (beside or {}).get((dev, group))
        to_floor = ratio(rows, "fused", "floor", near)
        floor = f" / {to_floor[0]:.2f}" if to_floor else ""
        to_stock = ratio(rows, "fused", "stock", near)[0]
        cells[(dev, f"{shape}, {batch}, {mode}")][act] = f"{to_stock:.2f}{floor}"
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


def relu_claim(groups, beside=None):
    """Each activation's forward time over ReLU's and over a copy's, stock and
    fused, per device and size; and whether any activation costs the lecture's
    6x of ReLU. The lecture's activations that need exp() or a slope, not
    identity or step. Empty when the JSON has no activation groups. Where the
    fused row timed ReLU and a copy interleaved with itself (beside), the
    ratios come from those times (marked *)."""
    out = []
    sizes = sorted({(dev, g.split(", ")[-1].rstrip("]")) for dev, g in groups
                    if g.startswith("activation[")})
    for dev, size in sizes:
        acts = {g[len("activation["):].split(",")[0]: (rows, (beside or {}).get((d, g), {}))
                for (d, g), rows in groups.items()
                if d == dev and g.startswith("activation[") and g.endswith(f", {size}]")}
        copy = acts.get("reference", ({}, {}))[0].get("copy")
        acts = {a: v for a, v in acts.items() if a in CLAIM_ACTIVATIONS}
        relu = acts.get("relu", ({}, {}))[0]
        if "stock fwd" not in relu:
            continue
        out.append(f"#### ReLU against the others, forward, {size} ({dev})\n")
        out.append("| activation | stock / stock ReLU | fused / fused ReLU | fused / copy |")
        out.append("| --- | ---: | ---: | ---: |")
        worst = {}
        for name, (rows, near) in sorted(acts.items(), key=lambda a: CLAIM_ACTIVATIONS.index(a[0])):
            near = near.get("fused fwd", {})
            pairs = {"stock": (near.get("stock fwd"), near.get("stock relu fwd")),
                     "fused": (rows.get("fused fwd"), near.get("relu fwd"))}
            cells = []
            for kind, (own, ref) in pairs.items():
                star = "*" if own and ref else ""
                if not star:  # not interleaved: the rows timed on their own
                    own, ref = rows.get(f"{kind} fwd"), relu.get(f"{kind} fwd")
                share = own / ref if own and ref else 0
                cells.append(f"{share:.2f}x{star}" if share else "")
                if share:
                    worst[kind] = max(worst.get(kind, (0, "")), (share, name))
            by_copy = ratio({**rows, "copy": copy or 0}, "fused fwd", "copy", {"fused fwd": near})
            out.append(f"| {name} | {cells[0]} | {cells[1]} | {_fmt_ratio(by_copy)} |")
        verdicts = [f"{kind}: {'holds' if share >= 6 else 'false'}, the costliest ({name}) takes "
                    f"{share:.2f}x ReLU's time" for kind, (share, name) in sorted(worst.items())]
        out.append(f"\n\"ReLU is 6x faster because it needs no exp()\", per operation: "
                   f"{'; '.join(verdicts)}.\n")
    return "\n".join(out)


def summary(groups, beside=None):
    """One line per group that has a stock and a fused row: fused / stock."""
    lines = []
    for (dev, group), rows in sorted(groups.items()):
        for stock_row, fused_row in (("stock", "fused"), ("stock fwd", "fused fwd"),
                                     ("stock bwd", "fused bwd")):
            if stock_row in rows and fused_row in rows:
                r = ratio(rows, fused_row, stock_row, (beside or {}).get((dev, group)))
                lines.append((dev, f"{group} {fused_row}", r[0]))
    return lines


def targets(groups, device="cuda", beside=None):
    """The headline checks: fused fwd+bwd speed-up over stock at batch 4096 per
    activation and shape, the Linear+ReLU+dropout block, and the elementwise
    kernels' bandwidth as a fraction of a device copy's, on the largest tensor."""
    lines = ["| check | stock / fused (speed-up) or % of copy bandwidth |", "| --- | ---: |"]
    for (dev, group), rows in sorted(groups.items()):
        if dev != device or "stock" not in rows or "fused" not in rows:
            continue
        if ("batch 4096" in group and "fwdbwd" in group) or group.startswith("mlp_step"):
            r = ratio(rows, "fused", "stock", (beside or {}).get((dev, group)))
            lines.append(f"| {group} | {1 / r[0]:.2f}x{'*' if r[1] else ''} |")
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


def bar_chart(groups, png, beside=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = summary(groups, beside)
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
    beside = load_beside(args.json, args.device)
    if args.targets:
        print(targets(groups, args.device or "cuda", beside))
        return 0
    print(markdown(groups, load_saved_bytes(args.json, args.device), beside))
    print(linear_act_matrix(groups, beside))
    print(relu_claim(groups, beside))
    png = bar_chart(groups, args.png or str(Path(args.json[0]).with_suffix(".png")), beside)
    if png:
        print(f"bar chart: {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
