"""A benchmark JSON as a report that answers at a glance: a summary first, one
short section per question with the project's targets beside the measured
values, then every group's table; and figures next to it (figures.py).

    pytest bench/ --benchmark-only --benchmark-json=BENCH.json
    python -m mlpbench.report BENCH.json [MORE.json ...] [--device cpu|cuda]
        [--dtype fp32|bf16] [--markdown REPORT.md] [--figures DIR] [--targets]

Ratios timed interleaved (summary.py) are marked *.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .summary import (INFERENCE_PEERS, ROW_ORDER, BenchmarkFileError, best_peer, load, ratio,
                      summary)

__all__ = ["details", "main", "markdown"]


def _met(values, test):
    if not values:
        return "no data"
    return "**yes**" if all(test(v) for v in values) else "no"


def _fmt_time(seconds):
    us = seconds * 1e6
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def _fmt(r, digits=2):
    return "" if r is None else f"{r[0]:.{digits}f}x" + ("*" if r[1] else "")


def _matrix_table(m, ref, digits=2):
    lines = ["| layer | " + " | ".join(m["acts"]) + " |", "| --- |" + " ---: |" * len(m["acts"])]
    for layer in m["rows"]:
        cells = [f"{m[ref][(layer, a)]:.{digits}f}" if (layer, a) in m[ref] else ""
                 for a in m["acts"]]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _linear_act_section(s):
    out = ["## Fused Linear+activation against stock, torch.compile and the floor\n",
           "Each cell is fused time over the other's (below 1.00: fused is faster), timed "
           "interleaved for stock and the floor. The floor is the layer's products alone, "
           "as the fused kernels run them (the forward's and the two backward products; "
           "no bias).\n"]
    checks = []
    for (dtype, mode), m in sorted(s["linear_act"].items()):
        for ref, title in (("stock", "fused / stock"), ("compile", "fused / torch.compile"),
                           ("floor", "fused / floor")):
            if m[ref]:
                out.append(f"### {title}, {mode}, {dtype}\n\n{_matrix_table(m, ref)}\n")
        if dtype == "fp32" and mode == "fwdbwd":
            checks.append(("fwd+bwd faster than stock, every cell", "< 1.00x",
                           list(m["stock"].values()), lambda v: v < 1.0))
            checks.append(("fwd+bwd faster than torch.compile, every cell", "< 1.00x",
                           list(m["compile"].values()), lambda v: v < 1.0))
            small = [v for (layer, _), v in m["stock"].items()
                     if layer.startswith(("256x10, batch 100", "256x256, batch 100"))]
            checks.append(("small layers (256->10, 256->256 at batch 100) over stock", "<= 0.70x",
                           small, lambda v: v <= 0.7))
        if dtype == "fp32" and mode == "fwd":
            checks.append(("forward over its product (the floor), every cell", "<= 1.05x",
                           list(m["floor"].values()), lambda v: v <= 1.05))
        if dtype == "bf16" and mode == "fwdbwd":
            big = [v for (layer, _), v in m["floor"].items() if "batch 4096" in layer]
            checks.append(("bf16 fwd+bwd at batch 4096 over its bf16 products", "<= 1.20x", big,
                           lambda v: v <= 1.2))
    rows = [f"| {name} | {target} | {_span(values)} | {_met(values, test)} |"
            for name, target, values, test in checks]
    head = "| target | wanted | measured (worst, best) | met |\n| --- | --- | --- | --- |"
    return "\n".join(out[:2] + [head] + rows + [""] + out[2:])


def _span(values):
    if not values:
        return ""
    return f"{max(values):.2f}x ... {min(values):.2f}x ({len(values)} cells)"


def _relu_section(s):
    out = ["## \"ReLU is 6x faster because it needs no exp()\"\n",
           "Each activation's time over ReLU's on the same tensor, stock beside fused; the "
           "forward also over a plain copy's (memory speed). Timed interleaved where marked in "
           "the details.\n"]
    for size, table in sorted(s["relu"].items()):
        out.append(f"### {size}\n")
        out.append("| activation | stock fwd | fused fwd | stock bwd | fused bwd | fused fwd / copy |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, cells in table.items():
            vals = [cells.get(k) for k in ("stock fwd", "fused fwd", "stock bwd", "fused bwd", "copy")]
            out.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.2f}x" for v in vals) + " |")
        worst = {k: max(((c.get(f"{k} fwd", 0), n) for n, c in table.items() if n != "relu"),
                        default=(0, "")) for k in ("stock", "fused")}
        verdicts = [f"{k}: {'holds' if v >= 6 else 'false'} (the costliest, {n}, takes {v:.2f}x ReLU)"
                    for k, (v, n) in worst.items() if v]
        out.append(f"\nAt {size}, per operation, the claim is " + "; ".join(verdicts) + ".\n")
    sixteen = s["relu"].get("16M", {})
    fused = [c.get("fused fwd") for n, c in sixteen.items() if c.get("fused fwd")]
    copy = [c.get("copy") for c in sixteen.values() if c.get("copy")]
    out.append("| target | wanted | measured (worst) | met |\n| --- | --- | --- | --- |")
    out.append(f"| 16M: every fused forward over fused ReLU | <= 1.30x | "
               f"{max(fused) if fused else 0:.2f}x | {_met(fused, lambda v: v <= 1.3)} |")
    out.append(f"| 16M: every fused forward over a copy | <= 1.30x | "
               f"{max(copy) if copy else 0:.2f}x | {_met(copy, lambda v: v <= 1.3)} |\n")
    return "\n".join(out)


def _group_lines(groups, rows):
    lines = ["| group | " + " | ".join(f"{r} / {ref}" for r, ref in rows) + " |",
             "| --- |" + " ---: |" * len(rows)]
    for g in groups:
        lines.append(f"| {g.name} | " + " | ".join(_fmt(ratio(g, r, ref)) for r, ref in rows) + " |")
    return "\n".join(lines)


def _dropout_section(s):
    groups = s["dropout"]
    if not groups:
        return ""
    fwd = [ratio(g, "fused", "stock")[0] for g in groups
           if g.parts[-1] == "fwd" and ratio(g, "fused", "stock")]
    block = [ratio(g, "fused", "stock")[0] for g in groups
             if g.parts[0].startswith("Linear+ReLU") and "batch 100" in g.name
             and ratio(g, "fused", "stock")]
    return "\n".join([
        "## Dropout\n",
        "| target | wanted | measured (worst) | met |\n| --- | --- | --- | --- |",
        f"| dropout forward over F.dropout | <= 0.25x | {max(fwd, default=0):.2f}x | "
        f"{_met(fwd, lambda v: v <= 0.25)} |",
        f"| Linear+ReLU+dropout fwd+bwd over stock (784->256, batch 100) | <= 0.60x | "
        f"{max(block, default=0):.2f}x | {_met(block, lambda v: v <= 0.6)} |\n",
        _group_lines(groups, [("fused", "stock")]), ""])


def _step_section(s):
    groups = s["step"]
    if not groups:
        return ""
    out = ["## The lecture network: forward+backward and the training step\n",
           "784-256-256-256-10, ReLU, dropout 0.3, cross-entropy (and Adam in the step). "
           "`fused` is the whole network as one op, `fused layer` one op per layer; the floor "
           "is the network's products (plus, in the step, one pass of fused Adam's kernel "
           "without `torch.optim`'s Python; fused steps update inside the backward). bf16: "
           "float32 parameters under `torch.autocast`, the floor in bf16.\n"]
    columns = ["floor", "stock", "compile", "fused layer", "fused"]
    if any("compile cudagraphs" in g.times for g in groups):
        columns.insert(3, "compile cudagraphs")
    out.append("| group | " + " | ".join(columns) + " | fused / stock | fused / floor |")
    out.append("| --- |" + " ---: |" * (len(columns) + 2))
    for g in groups:
        times = [(_fmt_time(g.times[r]) if r in g.times else "") for r in columns]
        out.append(f"| {g.name} | " + " | ".join(times) + f" | {_fmt(ratio(g, 'fused', 'stock'))}"
                   f" | {_fmt(ratio(g, 'fused', 'floor'))} |")
    targets = []
    for g in groups:
        batch = g.parts[1]
        small = batch == "batch 100"
        stock, floor = ratio(g, "fused", "stock"), ratio(g, "fused", "floor")
        step = g.kind == "mlp_step"
        floor_name = "the bf16 floor" if g.dtype == "bf16" else "the floor"
        if step:
            if g.dtype == "fp32":
                targets.append((f"{g.name}: over stock", "<= 0.80x", stock, 0.8))
            else:
                targets.append((f"{g.name}: over stock under autocast",
                                "<= 0.45x" if small else "<= 0.25x", stock, 0.45 if small else 0.25))
            limit = 1.2 if small else 1.08
            targets.append((f"{g.name}: over {floor_name}", f"<= {limit:.2f}x", floor, limit))
        else:
            limit = 1.2 if small else 1.05
            targets.append((f"{g.name}: over the products", f"<= {limit:.2f}x", floor, limit))
            if not small:
                targets.append((f"{g.name}: over the per-layer op", "<= 1.00x",
                                ratio(g, "fused", "fused layer"), 1.0))
    out.append("\n| target | wanted | measured | met |\n| --- | --- | --- | --- |")
    for name, wanted, r, limit in targets:
        out.append(f"| {name} | {wanted} | {_fmt(r)} | "
                   f"{'no data' if r is None else ('**yes**' if r[0] <= limit else 'no')} |")
    return "\n".join(out) + "\n"


def _inference_section(s):
    groups = s["inference"]
    if not groups:
        return ""
    out = ["## Inference: the lecture network against the fastest CPU peers\n",
           "Eval mode under `torch.inference_mode`: stock eager, `torch.compile` with freezing "
           "(inductor lowers Linear+ReLU to oneDNN's fused Linear+activation), a chain of "
           "oneDNN's fused Linear+activation calls (`mkldnn._linear_pointwise`), and fused "
           "(the whole-MLP op). bf16: model and input in bfloat16.\n",
           "| group | " + " | ".join(INFERENCE_PEERS) + " | fused | fused / best peer |",
           "| --- |" + " ---: |" * (len(INFERENCE_PEERS) + 2)]
    checks = []
    for g in groups:
        best = best_peer(g)
        cells = [_fmt_time(g.times[r]) if r in g.times else "" for r in [*INFERENCE_PEERS, "fused"]]
        verdict = "" if best is None else f"{best[0]:.2f}x{'*' if best[2] else ''} ({best[1]})"
        out.append(f"| {g.name} | " + " | ".join(cells) + f" | {verdict} |")
        if best is not None:
            checks.append((g, best[0]))
    out.append("\n| target | wanted | measured | met |\n| --- | --- | --- | --- |")
    for g, value in checks:
        out.append(f"| {g.name}: fused over the best peer | <= 1.00x | {value:.2f}x | "
                   f"{'**yes**' if value <= 1.0 else 'no'} |")
    latency = [f"{g.dtype}: fused "
               f"{g.times['fused'] * 1e6:.1f} us"
               + "".join(f", {r} {g.times[r] * 1e6:.1f} us" for r in INFERENCE_PEERS if r in g.times)
               for g in groups if g.parts[1] == "batch 1" and "fused" in g.times]
    if latency:
        out.append("\nBatch-1 latency: " + "; ".join(latency) + ".")
    return "\n".join(out) + "\n"


def _memory_section(s):
    if not s["memory"]:
        return ""
    out = ["## Memory kept for backward\n", "| group | stock | fused | fused / stock | wanted |",
           "| --- | ---: | ---: | ---: | --- |"]
    for g in s["memory"]:
        stock, fused = g.saved.get("stock"), g.saved.get("fused")
        share = f"{fused / stock:.2f}x" if stock and fused is not None else ""
        out.append(f"| {g.name} | {stock:,} B | {fused:,} B | {share} | <= 0.50x |"
                   if stock is not None and fused is not None else f"| {g.name} | | | | |")
    return "\n".join(out) + "\n"


def markdown(groups, device, title=None, figures=None):
    """The summary report of one device's rows (figures: {name: relative path})."""
    s = summary(groups, device)
    parts = [f"# {title or 'Benchmark results'} ({device})\n",
             "Summary first; every group's own table follows under Details.\n"]
    for name, caption in (figures or {}).items():
        parts.append(f"![{caption}]({name})\n")
    for section in (_step_section(s), _inference_section(s), _linear_act_section(s),
                    _relu_section(s), _dropout_section(s), _memory_section(s)):
        if section:
            parts.append(section)
    return "\n".join(parts)


def details(groups, device):
    """One table per group, rows in ROW_ORDER."""
    out = ["## Details: every group\n"]
    for g in sorted((g for g in groups.values() if g.device == device), key=lambda g: g.name):
        stock = "stock" if "stock" in g.times else "stock fwd"
        floor = "floor" if "floor" in g.times else "copy"
        out.append(f"#### {g.name}\n")
        memory = bool(g.saved)
        out.append("| row | time | vs stock | vs floor |" + (" saved for backward |" if memory else ""))
        out.append("| --- | ---: | ---: | ---: |" + (" ---: |" if memory else ""))
        for row in sorted(g.times, key=lambda r: (ROW_ORDER.index(r) if r in ROW_ORDER else 99, r)):
            ref = f"stock {row.split()[1]}" if row in ("fused fwd", "fused bwd") else stock
            if row == "fused autocast":
                ref = "stock autocast"
            extra = (f" {g.saved[row]:,} B |" if row in g.saved else " |") if memory else ""
            out.append(f"| {row} | {_fmt_time(g.times[row])} | {_fmt(ratio(g, row, ref))} | "
                       f"{_fmt(ratio(g, row, floor))} |{extra}")
        if g.beside:
            out.append("\n\\* timed interleaved with that row")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mlpbench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("json", nargs="+", help="files written by pytest --benchmark-json")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="this device's rows only (default: each device present)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], help="this dtype's rows only")
    parser.add_argument("--markdown", type=Path,
                        help="write the report here (summary, then details) instead of stdout")
    parser.add_argument("--figures", type=Path,
                        help="write the figures (PNG) into this directory and show them in the report")
    parser.add_argument("--title", help="the report's title")
    parser.add_argument("--targets", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)
    try:
        groups = load(args.json, args.device, args.dtype)
    except BenchmarkFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not groups:
        print(f"error: {', '.join(args.json)}: no mlpbench benchmark rows"
              + (f" for --device {args.device}" if args.device else "")
              + (f" and --dtype {args.dtype}" if args.dtype else ""), file=sys.stderr)
        return 2
    texts = []
    for device in sorted({g.device for g in groups.values()}):
        figures = {}
        if args.figures is not None:
            from .figures import write_figures

            base = args.markdown.parent if args.markdown else Path(".")
            for path, caption in write_figures(groups, device, args.figures).items():
                figures[str(Path(path).resolve().relative_to(base.resolve())
                            if Path(path).resolve().is_relative_to(base.resolve()) else path)] = caption
        texts.append(markdown(groups, device, args.title, figures)
                     + ("" if args.targets else "\n" + details(groups, device)))
    text = "\n".join(texts)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
        print(f"wrote {args.markdown}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
