"""Shared fixtures and settings of the benchmark suite.

Each benchmark is one row of a group (benchmark.group); extra_info["row"]
says which (floor, stock, compile, fused, ...). On CUDA a timed call runs the
work `inner` times and synchronises once, so launch latency is measured but
not the host's wait; `python -m mlpbench.report` divides by `inner`.

Presets (MLPBENCH_BENCH_PRESET):
- full (default): every group; torch.compile rows where they answer a
  question, ReLU and GELU at the lecture's shapes (MLPBENCH_BENCH_COMPILE=all
  for every one, or a comma-separated list of activations);
- quick: the questions' headline groups (the lecture network, the ReLU
  question, Linear+ReLU/GELU at 784->256, inference), for a first look;
- smoke: every row once at smoke-size shapes (CI, with --benchmark-disable).

MLPBENCH_SIMD=avx2 (or baseline, avx512) runs the CPU kernels at that
instruction set, as on a CPU that has no better one; each row records the
level it ran at (extra_info["simd"]).
"""

import json
import os
import time

import pytest
import torch

from mlpbench import ops
from mlpbench.perf.fair_timing import fair_timing

# Fair baselines (see README and mlpbench/fair_timing.py), for stock and
# fused alike: denormals flushed, one inductor compile thread, freed memory
# kept in the heap.
fair_timing()
if os.environ.get("MLPBENCH_SIMD"):
    ops._C.set_simd_level(os.environ["MLPBENCH_SIMD"])
SIMD = ops._C.simd_level()

# torch.compile rows: one compiled graph per configuration, never the silent
# eager fallback that hitting the recompile limit gives.
for _name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _name):
        setattr(torch._dynamo.config, _name, 1024)

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]
CUDA_INNER = 20
PRESET = os.environ.get("MLPBENCH_BENCH_PRESET", "full")
if PRESET not in ("full", "quick", "smoke"):
    raise pytest.UsageError(f"MLPBENCH_BENCH_PRESET must be full, quick or smoke, got {PRESET!r}")
SMOKE = PRESET == "smoke"
# Activations whose torch.compile rows run ("all", or a comma-separated list):
# each row compiles a graph, which costs seconds.
COMPILE_ACTS = os.environ.get("MLPBENCH_BENCH_COMPILE", "relu,gelu")
# The lecture's layer shapes, where compile rows answer a question.
LECTURE_SHAPES = {(784, 256), (256, 256), (256, 10)}
# quick: the node ids it keeps (substrings, all of one entry).
QUICK = [
    ("bench_mlp_step.py", "-cpu-" if not torch.cuda.is_available() else ""),
    ("bench_activation.py", "size1-fp32-"),
    ("bench_activation.py::test_reference_rows", "size1"),
    ("bench_linear_act.py", "784x256-", "-relu-fwdbwd-fp32-"),
    ("bench_linear_act.py", "784x256-", "-gelu-fwdbwd-fp32-"),
    ("bench_inference.py", ""),
]


def smoke(full, small):
    """A benchmark's size: `small` in the smoke preset, else `full`."""
    return small if SMOKE else full


def pytest_collection_modifyitems(config, items):
    if PRESET != "quick":
        return
    keep = [i for i in items if any(all(part in i.nodeid for part in entry) for entry in QUICK)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


# A file each row's result is appended to as soon as it is measured (one
# JSON line, pytest-benchmark's fields), so that a run stopped early keeps
# every finished row: pytest-benchmark writes its JSON only at the end.
STREAM = os.environ.get("MLPBENCH_BENCH_STREAM")


def product(device):
    """a @ b as the fused kernels compute their products, for the floor rows:
    on the CPU with the library mlpbench runs float32 products with (MKL or
    oneDNN, mlpbench._C.fp32_matmul), so that a floor never times a slower
    product than fused runs; elsewhere torch.mm. (No bias: not a product.)"""
    return ops._C.cpu_mm if device == "cpu" else torch.mm


def skip_unless_compiled(name, shape=None):
    """torch.compile rows of activation `name` (at layer `shape`) run where
    they answer a question, unless MLPBENCH_BENCH_COMPILE says otherwise."""
    if COMPILE_ACTS == "all":
        return
    if name not in COMPILE_ACTS.split(","):
        pytest.skip(f"torch.compile rows of {name} are off (MLPBENCH_BENCH_COMPILE={COMPILE_ACTS})")
    if shape is not None and tuple(shape) not in LECTURE_SHAPES:
        pytest.skip("torch.compile rows at the lecture's shapes (MLPBENCH_BENCH_COMPILE=all for all)")


def _timed(fn, device):
    """fn as one timed call: on CUDA, CUDA_INNER runs and one synchronisation."""
    if device != "cuda":
        return fn

    def timed():
        for _ in range(CUDA_INNER):
            fn()
        torch.cuda.synchronize()

    return timed


def _stream(benchmark, request):
    if not STREAM or benchmark.stats is None:
        return
    record = {"group": benchmark.group, "name": request.node.name,
              "fullname": request.node.nodeid, "stats": {"min": benchmark.stats.stats.min},
              "extra_info": benchmark.extra_info}
    with open(STREAM, "a") as out:
        out.write(json.dumps(record) + "\n")


@pytest.fixture
def measure(benchmark, pytestconfig, request):
    """measure(group, row, fn, device, beside=None, **info): time fn() as `row`
    of `group`.

    beside: {row: fn} of other rows of the group (stock, floor, ...) to time
    interleaved with this one: each round runs every one of them once, timed,
    then fn. Their fastest times go to extra_info["beside"], and the report
    takes this row's ratios to them from that, not from rows run at another
    moment (this machine's speed drifts by up to 2x over a run: the same
    floor's fastest time differed 2x between groups of one run)."""

    def run(group, row, fn, device, beside=None, **info):
        benchmark.group = group
        benchmark.extra_info.update(row=row, device=device, **info)
        if device == "cpu":
            benchmark.extra_info["simd"] = SIMD
        beside = {name: _timed(f, device) for name, f in (beside or {}).items()}
        for f in (fn, *beside.values()):
            f()  # warm up: allocator, cuBLAS handles, compiled graphs
        if device == "cuda":
            torch.cuda.synchronize()
        benchmark.extra_info["inner"] = CUDA_INNER if device == "cuda" else 1
        target = _timed(fn, device)
        if not beside:
            benchmark(target)
            _stream(benchmark, request)
            return
        fastest = {name: float("inf") for name in beside}

        def time_beside():
            for name, f in beside.items():
                start = time.perf_counter()
                f()
                fastest[name] = min(fastest[name], time.perf_counter() - start)

        # As many rounds as fit the benchmark's time budget (--benchmark-max-time)
        # for each of the interleaved rows: a round runs them all.
        start = time.perf_counter()
        time_beside()
        target()
        per_round = time.perf_counter() - start
        budget = float(pytestconfig.getoption("benchmark_max_time")) * (1 + len(beside))
        rounds = max(int(pytestconfig.getoption("benchmark_min_rounds")),
                     min(1000, int(budget / max(per_round, 1e-9))))
        benchmark.pedantic(target, setup=time_beside, rounds=rounds, warmup_rounds=1)
        if all(t < float("inf") for t in fastest.values()):
            benchmark.extra_info["beside"] = fastest
        _stream(benchmark, request)

    return run
