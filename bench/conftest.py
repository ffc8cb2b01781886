"""Shared fixtures of the benchmark suite.

Each benchmark is one row of a group (benchmark.group); extra_info["row"]
says which (floor, stock, compile, fused, ...). On CUDA a timed call runs the
work `inner` times and synchronises once, so launch latency is measured but
not the host's wait; `python -m mlpbench.report` divides by `inner`.
"""

import os
import time

import pytest
import torch

from mlpbench.perf.fair_timing import fair_timing

# Fair baselines (see README and mlpbench/fair_timing.py), for stock and
# fused alike: denormals flushed, one inductor compile thread, freed memory
# kept in the heap.
fair_timing()

# torch.compile rows: one compiled graph per configuration, never the silent
# eager fallback that hitting the recompile limit gives.
for _name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _name):
        setattr(torch._dynamo.config, _name, 1024)

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]
CUDA_INNER = 20
# Activations whose torch.compile rows run ("all", or a comma-separated list):
# each row compiles a graph, which costs seconds; CI sets one.
COMPILE_ACTS = os.environ.get("MLPBENCH_BENCH_COMPILE", "all")


def skip_unless_compiled(name):
    if COMPILE_ACTS != "all" and name not in COMPILE_ACTS.split(","):
        pytest.skip(f"torch.compile rows of {name} are off (MLPBENCH_BENCH_COMPILE={COMPILE_ACTS})")


def _timed(fn, device):
    """fn as one timed call: on CUDA, CUDA_INNER runs and one synchronisation."""
    if device != "cuda":
        return fn

    def timed():
        for _ in range(CUDA_INNER):
            fn()
        torch.cuda.synchronize()

    return timed


@pytest.fixture
def measure(benchmark, pytestconfig):
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
        beside = {name: _timed(f, device) for name, f in (beside or {}).items()}
        for f in (fn, *beside.values()):
            f()  # warm up: allocator, cuBLAS handles, compiled graphs
        if device == "cuda":
            torch.cuda.synchronize()
        benchmark.extra_info["inner"] = CUDA_INNER if device == "cuda" else 1
        target = _timed(fn, device)
        if not beside:
            benchmark(target)
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

    return run
