"""Shared fixtures of the benchmark suite.

Each benchmark is one row of a group (benchmark.group); extra_info["row"]
says which (floor, stock, compile, fused, ...). On CUDA a timed call runs the
work `inner` times and synchronises once, so launch latency is measured but
not the host's wait; `python -m mlpbench.report` divides by `inner`.
"""

import ctypes
import os
import sys

import pytest
import torch

# Fair baselines (see README): no denormal slow-downs, no background compile
# workers stalling a 2-core machine.
torch.set_flush_denormal(True)
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")


def _keep_freed_memory():
    """Every op here, stock or fused, returns a fresh tensor. glibc hands
    blocks over 32 MB back to the kernel when they are freed, so each call on
    a 16M-element tensor then pays ~16k page faults (a 64 MB output cost 4-5x
    a copy into a reused one, swamping the kernel being timed). Keep freed
    memory in the heap instead, for stock and fused alike."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


_keep_freed_memory()

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


@pytest.fixture
def measure(benchmark):
    """measure(group, row, fn, device, **info): time fn() as `row` of `group`."""

    def run(group, row, fn, device, **info):
        benchmark.group = group
        benchmark.extra_info.update(row=row, device=device, **info)
        fn()  # warm up: allocator, cuBLAS handles, compiled graphs
        if device == "cuda":
            torch.cuda.synchronize()
            benchmark.extra_info["inner"] = CUDA_INNER

            def timed():
                for _ in range(CUDA_INNER):
                    fn()
                torch.cuda.synchronize()

            benchmark(timed)
        else:
            benchmark.extra_info["inner"] = 1
            benchmark(fn)

    return run
