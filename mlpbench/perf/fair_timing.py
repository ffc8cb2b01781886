"""The process settings under which stock and fused timings are comparable,
and lower_quartile_us, the interleaved timing of the scripts.

Used by the benchmark suite (bench/conftest.py) and scripts/; call
fair_timing() before the first op runs (before the thread pool starts).
"""

import ctypes
import os
import sys
import time

import torch


def keep_freed_memory():
    """Every op here, stock or fused, returns a fresh tensor. glibc hands
    blocks over 32 MB back to the kernel when they are freed (and smaller
    ones when the heap's top is trimmed), so each call on a large tensor then
    pays its page faults again (a 64 MB output cost 4-5x a copy into a reused
    one, swamping the kernel being timed). Keep freed memory in the heap
    instead, for stock and fused alike. (torch's 64-byte aligned blocks do
    not always fit the block freed last: the heap grows for the first ~10
    calls of a size, then reuses; benchmarks reach that in their warm-up.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def fair_timing():
    """No denormal slow-downs (late-training weights make them, and they cost
    20-60% an epoch here), no background inductor compile workers stalling a
    2-core machine, freed memory kept (keep_freed_memory)."""
    torch.set_flush_denormal(True)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    keep_freed_memory()


def lower_quartile_us(fns, seconds):
    """{name: lower-quartile seconds per call * 1e6} of fns ({name: callable}),
    the calls taking turns for `seconds` (and at least 5 rounds), so that the
    machine's drift lands on all of them alike."""
    for fn in fns.values():
        fn()  # warm up
    times = {name: [] for name in fns}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(map(len, times.values())) < 5:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 4] * 1e6 for name, t in times.items()}
