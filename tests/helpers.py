"""Shared parameters and input makers for the tests."""

import math
import subprocess
import sys

import pytest
import torch

from mlpbench import _C

CUDA = torch.cuda.is_available()

# The CPU kernels' instruction-set levels, lowest first, and those this CPU runs.
SIMD_ORDER = ["baseline", "avx2", "avx512", "avx512_bf16"]
SIMD_LEVELS = SIMD_ORDER[: SIMD_ORDER.index(_C.best_simd_level()) + 1]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]

# Every differentiable activation, with the keyword arguments that select it.
GRAD_ACTIVATIONS = [
    ("identity", {}), ("sigmoid", {}), ("tanh", {}), ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 1.3}), ("gelu", {}),
    ("gelu", {"approximate": "tanh"}), ("silu", {}), ("maxout", {"pieces": 2}),
    ("maxout", {"pieces": 3}),
]
ELEMENTWISE = [a for a in GRAD_ACTIVATIONS if a[0] != "maxout"]


def reference_keeps(seed, offset, p, first, count):
    """The dropout decisions of elements first .. first + count - 1, written
    from the definition at the top of csrc/philox.h with ops.philox4x32: a
    16-bit draw per element, and its tie draw (block counter's top bit set)
    where the draw equals ceil(p * 2^32) >> 16."""
    from mlpbench import ops

    threshold = math.ceil(p * 2**32)
    above, tie_from = threshold >> 16, threshold & 0xFFFF
    key = (seed & 0xFFFFFFFF, seed >> 32)

    def draw(block, i):
        words = ops.philox4x32((block & 0xFFFFFFFF, block >> 32, offset & 0xFFFFFFFF,
                                offset >> 32), key)
        return (words[(i // 2) % 4] >> (16 * (i % 2))) & 0xFFFF

    keeps = []
    for i in range(first, first + count):
        d = draw(i // 8, i)
        keeps.append(d > above if d != above else draw(i // 8 | 1 << 63, i) >= tie_from)
    return keeps


def tie_probability(seed, offset, element, tie_from):
    """The p at which `element`'s draw equals ceil(p * 2^32) >> 16, with
    tie_from the threshold's low 16 bits: that element's decision then rests
    on its tie draw."""
    from mlpbench import ops

    block = element // 8
    words = ops.philox4x32((block & 0xFFFFFFFF, block >> 32, offset & 0xFFFFFFFF, offset >> 32),
                           (seed & 0xFFFFFFFF, seed >> 32))
    draw = (words[element // 2 % 4] >> 16 * (element % 2)) & 0xFFFF
    return (draw * 2**16 + tie_from) / 2**32


def cli_parse_error(capsys, *args):
    """The training CLI's refusal of args, in-process: (exit status, stderr).
    (A whole `python -m mlpbench.train` costs seconds of imports; the tests
    that run it check the process's exit.)"""
    from mlpbench.lecture import train as train_cli

    with pytest.raises(SystemExit) as exit_:
        train_cli.parse_args(list(args))
    return exit_.value.code, capsys.readouterr().err


def act_id(param):
    name, kw = param
    return name + "".join(f"-{v}" for v in kw.values())


def act_kwargs(kw):
    """The activation keywords without maxout's pieces (for elementwise ops)."""
    return {k: v for k, v in kw.items() if k != "pieces"}


def make_linear(n_in, n_out, name, kw, dtype=torch.float64, device="cpu", bias=True, batch=(7,),
                requires_grad=False):
    """Random x, weight, bias for a linear_act with the given activation."""
    rows = n_out * kw.get("pieces", 2) if name == "maxout" else n_out
    g = dict(dtype=dtype, device=device)
    x = torch.randn(*batch, n_in, **g)
    w = torch.randn(rows, n_in, **g) / max(n_in, 1) ** 0.5
    b = torch.randn(rows, **g) if bias else None
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_(requires_grad)
    return x, w, b


def collect_test_ids(path):
    """The test ids pytest collects from path (a benchmark module, say)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]
