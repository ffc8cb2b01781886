// A 16-lane float vector for the CPU kernels, and the vector math the
// activations need (exp, expm1, tanh, the normal CDF), so that the functors
// of activations.h run unchanged on it: each functor is written once and
// instantiated for float, double and VFloat.
//
// VFloat is a GCC/Clang vector-extension type, so the same source compiles to
// whatever the instruction set of the calling function offers: one AVX-512
// register, two AVX2 registers or four SSE registers. simd_dispatch() runs a
// kernel body inside a function compiled for AVX-512 or AVX2 when the CPU has
// them (checked at run time) and for the x86-64 baseline otherwise, so the
// extension never executes an instruction the machine lacks.
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

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

struct Mask {
  i32x16 m;  // all ones where true
};

struct VFloat {
  static constexpr int64_t kWidth = 16;
  f32x16 v;

  VFloat() = default;
  VFloat(float s) : v(f32x16{} + s) {}  // NOLINT: broadcast, as T(1) in a functor
  explicit VFloat(f32x16 x) : v(x) {}

  // The first `count` <= 16 lanes from p; the others are 0.
  static VFloat load(const float* p, int64_t count) {
    VFloat r;
    if (count == kWidth) {
      std::memcpy(&r.v, p, sizeof r.v);
    } else {
      r.v = f32x16{};
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

inline VFloat operator+(VFloat a, VFloat b) { return VFloat(a.v + b.v); }
inline VFloat operator-(VFloat a, VFloat b) { return VFloat(a.v - b.v); }
inline VFloat operator*(VFloat a, VFloat b) { return VFloat(a.v * b.v); }
inline VFloat operator/(VFloat a, VFloat b) { return VFloat(a.v / b.v); }
inline VFloat operator-(VFloat a) { return VFloat(-a.v); }
inline VFloat& operator+=(VFloat& a, VFloat b) { return a = a + b; }
inline Mask operator>(VFloat a, VFloat b) { return Mask{a.v > b.v}; }
inline Mask operator<(VFloat a, VFloat b) { return Mask{a.v < b.v}; }

// m_select(c, a, b): a where c holds, else b (the vector form of c ? a : b).
inline VFloat m_select(Mask c, VFloat a, VFloat b) { return VFloat(c.m ? a.v : b.v); }

// (C-style casts between vector types of one size reinterpret the bits.)
inline VFloat from_bits(i32x16 bits) { return VFloat((f32x16)bits); }
inline i32x16 to_bits(VFloat x) { return (i32x16)x.v; }

// 2^k for integer k in [-126, 127], built from the exponent bits.
inline VFloat pow2(i32x16 k) { return from_bits((k + 127) << 23); }

// exp(x) = 2^n (1 + q) with r = x - n ln2 in [-ln2/2, ln2/2] and q = expm1(r)
// from its Taylor series to r^7 (truncation error < 2e-9 relative).
// Returns q and sets n. x must already be clamped to |x| < 110.
inline VFloat exp_reduce(VFloat x, i32x16& n) {
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

inline VFloat clamp(VFloat x, float lo, float hi) {  // NaN stays NaN
  x = m_select(x < VFloat(lo), VFloat(lo), x);
  return m_select(x > VFloat(hi), VFloat(hi), x);
}

inline VFloat m_exp(VFloat x) {
  i32x16 n;
  const VFloat q = exp_reduce(clamp(x, -104.0f, 89.0f), n);
  // 2^n in two factors: n runs from -150 (results below the smallest float)
  // to 128 (above the largest), beyond a single float exponent.
  const i32x16 half = n >> 1;
  return (VFloat(1.0f) + q) * pow2(half) * pow2(n - half);
}

// expm1(x) = 2^n q + (2^n - 1), exact in its last step for n == 0, so that
// small x keep their relative accuracy.
inline VFloat m_expm1(VFloat x) {
  i32x16 n;
  const VFloat q = exp_reduce(clamp(x, -88.0f, 89.0f), n);
  const i32x16 big = n > 127;  // 2^128 is not a float: use 2 * 2^127 (1 + q)
  const VFloat s = pow2(big ? i32x16{} + 127 : n);
  return m_select(Mask{big}, VFloat(2.0f) * (s + s * q), s * q + (s - VFloat(1.0f)));
}

// 1 / x for x >= 1 (and +inf, NaN): three Newton steps (six multiply-adds)
// from a bit-trick first guess instead of a vector division, a slow,
// long-latency instruction; within the tests' tolerance above. Beyond 1e38 the
// first guess would leave the float range, so x is capped there (1e-38 for
// 1 / 3e38, far below any tolerance), and 1 / inf is 0 as a division gives.
inline VFloat m_recip(VFloat x) {
  const Mask infinite = x > VFloat(3.4028235e38f);
  const VFloat capped = m_select(x > VFloat(1e38f), VFloat(1e38f), x);
  VFloat r = from_bits(0x7EF311C3 - to_bits(capped));
  for (int step = 0; step < 3; ++step) r = r * (VFloat(2.0f) - capped * r);
  return m_select(infinite, VFloat(0.0f), r);
}

inline VFloat abs(VFloat x) { return from_bits(to_bits(x) & 0x7fffffff); }
inline VFloat copysign(VFloat magnitude, VFloat sign) {
  return from_bits(to_bits(magnitude) | (to_bits(sign) & int32_t(0x80000000u)));
}

// With e = expm1(2|x|): tanh|x| = e / (e + 2), which keeps small x's relative
// accuracy, and = 1 - 2 / (e + 2) from |x| = 0.5 on, which rounds only in the
// last subtraction near 1 (1 + tanh(x) is what gelu's tanh form uses).
// tanh rounds to 1 in float32 from |x| = 9.02 on, so |x| is capped at 10:
// then n <= 29 and expm1 needs neither m_expm1's clamp nor its overflow case.
inline VFloat m_tanh(VFloat x) {
  const VFloat ax = m_select(abs(x) > VFloat(10.0f), VFloat(10.0f), abs(x));  // NaN stays
  i32x16 n;
  const VFloat q = exp_reduce(VFloat(2.0f) * ax, n);
  const VFloat s = pow2(n);
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
inline VFloat m_normcdf(VFloat x) {
  const VFloat z = abs(x) * VFloat(0.70710678118654752f);
  const VFloat t = m_recip(VFloat(1.0f) + VFloat(0.5f) * z);
  static constexpr float kR[] = {
      9.178994694e-06f, 2.818281129e-01f, 2.854722189e-01f, 2.222766604e-01f,
      2.897853505e-01f, -2.638104366e-01f, 7.052551057e-01f, -9.913491853e-01f,
      6.589779586e-01f, -2.176054345e-01f, 2.916046678e-02f};
  VFloat r(kR[10]);
  for (int i = 9; i >= 0; --i) r = r * t + VFloat(kR[i]);
  const VFloat half_erfc = VFloat(0.5f) * m_exp(-(z * z)) * r;
  return m_select(x < VFloat(0.0f), half_erfc, VFloat(1.0f) - half_erfc);
}

// ---- dropout words ----

// words[i] = the Philox word (philox.h) of flat element begin + i, for
// i < count. Out of line, in simd.cpp: the AVX-512 build runs 32 blocks at
// once with instructions the portable vector type cannot express (32 x 32 ->
// 64-bit multiplies); other CPUs use the scalar generator.
void dropout_words(const DropoutMask& mask, uint64_t begin, int64_t count, uint32_t* words);

// Dropout of 16 values: v / keep_prob where kept, 0 where dropped (and in
// the lanes past count <= 16). Dividing, as the CUDA kernels do, rather than
// multiplying by a rounded 1 / keep_prob keeps the devices' results equal.
inline VFloat dropout_apply(const uint32_t* words, int64_t count, uint32_t threshold, VFloat v,
                            float keep_prob) {
  u32x16 w = {};
  if (count == 16) {
    std::memcpy(&w, words, sizeof w);
  } else {
    std::memcpy(&w, words, count * sizeof(uint32_t));
  }
  const i32x16 keep = (w >> 8) >= threshold;
  return m_select(Mask{keep}, v / VFloat(keep_prob), VFloat(0.0f));
}

// ---- run-time instruction-set dispatch ----

enum class Level : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

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
void run_avx512(F& f) { f(); }
template <typename F>
__attribute__((target("avx2,fma,bmi,bmi2"), flatten)) void run_avx2(F& f) { f(); }
template <typename F>
__attribute__((flatten)) void run_baseline(F& f) { f(); }
#endif

// Runs f() compiled for the best instruction set available.
template <typename F>
void simd_dispatch(F&& f) {
#ifdef MLPB_SIMD_DISPATCH
  switch (level()) {
    case Level::Avx512: run_avx512(f); return;
    case Level::Avx2: run_avx2(f); return;
    case Level::Baseline: run_baseline(f); return;
  }
#else
  f();
#endif
}

}  // namespace mlpbench::simd
