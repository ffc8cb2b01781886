"""A benchmark JSON read into groups, and the summary the report and its
figures show, as data: each group's rows (seconds per call), the ratios
between them (interleaved where timed so), and the answers to the project's
questions (report.py renders them; figures.py plots them).

Each row's time is its fastest round (on a shared 2-core machine noise only
ever adds time). A fused row that timed its stock row and the floor
interleaved with itself (extra_info["beside"], bench/conftest.py) takes its
ratios from those: the machine's speed drifts between rows run one after
another.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CLAIM_ACTIVATIONS", "BenchmarkFileError", "Group", "best_peer", "load", "ratio",
           "summary"]

# The activations the lecture compares with ReLU (ReLU itself first).
CLAIM_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "silu"]

# The order rows appear in within a group.
ROW_ORDER = ["floor", "copy", "relu fwd", "stock", "stock bf16", "stock autocast", "stock fwd",
             "stock bwd", "compile", "compile cudagraphs", "compile freezing", "onednn", "fused layer", "fused", "fused autocast", "fused fwd",
             "fused bwd", "cublaslt"]


@dataclass
class Group:
    """One benchmark group: its kind (linear_act, activation, ...), the parts
    of its name, dtype, and its rows' times (seconds per call)."""
    device: str
    name: str
    kind: str
    parts: list
    dtype: str
    times: dict = field(default_factory=dict)
    beside: dict = field(default_factory=dict)  # row -> {other row: seconds}, interleaved
    saved: dict = field(default_factory=dict)  # row -> bytes saved for backward



def _parse(name):
    kind, inside = name.split("[", 1)
    parts = inside.rstrip("]").split(", ")
    dtype = "bf16" if parts[-1] == "bf16" else "fp32"
    return kind, parts[:-1] if dtype == "bf16" else parts, dtype


class BenchmarkFileError(ValueError):
    """A file that is not a usable benchmark JSON; the message names it and says why."""


def _lines(path, text):
    """A stream of rows (bench/conftest.py: MLPBENCH_BENCH_STREAM), one JSON
    object a line; a last line cut short by a stopped run is left out."""
    rows = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            if number == len(lines):
                break
            raise BenchmarkFileError(f"{path}: line {number} is not valid JSON ({e})") from None
    return {"benchmarks": rows}


def _read(path):
    """The benchmarks of a pytest-benchmark JSON file (or a .jsonl stream of
    rows), checked."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise BenchmarkFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not text.strip():
        raise BenchmarkFileError(f"{path}: is empty, not a pytest-benchmark JSON file")
    try:
        data = _lines(path, text) if str(path).endswith(".jsonl") else json.loads(text)
    except ValueError as e:
        raise BenchmarkFileError(f"{path}: is not valid JSON ({e}); truncated?") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BenchmarkFileError(f"{path}: is not a pytest-benchmark JSON file (no "
                                 "'benchmarks' list)")
    for bench in data["benchmarks"]:
        name = bench.get("fullname") or bench.get("name") if isinstance(bench, dict) else None
        try:
            fastest, group = bench["stats"]["min"], bench["group"]
        except (KeyError, TypeError):
            raise BenchmarkFileError(f"{path}: benchmark {name or '?'} has no group or no "
                                     "stats.min time") from None
        if not isinstance(fastest, (int, float)) or not fastest > 0 or not isinstance(group, str):
            raise BenchmarkFileError(f"{path}: benchmark {name or '?'} has a time of {fastest!r} "
                                     "s; times must be positive numbers")
    return data["benchmarks"]


def load(paths, device=None, dtype=None):
    """{(device, group name): Group} of every mlpbench row in the JSON files;
    BenchmarkFileError for a file that is not a usable benchmark JSON."""
    groups = {}
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        for bench in _read(path):
            info = bench.get("extra_info", {})
            dev = info.get("device", "cpu")
            if "row" not in info or "[" not in bench["group"] or (device and dev != device):
                continue
            kind, parts, dt = _parse(bench["group"])
            if dtype and dt != dtype:
                continue
            key = (dev, bench["group"])
            group = groups.setdefault(key, Group(dev, bench["group"], kind, parts, dt))
            inner = info.get("inner", 1)
            group.times[info["row"]] = bench["stats"]["min"] / inner
            beside = info.get("beside") or {}
            if any(not (isinstance(t, (int, float)) and t > 0) for t in beside.values()):
                raise BenchmarkFileError(f"{path}: benchmark {bench['group']} {info['row']} has "
                                         "an interleaved time that is not positive")
            if beside:
                group.beside[info["row"]] = {r: t / inner for r, t in beside.items()}
            if "saved_bytes" in info:
                group.saved[info["row"]] = info["saved_bytes"]
    return groups


def ratio(group, row, ref):
    """(group's row time / its ref time, whether timed interleaved), or None
    where either is missing; interleaved times win."""
    if row not in group.times:
        return None
    near = group.beside.get(row, {})
    if ref in near:
        return group.times[row] / near[ref], True
    if group.times.get(ref):
        return group.times[row] / group.times[ref], False
    return None





# --- the summary: one section per question ---------------------------------------

def _linear_act_matrices(groups, device):
    """{(dtype, mode): {"rows": [layer labels], "acts": [...], "stock"/"floor"/
    "compile": {(layer, act): ratio}}} for the linear_act groups."""
    out = {}
    for g in groups.values():
        if g.kind != "linear_act" or g.device != device or "fused" not in g.times:
            continue
        shape, batch, act, mode = g.parts
        layer = f"{shape}, {batch}"
        m = out.setdefault((g.dtype, mode), {"rows": [], "acts": [], "stock": {}, "floor": {},
                                             "compile": {}})
        if layer not in m["rows"]:
            m["rows"].append(layer)
        if act not in m["acts"]:
            m["acts"].append(act)
        for ref in ("stock", "floor", "compile"):
            r = ratio(g, "fused", ref)
            if r is not None:
                m[ref][(layer, act)] = r[0]
    for m in out.values():
        m["rows"].sort(key=lambda layer: (int(layer.split("batch ")[1]), layer))
    return out


def _relu_claim(groups, device):
    """{size: {activation: {"stock fwd", "fused fwd", "stock bwd", "fused bwd",
    "copy": time / ReLU's (or a copy's)}}} from the float32 activation groups."""
    out = {}
    by_size = defaultdict(dict)
    for g in groups.values():
        if g.kind == "activation" and g.device == device and g.dtype == "fp32":
            by_size[g.parts[1]][g.parts[0]] = g
    for size, acts in by_size.items():
        relu = acts.get("relu")
        if relu is None:
            continue
        table = {}
        for name in CLAIM_ACTIVATIONS:
            g = acts.get(name)
            if g is None:
                continue
            cells = {}
            near = g.beside.get("fused fwd", {})
            # Each activation's own time from the same rounds as ReLU's (the
            # fused row's own timing follows a cache-flushing copy; older runs
            # lack the beside entry and fall back to it).
            fused_own = near.get("fused fwd", g.times.get("fused fwd"))
            for kind in ("stock", "fused"):
                ref = near.get("stock relu fwd" if kind == "stock" else "relu fwd")
                own = near.get("stock fwd") if kind == "stock" else fused_own
                if not (own and ref):
                    own, ref = g.times.get(f"{kind} fwd"), relu.times.get(f"{kind} fwd")
                if own and ref:
                    cells[f"{kind} fwd"] = own / ref
                own_bwd, ref_bwd = g.times.get(f"{kind} bwd"), relu.times.get(f"{kind} bwd")
                if own_bwd and ref_bwd:
                    cells[f"{kind} bwd"] = own_bwd / ref_bwd
            # (Over the copy: the row's own timing, which, like the copy's,
            # writes an output that is not in cache.)
            if near.get("copy") and g.times.get("fused fwd"):
                cells["copy"] = g.times["fused fwd"] / near["copy"]
            table[name] = cells
        out[size] = table
    return out


INFERENCE_PEERS = ["stock", "compile freezing", "onednn"]


def best_peer(group):
    """(fused time / the fastest peer's, that peer, interleaved?) of an
    inference group, or None; a peer timed beside fused counts at that time."""
    if "fused" not in group.times:
        return None
    near = group.beside.get("fused", {})
    peers = {r: near.get(r, group.times.get(r)) for r in INFERENCE_PEERS}
    peers = {r: t for r, t in peers.items() if t}
    if not peers:
        return None
    peer = min(peers, key=peers.get)
    return group.times["fused"] / peers[peer], peer, peer in near


def _rows_of(groups, device, kind, dtype=None):
    return sorted((g for g in groups.values() if g.kind == kind and g.device == device
                   and (dtype is None or g.dtype == dtype)), key=lambda g: g.name)


def summary(groups, device):
    """Everything the summary shows, as data (markdown() and the figures
    render it; the tests compare the two)."""
    return {
        "device": device,
        "linear_act": _linear_act_matrices(groups, device),
        "relu": _relu_claim(groups, device),
        "dropout": _rows_of(groups, device, "dropout"),
        "step": _rows_of(groups, device, "mlp_step") + _rows_of(groups, device, "mlp"),
        "inference": _rows_of(groups, device, "inference"),
        "memory": _rows_of(groups, device, "memory"),
    }
