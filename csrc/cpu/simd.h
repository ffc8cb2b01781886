// A float vector for the CPU kernels, and the vector math the activations
// need (exp, expm1, tanh, sigmoid, the normal CDF), so that the functors of
// activations.h run unchanged on it: each functor is written once and
// instantiated for float, double and VFloatT<W>.
//
// VFloatT<W> is a GCC/Clang vector-extension type of W floats, so the same
// source compiles for any instruction set. simd_dispatch() runs a kernel body
// inside a function compiled for AVX-512 (W = 16) or AVX2 (W = 8) when the CPU
// has them (checked at run time) and for the x86-64 baseline (W = 4)
// otherwise, so the extension never executes an instruction the machine lacks.
//
// Accuracy: tests/test_simd.py checks every activation built on these, at
// every instruction-set level, against float64 on 2M+ inputs: within 4e-7
// relative (about 3 ulp) plus 1e-7 absolute, or no further off than twice
// stock's float32 result is. The normal CDF's tail takes exp(-z^2) of a
// rounded z^2, which limits its relative accuracy there, as in stock's erf.
#pragma once

#include <cstdint>
#include <cstring>

#include "../philox.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MLPB_SIMD_DISPATCH 1
#include <immintrin.h>
#define MLPB_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi,bmi2")))
#endif

namespace mlpbench::simd {

// W lanes: 16 in the AVX-512 build, 8 in the AVX2 one and 4 in the x86-64
// baseline (SSE2), so that a vector is one register of the instruction set it
// is compiled for. (Wider than that, GCC compiles comparisons and selects
// lane by lane: docs/cpu-tuning.md.)
// (One specialisation per width: GCC ignores vector_size on a typedef that
// depends on a template parameter.)
template <int W> struct VecTypes;
#define MLPB_VEC_TYPES(W)                                        \
  template <> struct VecTypes<W> {                               \
    typedef float F __attribute__((vector_size(W * 4)));         \
    typedef int32_t I __attribute__((vector_size(W * 4)));       \
    typedef uint32_t U __attribute__((vector_size(W * 4)));      \
    typedef uint16_t H __attribute__((vector_size(W * 2)));      \
  };
MLPB_VEC_TYPES(4)
MLPB_VEC_TYPES(8)
MLPB_VEC_TYPES(16)
#undef MLPB_VEC_TYPES

template <int W>
struct VFloatT {
  using F = typename VecTypes<W>::F;
  using I = typename VecTypes<W>::I;
  using U = typename VecTypes<W>::U;
  static constexpr int64_t kWidth = W;
  F v;

  VFloatT() = default;
  VFloatT(float s) : v(F{} + s) {}  // NOLINT: broadcast, as T(1) in a functor
  explicit VFloatT(F x) : v(x) {}

  // The first `count` <= W lanes from p; the others are 0.
  static VFloatT load(const float* p, int64_t count) {
    VFloatT r;
    if (count == kWidth) {
      std::memcpy(&r.v, p, sizeof r.v);
    } else {
      r.v = F{};
      std::memcpy(&r.v, p, count * sizeof(float));
    }
    return r;
  }
  void store(float* p, int64_t count) const {
    if (count == kWidth) {
      std::memcpy(p, &v, sizeof v);  // constant size: one vector store
    } else {
      std::memcpy(p, &v, count * sizeof(float));
    }
  }
};

template <int W> using IntV = typename VFloatT<W>::I;

// The result of a lane-wise comparison. Generic: an integer vector, all
// ones where true. The 16-lane (AVX-512) build overloads comparisons and
// selects below with a 16-bit mask register instead.
template <int W>
struct Mask {
  IntV<W> m;
};
#ifdef MLPB_SIMD_DISPATCH
template <> struct Mask<16> {
  __mmask16 k;
};
#endif

#define MLPB_VFLOAT_OP(op)                                     \
  template <int W>                                             \
  inline VFloatT<W> operator op(VFloatT<W> a, VFloatT<W> b) {  \
    return VFloatT<W>(a.v op b.v);                             \
  }
MLPB_VFLOAT_OP(+)
MLPB_VFLOAT_OP(-)
MLPB_VFLOAT_OP(*)
MLPB_VFLOAT_OP(/)
#undef MLPB_VFLOAT_OP
template <int W> inline VFloatT<W> operator-(VFloatT<W> a) { return VFloatT<W>(-a.v); }
template <int W> inline VFloatT<W>& operator+=(VFloatT<W>& a, VFloatT<W> b) { return a = a + b; }
template <int W> inline Mask<W> operator>(VFloatT<W> a, VFloatT<W> b) { return {a.v > b.v}; }
template <int W> inline Mask<W> operator<(VFloatT<W> a, VFloatT<W> b) { return {a.v < b.v}; }
template <int W> inline Mask<W> operator<=(VFloatT<W> a, VFloatT<W> b) { return {a.v <= b.v}; }

// m_select(c, a, b): a where c holds, else b (the vector form of c ? a : b).
template <int W> inline VFloatT<W> m_select(Mask<W> c, VFloatT<W> a, VFloatT<W> b) {
  return VFloatT<W>(c.m ? a.v : b.v);
}

// c ? a * b : otherwise.
template <int W>
inline VFloatT<W> mul_where(Mask<W> c, VFloatT<W> a, VFloatT<W> b, VFloatT<W> otherwise) {
  return m_select(c, a * b, otherwise);
}

// (C-style casts between vector types of one size reinterpret the bits.)
template <int W> inline VFloatT<W> from_bits(IntV<W> bits) {
  return VFloatT<W>((typename VFloatT<W>::F)bits);
}
template <int W> inline IntV<W> to_bits(VFloatT<W> x) { return (IntV<W>)x.v; }

// Where x's sign bit is set (x < 0, -0 and negative NaNs): the sign bit is
// the mask, where x < 0 takes a comparison first (AVX2's vblendvps reads only
// the sign bits, so the shift goes too). For the callers whose two branches
// agree at -0 and NaN.
template <int W> inline Mask<W> sign_set(VFloatT<W> x) { return {to_bits(x) >> 31}; }

// 2^-64: exponentials that may fall below float's normal range are kept
// scaled by 2^64 until their last multiplication (exp_neg_abs_2p64, exp_scaled).
constexpr float kTwoPowMinus64 = 5.42101086242752217e-20f;

// 2^k for integer k in [-126, 127], built from the exponent bits.
template <int W> inline VFloatT<W> pow2(IntV<W> k) { return from_bits<W>((k + 127) << 23); }

// Range reduction for exp: n = round(x / ln 2) (nf the same as a float) and
// r = x - n ln 2 in [-ln2/2, ln2/2], so that exp(x) = 2^n exp(r). x must
// already be clamped to |x| < 110.
template <int W> inline VFloatT<W> exp_range(VFloatT<W> x, IntV<W>& n, VFloatT<W>& nf) {
  using VFloat = VFloatT<W>;
  const VFloat shifter(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const VFloat t = x * VFloat(1.44269504088896341f) + shifter;
  n = to_bits(t) - to_bits(shifter);
  nf = t - shifter;
  // ln 2 split so that nf * kLn2Hi is exact for |n| < 2^11.
  return (x - nf * VFloat(0.693145751953125f)) - nf * VFloat(1.428606765330187e-06f);
}

// q = expm1(r) from its Taylor series to r^7 (truncation error < 2e-9
// relative), for the callers that need expm1's relative accuracy near 0.
// Returns q and sets n and nf as exp_range does.
template <int W> inline VFloatT<W> exp_reduce(VFloatT<W> x, IntV<W>& n, VFloatT<W>& nf) {
  using VFloat = VFloatT<W>;
  const VFloat r = exp_range(x, n, nf);
  VFloat p(1.0f / 5040);
  p = p * r + VFloat(1.0f / 720);
  p = p * r + VFloat(1.0f / 120);
  p = p * r + VFloat(1.0f / 24);
  p = p * r + VFloat(1.0f / 6);
  p = p * r + VFloat(0.5f);
  return r + r * r * p;
}

// exp(r) for r from exp_range: a degree-6 polynomial fitted for relative
// error on [-ln2/2, ln2/2] (scripts/fit_polynomials.py; 1e-7 relative in
// float32), six multiply-adds where 1 + exp_reduce's q takes eight
// operations. For the callers that need exp itself (sigmoid, silu, gelu).
template <int W> inline VFloatT<W> exp_reduced(VFloatT<W> r) {
  using VFloat = VFloatT<W>;
  static constexpr float kE[] = {1.000000001e+00f, 1.000000036e+00f, 4.999999149e-01f,
                                 1.666642083e-01f, 4.166835803e-02f, 8.374771520e-03f,
                                 1.382942060e-03f};
  VFloat p(kE[6]);
  for (int i = 5; i >= 0; --i) p = p * r + VFloat(kE[i]);
  return p;
}

// min(x, hi) and max(x, lo); NaN stays NaN.
template <int W> inline VFloatT<W> cap_above(VFloatT<W> x, float hi) {
  return m_select(x > VFloatT<W>(hi), VFloatT<W>(hi), x);
}
template <int W> inline VFloatT<W> cap_below(VFloatT<W> x, float lo) {
  return m_select(x < VFloatT<W>(lo), VFloatT<W>(lo), x);
}
template <int W> inline VFloatT<W> clamp(VFloatT<W> x, float lo, float hi) {
  return cap_above(cap_below(x, lo), hi);
}

// a * 2^n for integer n in [-252, 254] (nf = n as a float): the result may
// lie below the smallest normal float or above the largest, beyond a single
// float exponent, so 2^n comes in two factors.
template <int W> inline VFloatT<W> scale_pow2(VFloatT<W> a, VFloatT<W> /*nf*/, IntV<W> n) {
  const IntV<W> half = n >> 1;
  return a * pow2<W>(half) * pow2<W>(n - half);
}

// p 2^n for integer n in [-152, 0] (normcdf_tail's), in the form each build
// multiplies fastest, times kExpScale<W>: the x86-64 and AVX2 builds return
// p 2^(n + 64), a normal float (one multiplication, where 2^n below 2^-126
// takes two factors: scale_pow2), and the caller folds kExpScale = 2^-64 into
// the factors it multiplies the result by; AVX-512's vscalefps gives p 2^n
// itself, denormal or not (kExpScale<16> = 1, below).
template <int W> constexpr float kExpScale = kTwoPowMinus64;
template <int W> inline VFloatT<W> exp_scaled(VFloatT<W> p, VFloatT<W> /*nf*/, IntV<W> n) {
  return p * pow2<W>(n + 64);
}

template <int W> inline VFloatT<W> m_exp(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  IntV<W> n;
  VFloat nf;
  const VFloat r = exp_range(clamp(x, -104.0f, 89.0f), n, nf);
  return scale_pow2(exp_reduced(r), nf, n);
}

// expm1(min(x, 0)) (ELU's negative branch) = 2^n q + (2^n - 1), exact in its
// last step for n == 0, so that small x keep their relative accuracy. Below
// -88 it is -1 in float32; with x in [-88, 0], 2^n never overflows.
template <int W> inline VFloatT<W> m_expm1_neg(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  IntV<W> n;
  VFloat nf;
  const VFloat q = exp_reduce(cap_below(cap_above(x, 0.0f), -88.0f), n, nf);
  const VFloat s = pow2<W>(n);
  return s * q + (s - VFloat(1.0f));
}

// One Newton step for 1 / x from r, as r + r (1 - x r): the residual 1 - x r
// is exact near the answer, so the step lands on the correctly rounded
// 1 / x where r (2 - x r) can stall an ulp short (1 + 2^-24 rounds to 1):
// sigmoid would then never reach 1, and silu's derivative s (1 + x (1 - s))
// at x = 1e10 would be 597, not 1.
template <int W> inline VFloatT<W> newton_recip(VFloatT<W> x, VFloatT<W> r) {
  return r + r * (VFloatT<W>(1.0f) - x * r);
}

// 1 / x for finite x whose reciprocal is a normal float. A vector division:
// its own unit computes it beside the multiply-adds, which are what bound the
// activations' loops, so it costs less than a reciprocal estimate and Newton
// steps on the multiply-add pipes (docs/cpu-tuning.md), and it rounds
// correctly. (The AVX-512 build keeps vrcp14ps and one step: below.)
template <int W> inline VFloatT<W> m_recip_finite(VFloatT<W> x) { return VFloatT<W>(1.0f) / x; }

#ifdef MLPB_SIMD_DISPATCH
// AVX-512 overloads for the 16-lane vector, which only the AVX-512 build
// uses: non-templates, so preferred over the templates above, and carrying
// the AVX-512 target themselves (simd_dispatch's run_avx512 inlines them).
// - Comparisons give a 16-bit mask register and m_select blends with it.
//   GCC 12 sometimes compiled the generic vector comparison and select
//   lane by lane with branches even in AVX-512 code (linear_act's backward
//   for gelu and elu; -Wvector-operation-performance says "expanded
//   piecewise", and setup.py now makes that an error); the intrinsics leave
//   it no choice.
// - vscalefps scales by 2^n in one instruction, handling the exponent's
//   range itself; vrcp14ps gives 14 bits of 1 / x, and one Newton step the
//   rest.
// (The zero-masking forms with every lane selected: GCC 12 warns about the
// plain forms' undefined source.)
MLPB_TARGET_AVX512 inline Mask<16> operator>(VFloatT<16> a, VFloatT<16> b) {
  return {_mm512_cmp_ps_mask((__m512)a.v, (__m512)b.v, _CMP_GT_OQ)};
}
MLPB_TARGET_AVX512 inline Mask<16> operator<(VFloatT<16> a, VFloatT<16> b) {
  return {_mm512_cmp_ps_mask((__m512)a.v, (__m512)b.v, _CMP_LT_OQ)};
}
MLPB_TARGET_AVX512 inline Mask<16> operator<=(VFloatT<16> a, VFloatT<16> b) {
  return {_mm512_cmp_ps_mask((__m512)a.v, (__m512)b.v, _CMP_LE_OQ)};
}
// (AVX-512 compares into a mask register in one instruction: sign_set is x < 0
// there, which its callers' branches treat alike at -0 and NaN.)
MLPB_TARGET_AVX512 inline Mask<16> sign_set(VFloatT<16> x) {
  return x < VFloatT<16>(0.0f);
}
MLPB_TARGET_AVX512 inline VFloatT<16> m_select(Mask<16> c, VFloatT<16> a, VFloatT<16> b) {
  return VFloatT<16>((VecTypes<16>::F)_mm512_mask_blend_ps(c.k, (__m512)b.v, (__m512)a.v));
}
MLPB_TARGET_AVX512 inline VFloatT<16> mul_where(Mask<16> c, VFloatT<16> a, VFloatT<16> b,
                                                VFloatT<16> otherwise) {
  return VFloatT<16>(
      (VecTypes<16>::F)_mm512_mask_mul_ps((__m512)otherwise.v, c.k, (__m512)a.v, (__m512)b.v));
}
// vminps/vmaxps return their second operand when either is NaN: x goes second.
MLPB_TARGET_AVX512 inline VFloatT<16> cap_above(VFloatT<16> x, float hi) {
  return VFloatT<16>((VecTypes<16>::F)_mm512_maskz_min_ps(0xFFFF, _mm512_set1_ps(hi), (__m512)x.v));
}
MLPB_TARGET_AVX512 inline VFloatT<16> cap_below(VFloatT<16> x, float lo) {
  return VFloatT<16>((VecTypes<16>::F)_mm512_maskz_max_ps(0xFFFF, _mm512_set1_ps(lo), (__m512)x.v));
}

MLPB_TARGET_AVX512 inline VFloatT<16> scale_pow2(VFloatT<16> a, VFloatT<16> nf, IntV<16>) {
  return VFloatT<16>((VecTypes<16>::F)_mm512_maskz_scalef_ps(0xFFFF, (__m512)a.v, (__m512)nf.v));
}
template <> constexpr float kExpScale<16> = 1.0f;
MLPB_TARGET_AVX512 inline VFloatT<16> exp_scaled(VFloatT<16> p, VFloatT<16> nf, IntV<16> n) {
  return scale_pow2(p, nf, n);
}

// vrcp14ps gives 14 bits, one Newton step the rest. (Not the division the
// other builds use: Intel's 512-bit division takes about ten cycles a vector
// and bounds sigmoid's loop there, measured in docs/cpu-tuning.md.)
MLPB_TARGET_AVX512 inline VFloatT<16> m_recip_finite(VFloatT<16> x) {
  return newton_recip(x, VFloatT<16>((VecTypes<16>::F)_mm512_maskz_rcp14_ps(0xFFFF, (__m512)x.v)));
}

// AVX2 overloads for the 8-lane vector, which only the AVX2 build uses
// (run_avx2 inlines them): vminps/vmaxps cap in one instruction where a
// comparison and a blend take two.
#define MLPB_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2")))
MLPB_TARGET_AVX2 inline VFloatT<8> cap_above(VFloatT<8> x, float hi) {
  return VFloatT<8>((VecTypes<8>::F)_mm256_min_ps(_mm256_set1_ps(hi), (__m256)x.v));
}
MLPB_TARGET_AVX2 inline VFloatT<8> cap_below(VFloatT<8> x, float lo) {
  return VFloatT<8>((VecTypes<8>::F)_mm256_max_ps(_mm256_set1_ps(lo), (__m256)x.v));
}
#endif

template <int W> inline VFloatT<W> abs(VFloatT<W> x) {
  return from_bits<W>(to_bits(x) & 0x7fffffff);
}
template <int W> inline VFloatT<W> copysign(VFloatT<W> magnitude, VFloatT<W> sign) {
  return from_bits<W>(to_bits(magnitude) | (to_bits(sign) & int32_t(0x80000000u)));
}

// With e = expm1(2|x|): tanh|x| = e / (e + 2), which keeps small x's relative
// accuracy, and = 1 - 2 / (e + 2) from |x| = 0.5 on, which rounds only in the
// last subtraction near 1 (1 + tanh(x) is what gelu's tanh form uses).
// tanh rounds to 1 in float32 from |x| = 9.02 on, so |x| is capped at 10:
// then n <= 29 and expm1 needs no clamp and no overflow case.
template <int W> inline VFloatT<W> m_tanh(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const VFloat ax = cap_above(abs(x), 10.0f);
  IntV<W> n;
  VFloat nf;
  const VFloat q = exp_reduce(VFloat(2.0f) * ax, n, nf);
  const VFloat s = pow2<W>(n);
  const VFloat e = s * q + (s - VFloat(1.0f));
  const VFloat d = m_recip_finite(e + VFloat(2.0f));  // e < 5e8
  const VFloat t = m_select(ax < VFloat(0.5f), e * d, VFloat(1.0f) - VFloat(2.0f) * d);
  return copysign(t, x);
}

// Phi(x), the standard normal CDF: 0.5 erfc(-x / sqrt 2). With z = |x| / sqrt 2,
// erfc(z) = exp(-z^2) R(t), t = 1 / (1 + 0.42 z), and R a degree-8 polynomial
// in t fitted to exp(z^2) erfc(z) on 0 <= z <= 10.25 (scripts/fit_polynomials.py;
// 2.8e-7 relative in float32). The negative tail is computed directly, not as
// 1 - something, so it keeps its relative accuracy. |x| is capped at 14.5,
// where exp(-x^2 / 2) < 2^-151 already rounds to 0 (Phi to 0 or 1): exp's
// argument then stays in [-105.2, 0], which needs none of m_exp's clamps.
// Phi(x), and with it the density phi(x) = exp(-x^2 / 2) / sqrt(2 pi), whose
// exponential Phi's tail computes anyway: GELU's derivative Phi(x) + x phi(x)
// then takes one exp instead of two.
// normcdf_tail gives the tail Phi(-|x|) = erfc(|x| / sqrt 2) / 2, which Phi
// is for x < 0 and 1 - Phi for x >= 0 (m_normcdf_pdf, m_gelu).
constexpr float kNormcdfCap = 14.5f;
template <int W>
inline VFloatT<W> normcdf_tail(VFloatT<W> x, VFloatT<W>* pdf) {
  using VFloat = VFloatT<W>;
  const VFloat ax = cap_above(abs(x), kNormcdfCap);
  const VFloat z = ax * VFloat(0.70710678118654752f);
  const VFloat t = m_recip_finite(VFloat(1.0f) + VFloat(0.42f) * z);  // z <= 10.25
  static constexpr float kR[] = {
      2.696695605e-05f, 2.363079976e-01f, 2.437144873e-01f, 1.767128916e-01f,
      3.156755611e-01f, -2.054332023e-01f, 5.123614399e-01f, -3.579729699e-01f,
      7.860686973e-02f};
  // exp(-x^2 / 2) / kExpScale (exp_scaled); the scale is folded into the
  // factors it meets: R / 2 (erfc / 2 is what Phi needs) and the density's
  // 1 / sqrt(2 pi).
  IntV<W> n;
  VFloat nf;
  const VFloat r = exp_range(-(z * z), n, nf);
  const VFloat e = exp_scaled(exp_reduced(r), nf, n);
  constexpr float kHalf = 0.5f * kExpScale<W>;
  VFloat half_r(kHalf * kR[8]);
  for (int i = 7; i >= 0; --i) half_r = half_r * t + VFloat(kHalf * kR[i]);
  if (pdf) *pdf = e * VFloat(0.39894228040143267794f * kExpScale<W>);
  return e * half_r;
}

template <int W> inline VFloatT<W> m_normcdf_pdf(VFloatT<W> x, VFloatT<W>& pdf) {
  const VFloatT<W> tail = normcdf_tail(x, &pdf);
  return m_select(sign_set(x), tail, VFloatT<W>(1.0f) - tail);
}

// GELU, x Phi(x): x - |x| tail, one multiply-add, and for x < 0 x tail
// instead, a masked multiplication (mul_where) with AVX-512. |x| is capped as
// normcdf_tail caps it, so that +inf gives inf - 14.5 * 0, not inf * 0.
template <int W> inline VFloatT<W> m_gelu(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const VFloat tail = normcdf_tail<W>(x, nullptr);
  return mul_where(sign_set(x), x, tail, x - cap_above(abs(x), kNormcdfCap) * tail);
}

// Sigmoid and SiLU from e = exp(-|x|) <= 1, which cannot overflow: sigmoid
// is 1 / (1 + e) for x >= 0 and e / (1 + e) below, with 1 + e in [1, 2] (a
// reciprocal without range cases). e comes scaled by 2^64 (e64), so that it
// stays a normal float down to |x| = 132 and a result of e, or of x e, is
// rounded once when scaled back: denormal where the true value is. |x| is
// capped at 132.3, where e64's exponent bits reach 0, so that e64 is exactly
// 0 beyond: sigmoid(-inf) = 0, silu(-inf) = -inf * 0 = NaN, as stock's.
template <int W> inline VFloatT<W> exp_neg_abs_2p64(VFloatT<W> x) {
  IntV<W> n;
  VFloatT<W> nf;
  const VFloatT<W> r = exp_range(-cap_above(abs(x), 132.3f), n, nf);
  // n + 64 in [-127, 64]; pow2(-127) builds exponent bits 0, the value 0.
  return exp_reduced(r) * pow2<W>(n + 64);
}

template <int W> inline VFloatT<W> m_sigmoid(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const VFloat e64 = exp_neg_abs_2p64(x);
  const VFloat scale(kTwoPowMinus64);
  const VFloat r = m_recip_finite(VFloat(1.0f) + e64 * scale);
  return mul_where(sign_set(x), e64 * r, scale, r);
}

template <int W> inline VFloatT<W> m_silu(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const VFloat e64 = exp_neg_abs_2p64(x);
  const VFloat scale(kTwoPowMinus64);
  const VFloat r = m_recip_finite(VFloat(1.0f) + e64 * scale);
  return m_select(sign_set(x), ((x * e64) * r) * scale, x * r);
}

// ---- dropout keep bits ----

// bits[g] bit k = whether element 64 (group + g) + k is kept (philox.h), for
// g < groups. Out of line, in simd.cpp: AVX-512 decides 256 elements at once
// and AVX2 128, with instructions the portable vector type cannot express
// (32 x 32 -> 64-bit multiplies, bit deposits); other CPUs use the scalar
// generator.
void dropout_keeps(const DropoutMask& mask, uint64_t group, int64_t groups, uint64_t* bits);

// The 64 bits of `bits` from bit `first` on (bits[first / 64 + 1] is read
// unless first is a multiple of 64).
inline uint64_t bits_from(const uint64_t* bits, int64_t first) {
  const uint64_t* word = bits + (first >> 6);
  const int shift = static_cast<int>(first & 63);
  return shift == 0 ? word[0] : (word[0] >> shift) | (word[1] << (64 - shift));
}

// Lane l holds where bit l of `bits` is set.
template <int W> inline Mask<W> lanes_of_bits(uint64_t bits) {
  IntV<W> lane_bit;
  for (int l = 0; l < W; ++l) lane_bit[l] = 1 << l;
  return {((IntV<W>{} + static_cast<int32_t>(bits & ((uint64_t{1} << W) - 1))) & lane_bit) != 0};
}
#ifdef MLPB_SIMD_DISPATCH
template <> MLPB_TARGET_AVX512 inline Mask<16> lanes_of_bits<16>(uint64_t bits) {
  return {static_cast<__mmask16>(bits)};
}
#endif

// Dropout of W values (philox.h: dropout_value), bit l of `keeps` deciding lane l.
template <int W> inline VFloatT<W> dropout_apply(uint64_t keeps, VFloatT<W> v, float scale) {
  return dropout_value(lanes_of_bits<W>(keeps), v, VFloatT<W>(scale));
}

// ---- bfloat16 <-> float ----
// bf16 is the top half of a float: loading is exact (a shift), storing rounds
// to nearest even as c10::BFloat16 does (NaN stays a quiet NaN). Pointers are
// to the 16-bit patterns; count <= W as for VFloatT::load/store.

template <int W> inline VFloatT<W> bf16_load_generic(const uint16_t* p, int64_t count) {
  typename VecTypes<W>::H h = {};
  std::memcpy(&h, p, (count == W ? W : count) * sizeof(uint16_t));
  const auto u = __builtin_convertvector(h, typename VecTypes<W>::U) << 16;
  return from_bits<W>((IntV<W>)u);
}

template <int W> inline void bf16_store_generic(uint16_t* p, VFloatT<W> v, int64_t count) {
  using U = typename VecTypes<W>::U;
  const U bits = (U)v.v;
  const U rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const U out = (v.v != v.v) ? ((bits >> 16) | 0x40u) : rounded;
  const auto h = __builtin_convertvector(out, typename VecTypes<W>::H);
  std::memcpy(p, &h, (count == W ? W : count) * sizeof(uint16_t));
}

#ifdef MLPB_SIMD_DISPATCH
MLPB_TARGET_AVX512 inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

MLPB_TARGET_AVX512 inline VFloatT<16> bf16_load_avx512(const uint16_t* p, int64_t count) {
  const __m256i h = _mm256_maskz_loadu_epi16(first_lanes(count), p);
  return VFloatT<16>((VecTypes<16>::F)_mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16)));
}

MLPB_TARGET_AVX512 inline void bf16_store_avx512(uint16_t* p, VFloatT<16> v, int64_t count) {
  const __m512i bits = _mm512_castps_si512((__m512)v.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmp_ps_mask((__m512)v.v, (__m512)v.v, _CMP_UNORD_Q);
  _mm512_mask_cvtepi32_storeu_epi16(p, first_lanes(count),
                                    _mm512_mask_blend_epi32(nan, rounded, quiet));
}

// A partial vector of floats (count < W lanes) in one masked instruction,
// where the generic load and store copy lane by lane through memory (slow
// when every row is partial: cross-entropy's ten classes). The lanes past
// count load as 0 and are never read or written in memory.
MLPB_TARGET_AVX512 inline VFloatT<16> float_load_avx512(const float* p, int64_t count) {
  return VFloatT<16>((VecTypes<16>::F)_mm512_maskz_loadu_ps(first_lanes(count), p));
}
MLPB_TARGET_AVX512 inline void float_store_avx512(float* p, VFloatT<16> v, int64_t count) {
  _mm512_mask_storeu_ps(p, first_lanes(count), (__m512)v.v);
}
MLPB_TARGET_AVX2 inline __m256i first_lanes_avx2(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
MLPB_TARGET_AVX2 inline VFloatT<8> float_load_avx2(const float* p, int64_t count) {
  return VFloatT<8>((VecTypes<8>::F)_mm256_maskload_ps(p, first_lanes_avx2(count)));
}
MLPB_TARGET_AVX2 inline void float_store_avx2(float* p, VFloatT<8> v, int64_t count) {
  _mm256_maskstore_ps(p, first_lanes_avx2(count), (__m256)v.v);
}

// With AVX512-BF16's vcvtneps2bf16: one instruction rounds 16 floats (it
// flushes denormal floats to zero, which the integer rounding keeps).
#define MLPB_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,avx2,fma,bmi,bmi2")))
MLPB_TARGET_AVX512_BF16 inline void bf16_store_avx512bf16(uint16_t* p, VFloatT<16> v,
                                                          int64_t count) {
  _mm256_mask_storeu_epi16(p, first_lanes(count), (__m256i)_mm512_cvtneps_pbh((__m512)v.v));
}
#endif

// ---- run-time instruction-set dispatch ----

enum class Level : int { Baseline = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

// W lanes per vector; kBf16: the CPU has AVX512-BF16's conversion.
template <int W, bool Bf16 = false> struct Lanes {
  static constexpr int kWidth = W;
  static constexpr bool kBf16 = Bf16;
};

// count <= W floats, with the instruction set of L (the others lanes 0).
template <typename L> inline VFloatT<L::kWidth> float_load(const float* p, int64_t count) {
#ifdef MLPB_SIMD_DISPATCH
  if constexpr (L::kWidth == 16) {
    if (count < 16) return float_load_avx512(p, count);
  } else if constexpr (L::kWidth == 8) {
    if (count < 8) return float_load_avx2(p, count);
  }
#endif
  return VFloatT<L::kWidth>::load(p, count);
}

template <typename L> inline void float_store(float* p, VFloatT<L::kWidth> v, int64_t count) {
#ifdef MLPB_SIMD_DISPATCH
  if constexpr (L::kWidth == 16) {
    if (count < 16) return float_store_avx512(p, v, count);
  } else if constexpr (L::kWidth == 8) {
    if (count < 8) return float_store_avx2(p, v, count);
  }
#endif
  v.store(p, count);
}

// W floats from bf16 patterns, and back, with the instruction set of L.
template <typename L> inline VFloatT<L::kWidth> bf16_load(const uint16_t* p, int64_t count) {
#ifdef MLPB_SIMD_DISPATCH
  if constexpr (L::kWidth == 16) return bf16_load_avx512(p, count);
#endif
  return bf16_load_generic<L::kWidth>(p, count);
}

template <typename L> inline void bf16_store(uint16_t* p, VFloatT<L::kWidth> v, int64_t count) {
#ifdef MLPB_SIMD_DISPATCH
  if constexpr (L::kBf16) {
    bf16_store_avx512bf16(p, v, count);
    return;
  } else if constexpr (L::kWidth == 16) {
    bf16_store_avx512(p, v, count);
    return;
  }
#endif
  bf16_store_generic<L::kWidth>(p, v, count);
}

// The best level this CPU supports, lowered by set_level() (tests compare levels).
Level level();
Level best_level();
void set_level(Level l);  // clamped to best_level()

#ifdef MLPB_SIMD_DISPATCH
// flatten inlines every call made inside, so the body and the functors and
// vector math it calls are all compiled for the target's instruction set.
template <typename F>
MLPB_TARGET_AVX512_BF16 __attribute__((flatten)) void run_avx512_bf16(F& f) {
  f(Lanes<16, true>{});
}
template <typename F>
MLPB_TARGET_AVX512 __attribute__((flatten)) void run_avx512(F& f) { f(Lanes<16>{}); }
template <typename F>
__attribute__((target("avx2,fma,bmi,bmi2"), flatten)) void run_avx2(F& f) { f(Lanes<8>{}); }
template <typename F>
__attribute__((flatten)) void run_baseline(F& f) { f(Lanes<4>{}); }
#endif

// Runs f(lanes) compiled for the best instruction set available; lanes is a
// Lanes<W, Bf16>, W the vector width (VFloatT<W>) that instruction set holds.
template <typename F>
void simd_dispatch(F&& f) {
#ifdef MLPB_SIMD_DISPATCH
  switch (level()) {
    case Level::Avx512Bf16: run_avx512_bf16(f); return;
    case Level::Avx512: run_avx512(f); return;
    case Level::Avx2: run_avx2(f); return;
    case Level::Baseline: run_baseline(f); return;
  }
#else
  f(Lanes<4>{});
#endif
}

}  // namespace mlpbench::simd
