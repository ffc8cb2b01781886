"""mlpbench.perf.fair_timing: the settings the benchmarks time stock and fused under.
Each check runs in a fresh interpreter, since the settings are process-wide."""

import subprocess
import sys
import textwrap

import pytest


def _run(code):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_fair_timing_flushes_denormals_and_keeps_one_compile_thread():
    out = _run("""
        import os, torch
        from mlpbench.perf.fair_timing import fair_timing
        os.environ.pop("TORCHINDUCTOR_COMPILE_THREADS", None)
        fair_timing()
        print(float(torch.tensor([1e-39]) * 1.0) == 0.0, os.environ["TORCHINDUCTOR_COMPILE_THREADS"])
    """)
    assert out == ["True", "1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
@pytest.mark.parametrize("keep", [False, True])
def test_keep_freed_memory_spares_the_page_faults_of_repeated_large_tensors(keep):
    # 64 MB = 16,384 pages. Without the setting every tensor faults them in
    # anew; with it the heap settles within ~10 calls (torch's 64-byte
    # aligned blocks do not always fit the last one freed) and then reuses.
    faults = [int(v) for v in _run(f"""
        import resource, torch
        from mlpbench.perf.fair_timing import keep_freed_memory
        if {keep}:
            keep_freed_memory()
        for _ in range(25):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            torch.ones(16 << 20)
            print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)]
    settled = faults[-5:]
    if keep:
        assert max(settled) < 1000, faults
    else:
        assert min(settled) > 15000, faults
