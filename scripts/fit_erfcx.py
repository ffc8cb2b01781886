"""Derives the coefficients of m_normcdf's polynomial in csrc/cpu/simd.h.

erfc(z) = exp(-z^2) R(t) with t = 1 / (1 + z / 2); R(t) = erfcx(z) is smooth
on t in [0.163, 1] (z in [0, 10.25]: m_normcdf caps |x| at 14.5, z = |x| /
sqrt 2; beyond it exp(-z^2) underflows float32). Degree 9 is within 10% of
degree 10's error, which float32's own rounding dominates.
A degree-9 least-squares fit on Chebyshev nodes, weighted for relative
error, in float64; prints the coefficients and the relative error of the
float32 evaluation (Horner, as the kernel does it).

    python scripts/fit_erfcx.py
"""

import torch

DEGREE, ZMAX, NODES = 9, 10.25, 4000


def fit():
    torch.set_default_dtype(torch.float64)
    tmin = 1 / (1 + ZMAX / 2)
    k = torch.arange(NODES)
    t = (tmin + 1) / 2 + (1 - tmin) / 2 * torch.cos(torch.pi * (k + 0.5) / NODES)
    r = torch.special.erfcx(2 * (1 - t) / t)
    powers = torch.stack([t**i for i in range(DEGREE + 1)], 1)
    coef = torch.linalg.lstsq(powers / r[:, None], torch.ones_like(r)[:, None]).solution[:, 0]
    # The float32 evaluation on a fine grid of z.
    z = torch.linspace(0, ZMAX, 400_001)
    tf = (1 / (1 + z / 2)).float()
    acc = torch.full_like(tf, float(coef[-1]))
    for c in coef.float().flip(0)[1:]:
        acc = acc * tf + c
    error = (acc.double() / torch.special.erfcx(z) - 1).abs().max().item()
    return coef, error


if __name__ == "__main__":
    coef, error = fit()
    print(", ".join(f"{float(c):.9e}f" for c in coef))
    print(f"max relative error of the float32 evaluation: {error:.2e}")
