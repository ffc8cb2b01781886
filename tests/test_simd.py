"""The CPU kernels' vector code (csrc/cpu/simd.h) at every instruction-set
level this machine can run: vector math against float64, dropout keep bits
against their definition, and the ops against stock PyTorch."""

import math
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mlpbench._C as _C
from helpers import (ELEMENTWISE, SIMD_LEVELS, SIMD_ORDER, act_id, act_kwargs, reference_keeps,
                     tie_probability)
from mlpbench import ops
from mlpbench.reference import stock_activation, stock_linear_act




def _hard_inputs():
    """Every float32 region the vector math treats differently: tiny, around
    the polynomial and range-reduction boundaries, the exp overflow and
    underflow limits, infinities and NaN; 2M+ values, not a multiple of 16."""
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.3465, -0.3466, 88.5, 88.75,
                            89.5, -87.5, -88.5, -103.9, -104.5, -110.0, 9.0, -9.0,
                            math.inf, -math.inf, math.nan])
    return torch.cat([torch.linspace(-40, 40, 2_000_003), torch.randn(50_001) * 4, special])


@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_vector_math_against_float64(level, act):
    name, kw = act
    kw = act_kwargs(kw)
    x = _hard_inputs()
    got = ops.activation(x, name, **kw).double()
    want = stock_activation(x.double(), name, **kw)
    stock_error = (stock_activation(x, name, **kw).double() - want).abs()
    # Within a few float32 ulps of the truth, or no further off than stock's
    # float32 is (gelu's tanh form cancels in its negative tail by design).
    allowed = 4e-7 * want.abs() + 1e-7 + 2 * stock_error.nan_to_num(0.0)
    assert torch.equal(got.isnan(), want.isnan())
    both = ~want.isnan()
    assert torch.equal(got[both & want.isinf()], want[both & want.isinf()])
    finite = both & want.isfinite()
    worst = ((got - want).abs() - allowed)[finite].max().item()
    assert worst <= 0, f"{name}: off by {worst:.3g} beyond the allowance"



@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_vector_derivatives_against_float64(level, act):
    name, kw = act
    kw = act_kwargs(kw)
    torch.manual_seed(0)
    x = torch.randn(100_003) * 5
    g = torch.randn_like(x)

    def grad(impl, dtype):
        t = x.to(dtype, copy=True).requires_grad_()
        impl(t, name, **kw).backward(g.to(dtype))
        return t.grad.double()

    want = grad(stock_activation, torch.float64)
    got = grad(ops.activation, torch.float32)
    # As the forward test: a few ulps, or no further off than stock's float32
    # (gelu's tanh form cancels in its negative tail, 0.5 (1 + t) + ...).
    stock_error = (grad(stock_activation, torch.float32) - want).abs()
    allowed = 2e-6 * want.abs() + 2e-6 + 2 * stock_error
    worst = ((got - want).abs() - allowed).max().item()
    assert worst <= 0, f"{name}: off by {worst:.3g} beyond the allowance"


def test_levels_give_the_same_dropout_mask():
    x = torch.randn(3, 1001)  # rows that start off the 8-element Philox blocks
    masks = {}
    for lv in SIMD_LEVELS:
        _C.set_simd_level(lv)
        masks[lv] = ops.dropout(x, 0.4, seed=123456789, offset=7) != 0
    _C.set_simd_level(_C.best_simd_level())
    for lv in SIMD_LEVELS:
        assert torch.equal(masks[lv], masks[SIMD_LEVELS[0]]), lv


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_vector_philox_matches_the_definition(level, p):
    """Long spans take the 256-elements-at-once path (128 with AVX2); compare
    the op's mask with the definition (0.5: ceil(p * 2^32) a multiple of
    2^16, so a tie keeps)."""
    seed, offset, n = 0xDEADBEEF12345, 3, 1024
    mask = ops.dropout(torch.ones(n), p, seed=seed, offset=offset) != 0
    assert mask.tolist() == reference_keeps(seed, offset, p, 0, n)


def _keep_bits(seed, offset, p, group, groups):
    """_C.dropout_keeps' bits as a list of bools in element order."""
    bits = _C.dropout_keeps(seed, offset, p, group, groups)
    return [bool(word >> k & 1) for word in bits for k in range(64)]


@pytest.mark.parametrize("group", [0, 2**29 - 3], ids=["start", "carry"])
def test_every_levels_keep_bits_equal_the_definition(level, group):
    """The vector generators (256 elements at once with AVX-512, 128 with
    AVX2, odd group counts included) bit for bit against the definition, also
    across the 2^32-block boundary, where the counter's low word wraps."""
    seed, offset, p, groups = 0xDEADBEEF12345, 2**32 + 9, 0.3, 11
    assert _keep_bits(seed, offset, p, group, groups) == reference_keeps(
        seed, offset, p, 64 * group, 64 * groups)


def test_ties_take_the_second_draw(level):
    """p chosen so that element 77's draw equals ceil(p * 2^32) >> 16: its
    decision then rests on its tie draw, which the vector generators must
    fetch (from = 1 keeps it, from = 0xFFFF drops it, per the definition)."""
    seed, offset, element = 0xDEADBEEF12345, 5, 77
    decided = {}
    for tie_from in (1, 0xFFFF, 0):
        p = tie_probability(seed, offset, element, tie_from)
        want = reference_keeps(seed, offset, p, 0, 512)
        assert _keep_bits(seed, offset, p, 0, 8) == want, tie_from
        assert (ops.dropout(torch.ones(512), p, seed=seed, offset=offset) != 0).tolist() == want
        decided[tie_from] = want[element]
    assert decided == {1: True, 0xFFFF: False, 0: True}


def test_keep_bits_at_the_edges(level):
    """p = 1 keeps nothing, p = 0 everything (draws of 0 tie and keep)."""
    assert _keep_bits(1, 2, 1.0, 3, 5) == [False] * 320
    assert _keep_bits(1, 2, 0.0, 3, 5) == [True] * 320


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("act", ["relu", "gelu", "tanh"])
def test_linear_act_at_each_level(level, act, p):
    torch.manual_seed(0)
    x = torch.randn(37, 45, requires_grad=True)
    w = (torch.randn(19, 45) / 45**0.5).requires_grad_()
    b = torch.randn(19, requires_grad=True)
    y = ops.linear_act(x, w, b, act, dropout_p=p, seed=5)
    keep = (y != 0).float() / (1 - p) if p else torch.ones_like(y)
    ys = stock_linear_act(x, w, b, act) * keep
    torch.testing.assert_close(y, ys, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, w, b), g)
    want = torch.autograd.grad(ys, (x, w, b), g)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_set_simd_level_rejects_unknown_names():
    with pytest.raises(ValueError, match="level must be 'baseline', 'avx2', 'avx512' or 'avx512_bf16'"):
        _C.set_simd_level("sse9")


def test_set_simd_level_never_exceeds_the_cpu():
    _C.set_simd_level("avx512")
    assert SIMD_ORDER.index(_C.simd_level()) <= SIMD_ORDER.index(_C.best_simd_level())
    _C.set_simd_level(_C.best_simd_level())


def test_vector_math_polynomials_are_the_fitted_ones():
    """simd.h's exp and normal-CDF coefficients are what
    scripts/fit_polynomials.py derives (so neither is edited alone)."""
    root = Path(__file__).resolve().parents[1]
    fitted = subprocess.run([sys.executable, str(root / "scripts" / "fit_polynomials.py")],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    printed = re.findall(r"^(\w[\w ]*): (.*)$", fitted, re.M)
    header = (root / "csrc" / "cpu" / "simd.h").read_text()
    def as_float32(text):
        # The float literals as the compiler stores them: the fit's float64
        # solve may differ in the tenth digit between LAPACK builds.
        return [struct.unpack("f", struct.pack("f", float(v.rstrip("f"))))[0]
                for v in text.replace(",", " ").split()]

    for name, array in (("exp_reduced", "kE"), ("normcdf_tail R", "kR")):
        want = dict(printed)[name]
        got = re.search(array + r"\[\] = \{([^}]*)\}", header).group(1)
        assert as_float32(got) == as_float32(want), (name, got, want)


def _full_range():
    """Every float32 magnitude, both signs: denormals, 1e-30 ... 3e38 in steps
    of about 2% (the exponents all the range reductions see), the largest
    float, infinities and NaN."""
    tiny = torch.tensor([1e-45, 1e-42, 1e-40, 1.1754942e-38])  # denormals, largest denormal
    mags = torch.cat([tiny, torch.logspace(-30, 38.5, 8000), torch.tensor([3.4028235e38])])
    return torch.cat([mags, -mags, torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan])])


def _check_range(x, got, want, stock, absolute=0.0):
    """got (ours, float32) against the float64 truth `want` and stock's float32:
    - where the truth rounds to 0, +-1 or +-inf in float32 (saturated sigmoid
      and tanh included), exactly that;
    - where it is a normal float, within 2e-6 relative, or twice stock's own
      error, plus `absolute`; where it is denormal, within the smallest normal;
    - at a NaN input, what stock gives (NaN, or for ReLU's gradient the
      gradient passed on); where float64 autograd itself gives NaN for an
      infinite input (inf * 0), nothing is asserted."""
    got, want, stock = got.double(), want.double(), stock.double()
    nan_in = x.isnan()
    assert torch.equal(got[nan_in].nan_to_num(7.0), stock[nan_in].nan_to_num(7.0)), "at NaN"
    known = ~want.isnan()
    assert not got[known].isnan().any(), f"NaN at {x[known & got.isnan()][:5].tolist()}"
    rounded = want.float().double()
    exact = known & ((rounded == 0) & (want == 0) | rounded.isinf() | (rounded.abs() == 1))
    bad = exact & (got != rounded)
    assert not bad.any(), f"at {x[bad][:5].tolist()}: {got[bad][:5].tolist()}, want {rounded[bad][:5].tolist()}"
    smallest_normal = 1.1754944e-38
    rest = known & ~exact
    allowed = torch.where(want.abs() < smallest_normal, torch.full_like(want, smallest_normal),
                          2e-6 * want.abs() + 2 * (stock - want).abs().nan_to_num(0.0, 0.0, 0.0) + absolute)
    off = rest & ((got - want).abs() > allowed)
    assert not off.any(), (f"at {x[off][:5].tolist()}: {got[off][:5].tolist()}, want "
                           f"{want[off][:5].tolist()}, stock {stock[off][:5].tolist()}")


def _truth(t, name, **kw):
    """The float64 truth: stock's float64, except GELU's two forms, which
    stock writes as 0.5 x (1 + erf or tanh), cancelling in the negative tail
    even in float64; here as x Phi(x) with Phi from erfc, and x sigmoid(2u)."""
    if name == "gelu" and kw.get("approximate", "none") == "none":
        return t * 0.5 * torch.special.erfc(-t / math.sqrt(2))
    if name == "gelu":
        return t * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (t + 0.044715 * t**3))
    return stock_activation(t, name, **kw)


@pytest.mark.parametrize("act", ELEMENTWISE, ids=act_id)
def test_full_float_range_at_every_level(level, act):
    """Forward and derivative over the whole float32 range, against float64
    and stock, at every instruction-set level (the AVX2 and baseline builds
    once gave silu' = 597 at x = 1e10: a reciprocal an ulp short of 1)."""
    name, kw = act
    kw = act_kwargs(kw)
    x = _full_range()
    _check_range(x, ops.activation(x, name, **kw), _truth(x.double(), name, **kw),
                 stock_activation(x, name, **kw))

    def grad(impl, dtype):
        t = x.to(dtype, copy=True).requires_grad_()
        (g,) = torch.autograd.grad(impl(t, name, **kw), t, torch.ones_like(t))
        return g

    # A derivative from float32 terms of order 1 (a saved output y, as in
    # ELU's y + alpha, or gelu's Phi + x phi) resolves no finer than an ulp
    # or two of those terms: an absolute 2^-22 (times alpha for ELU).
    _check_range(x, grad(ops.activation, torch.float32), grad(_truth, torch.float64),
                 grad(stock_activation, torch.float32),
                 absolute=2**-22 * max(1.0, kw.get("alpha", 1.0)))
