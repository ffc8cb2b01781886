"""Derives the polynomial coefficients of the vector math in csrc/cpu/simd.h.

Each is a least-squares fit on Chebyshev nodes, weighted for relative error,
in float64 (close to the minimax fit); the script prints the coefficients,
constant term first, and the relative error of their float32 evaluation by
Horner's rule on a fine grid, as the kernels evaluate them.

- exp_reduced: exp(r) on |r| <= ln2 / 2, degree 6 (~1e-7 in float32, about
  float32's own rounding; the fit itself is within 2e-9).
- normcdf_tail: erfc(z) = exp(-z^2) R(t) with t = 1 / (1 + C z); R(t) =
  erfcx(z) is smooth on t in [0.188, 1] (z in [0, 10.25]: normcdf_tail caps
  |x| at 14.5, z = |x| / sqrt 2; beyond it exp(-z^2) underflows float32).
  C = 0.42 lets degree 8 reach 2.8e-7, what degree 9 reached with the
  classic C = 1/2 (degree 8 there: 4.9e-7; C from 0.36 to 0.46 scanned).

    python scripts/fit_polynomials.py
"""

import math

import torch

NODES = 4000
ERFCX_C = 0.42


def fit(fn, lo, hi, degree):
    """Coefficients c of sum c_i v^i ~ fn(v) for v in [lo, hi]; returns (c,
    the largest relative error of the float32 evaluation)."""
    k = torch.arange(NODES, dtype=torch.float64)
    v = (lo + hi) / 2 + (hi - lo) / 2 * torch.cos(torch.pi * (k + 0.5) / NODES)
    want = fn(v)
    powers = torch.stack([v**i for i in range(degree + 1)], 1)
    coef = torch.linalg.lstsq(powers / want[:, None], torch.ones_like(want)[:, None]).solution[:, 0]
    grid = torch.linspace(lo, hi, 400_001, dtype=torch.float64).float()
    acc = torch.full_like(grid, float(coef[-1]))
    for c in coef.float().flip(0)[1:]:
        acc = acc * grid + c
    error = (acc.double() / fn(grid.double()) - 1).abs().max().item()
    return coef, error


def report(name, coef, error):
    print(f"{name}: " + ", ".join(f"{float(c):.9e}f" for c in coef))
    print(f"  max relative error of the float32 evaluation: {error:.2e}")


if __name__ == "__main__":
    half_ln2 = math.log(2) / 2
    report("exp_reduced", *fit(torch.exp, -half_ln2, half_ln2, 6))
    # R(t) = erfcx(z) with z = (1 - t) / (C t), for z in [0, 10.25].
    report("normcdf_tail R", *fit(lambda t: torch.special.erfcx((1 - t) / (ERFCX_C * t)),
                                  1 / (1 + ERFCX_C * 10.25), 1.0, 8))
