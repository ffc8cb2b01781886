// A float vector for the CPU kernels, and the vector math the activations
// need (exp, expm1, tanh, the normal CDF), so that the functors of
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

namespace mlpbench::simd {

// W lanes: 16 in the AVX-512 build, 8 in the AVX2 one and 4 in the x86-64
// baseline (SSE2), so that a vector is one register of the instruction set it
// is compiled for. (Wider than that, GCC splits arithmetic into registers but
// compiles comparisons and selects lane by lane, about 10x slower.)
// (One specialisation per width: GCC ignores vector_size on a typedef that
// depends on a template parameter.)
template <int W> struct VecTypes;
#define MLPB_VEC_TYPES(W)                                        \
  template <> struct VecTypes<W> {                               \
    typedef float F __attribute__((vector_size(W * 4)));         \
    typedef int32_t I __attribute__((vector_size(W * 4)));       \
    typedef uint32_t U __attribute__((vector_size(W * 4)));      \
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

template <int W>
struct Mask {
  IntV<W> m;  // all ones where true
};

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

// m_select(c, a, b): a where c holds, else b (the vector form of c ? a : b).
template <int W> inline VFloatT<W> m_select(Mask<W> c, VFloatT<W> a, VFloatT<W> b) {
  return VFloatT<W>(c.m ? a.v : b.v);
}

// (C-style casts between vector types of one size reinterpret the bits.)
template <int W> inline VFloatT<W> from_bits(IntV<W> bits) {
  return VFloatT<W>((typename VFloatT<W>::F)bits);
}
template <int W> inline IntV<W> to_bits(VFloatT<W> x) { return (IntV<W>)x.v; }

// 2^k for integer k in [-126, 127], built from the exponent bits.
template <int W> inline VFloatT<W> pow2(IntV<W> k) { return from_bits<W>((k + 127) << 23); }

// exp(x) = 2^n (1 + q) with r = x - n ln2 in [-ln2/2, ln2/2] and q = expm1(r)
// from its Taylor series to r^7 (truncation error < 2e-9 relative).
// Returns q and sets n. x must already be clamped to |x| < 110.
template <int W> inline VFloatT<W> exp_reduce(VFloatT<W> x, IntV<W>& n) {
  using VFloat = VFloatT<W>;
  const VFloat shifter(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const VFloat t = x * VFloat(1.44269504088896341f) + shifter;
  n = to_bits(t) - to_bits(shifter);
  const VFloat nf = t - shifter;
  // ln 2 split so that nf * kLn2Hi is exact for |n| < 2^11.
  const VFloat r = (x - nf * VFloat(0.693145751953125f)) - nf * VFloat(1.428606765330187e-06f);
  VFloat p(1.0f / 5040);
  p = p * r + VFloat(1.0f / 720);
  p = p * r + VFloat(1.0f / 120);
  p = p * r + VFloat(1.0f / 24);
  p = p * r + VFloat(1.0f / 6);
  p = p * r + VFloat(0.5f);
  return r + r * r * p;
}

template <int W> inline VFloatT<W> clamp(VFloatT<W> x, float lo, float hi) {  // NaN stays NaN
  using VFloat = VFloatT<W>;
  x = m_select(x < VFloat(lo), VFloat(lo), x);
  return m_select(x > VFloat(hi), VFloat(hi), x);
}

template <int W> inline VFloatT<W> m_exp(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  IntV<W> n;
  const VFloat q = exp_reduce(clamp(x, -104.0f, 89.0f), n);
  // 2^n in two factors: n runs from -150 (results below the smallest float)
  // to 128 (above the largest), beyond a single float exponent.
  const IntV<W> half = n >> 1;
  return (VFloat(1.0f) + q) * pow2<W>(half) * pow2<W>(n - half);
}

// expm1(x) = 2^n q + (2^n - 1), exact in its last step for n == 0, so that
// small x keep their relative accuracy.
template <int W> inline VFloatT<W> m_expm1(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  IntV<W> n;
  const VFloat q = exp_reduce(clamp(x, -88.0f, 89.0f), n);
  const IntV<W> big = n > 127;  // 2^128 is not a float: use 2 * 2^127 (1 + q)
  const VFloat s = pow2<W>(big ? IntV<W>{} + 127 : n);
  return m_select(Mask<W>{big}, VFloat(2.0f) * (s + s * q), s * q + (s - VFloat(1.0f)));
}

// 1 / x for x >= 1 (and +inf, NaN): three Newton steps (six multiply-adds)
// from a bit-trick first guess instead of a vector division, a slow,
// long-latency instruction; within the tests' tolerance above. Beyond 1e38 the
// first guess would leave the float range, so x is capped there (1e-38 for
// 1 / 3e38, far below any tolerance), and 1 / inf is 0 as a division gives.
template <int W> inline VFloatT<W> m_recip(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const Mask<W> infinite = x > VFloat(3.4028235e38f);
  const VFloat capped = m_select(x > VFloat(1e38f), VFloat(1e38f), x);
  VFloat r = from_bits<W>(0x7EF311C3 - to_bits(capped));
  for (int step = 0; step < 3; ++step) r = r * (VFloat(2.0f) - capped * r);
  return m_select(infinite, VFloat(0.0f), r);
}

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
// then n <= 29 and expm1 needs neither m_expm1's clamp nor its overflow case.
template <int W> inline VFloatT<W> m_tanh(VFloatT<W> x) {
  using VFloat = VFloatT<W>;
  const VFloat ax = m_select(abs(x) > VFloat(10.0f), VFloat(10.0f), abs(x));  // NaN stays
  IntV<W> n;
  const VFloat q = exp_reduce(VFloat(2.0f) * ax, n);
  const VFloat s = pow2<W>(n);
  const VFloat e = s * q + (s - VFloat(1.0f));
  const VFloat d = m_recip(e + VFloat(2.0f));
  const VFloat t = m_select(ax < VFloat(0.5f), e * d, VFloat(1.0f) - VFloat(2.0f) * d);
  return copysign(t, x);
}

// Phi(x), the standard normal CDF: 0.5 erfc(-x / sqrt 2). With z = |x| / sqrt 2,
// erfc(z) = exp(-z^2) R(t), t = 1 / (1 + z / 2), and R a degree-10 polynomial
// in t fitted to exp(z^2) erfc(z) on 0 <= z <= 10 (scripts/fit_erfcx.py;
// 3e-7 relative in float32). The negative tail is computed directly, not as
// 1 - something, so it keeps its relative accuracy.
// Phi(x), and with it the density phi(x) = exp(-x^2 / 2) / sqrt(2 pi), whose
// exponential Phi's tail computes anyway: GELU's derivative Phi(x) + x phi(x)
// then takes one exp instead of two.
template <int W>
inline VFloatT<W> normcdf_and_pdf(VFloatT<W> x, VFloatT<W>* pdf) {
  using VFloat = VFloatT<W>;
  const VFloat z = abs(x) * VFloat(0.70710678118654752f);
  const VFloat t = m_recip(VFloat(1.0f) + VFloat(0.5f) * z);
  static constexpr float kR[] = {
      9.178994694e-06f, 2.818281129e-01f, 2.854722189e-01f, 2.222766604e-01f,
      2.897853505e-01f, -2.638104366e-01f, 7.052551057e-01f, -9.913491853e-01f,
      6.589779586e-01f, -2.176054345e-01f, 2.916046678e-02f};
  VFloat r(kR[10]);
  for (int i = 9; i >= 0; --i) r = r * t + VFloat(kR[i]);
  const VFloat e = m_exp(-(z * z));  // exp(-x^2 / 2)
  if (pdf) *pdf = e * VFloat(0.39894228040143267794f);
  const VFloat half_erfc = VFloat(0.5f) * e * r;
  return m_select(x < VFloat(0.0f), half_erfc, VFloat(1.0f) - half_erfc);
}

template <int W> inline VFloatT<W> m_normcdf(VFloatT<W> x) {
  return normcdf_and_pdf<W>(x, nullptr);
}

template <int W> inline VFloatT<W> m_normcdf_pdf(VFloatT<W> x, VFloatT<W>& pdf) {
  return normcdf_and_pdf(x, &pdf);
}

// ---- dropout words ----

// words[i] = the Philox word (philox.h) of flat element begin + i, for
// i < count. Out of line, in simd.cpp: the AVX-512 build runs 32 blocks at
// once with instructions the portable vector type cannot express (32 x 32 ->
// 64-bit multiplies); other CPUs use the scalar generator.
void dropout_words(const DropoutMask& mask, uint64_t begin, int64_t count, uint32_t* words);

// Dropout of W values: v / keep_prob where kept, 0 where dropped (and in
// the lanes past count <= W). Dividing, as the CUDA kernels do, rather than
// multiplying by a rounded 1 / keep_prob keeps the devices' results equal.
template <int W>
inline VFloatT<W> dropout_apply(const uint32_t* words, int64_t count, uint32_t threshold,
                                VFloatT<W> v, float keep_prob) {
  typename VFloatT<W>::U w = {};
  if (count == W) {
    std::memcpy(&w, words, sizeof w);
  } else {
    std::memcpy(&w, words, count * sizeof(uint32_t));
  }
  const IntV<W> keep = (w >> 8) >= threshold;
  return m_select(Mask<W>{keep}, v / VFloatT<W>(keep_prob), VFloatT<W>(0.0f));
}

// ---- run-time instruction-set dispatch ----

enum class Level : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

template <int W> struct Lanes {
  static constexpr int kWidth = W;
};

// The best level this CPU supports, lowered by set_level() (tests compare levels).
Level level();
Level best_level();
void set_level(Level l);  // clamped to best_level()

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MLPB_SIMD_DISPATCH 1
// flatten inlines every call made inside, so the body and the functors and
// vector math it calls are all compiled for the target's instruction set.
template <typename F>
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi,bmi2"), flatten))
void run_avx512(F& f) { f(Lanes<16>{}); }
template <typename F>
__attribute__((target("avx2,fma,bmi,bmi2"), flatten)) void run_avx2(F& f) { f(Lanes<8>{}); }
template <typename F>
__attribute__((flatten)) void run_baseline(F& f) { f(Lanes<4>{}); }
#endif

// Runs f(lanes) compiled for the best instruction set available; lanes is a
// Lanes<W>, W the vector width (VFloatT<W>) that instruction set holds.
template <typename F>
void simd_dispatch(F&& f) {
#ifdef MLPB_SIMD_DISPATCH
  switch (level()) {
    case Level::Avx512: run_avx512(f); return;
    case Level::Avx2: run_avx2(f); return;
    case Level::Baseline: run_baseline(f); return;
  }
#else
  f(Lanes<4>{});
#endif
}

}  // namespace mlpbench::simd
