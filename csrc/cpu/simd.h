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
// Two vector types share that source: VFloat, portable, and VFloat512, which
// exists only inside the AVX-512 build (simd_dispatch hands the kernel a tag
// saying which to use). A few steps have AVX-512 instructions that do them in
// one go, and VFloat512 overloads just those: scaling by 2^n (vscalefps, which
// also handles overflow and underflow) and the reciprocal (vrcp14ps, 14 bits,
// then one Newton step instead of three from a bit trick). The functors and
// the rest of the math are the same source for both.
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
#define MLPB_SIMD_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi,bmi2")))
#endif

namespace mlpbench::simd {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

struct Mask {
  i32x16 m;  // all ones where true
};

// kAvx512: whether the AVX-512-only overloads below apply (VFloat512).
template <bool kAvx512>
struct VFloatT {
  static constexpr int64_t kWidth = 16;
  f32x16 v;

  VFloatT() = default;
  VFloatT(float s) : v(f32x16{} + s) {}  // NOLINT: broadcast, as T(1) in a functor
  explicit VFloatT(f32x16 x) : v(x) {}

  // The first `count` <= 16 lanes from p; the others are 0.
  static VFloatT load(const float* p, int64_t count) {
    VFloatT r;
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

using VFloat = VFloatT<false>;
using VFloat512 = VFloatT<true>;

#define MLPB_VFLOAT_OP(op)                                     \
  template <bool A>                                            \
  inline VFloatT<A> operator op(VFloatT<A> a, VFloatT<A> b) {  \
    return VFloatT<A>(a.v op b.v);                             \
  }
MLPB_VFLOAT_OP(+)
MLPB_VFLOAT_OP(-)
MLPB_VFLOAT_OP(*)
MLPB_VFLOAT_OP(/)
#undef MLPB_VFLOAT_OP
template <bool A> inline VFloatT<A> operator-(VFloatT<A> a) { return VFloatT<A>(-a.v); }
template <bool A> inline VFloatT<A>& operator+=(VFloatT<A>& a, VFloatT<A> b) { return a = a + b; }
template <bool A> inline Mask operator>(VFloatT<A> a, VFloatT<A> b) { return Mask{a.v > b.v}; }
template <bool A> inline Mask operator<(VFloatT<A> a, VFloatT<A> b) { return Mask{a.v < b.v}; }

// m_select(c, a, b): a where c holds, else b (the vector form of c ? a : b).
template <bool A> inline VFloatT<A> m_select(Mask c, VFloatT<A> a, VFloatT<A> b) {
  return VFloatT<A>(c.m ? a.v : b.v);
}

// (C-style casts between vector types of one size reinterpret the bits.)
template <bool A> inline VFloatT<A> from_bits(i32x16 bits) { return VFloatT<A>((f32x16)bits); }
template <bool A> inline i32x16 to_bits(VFloatT<A> x) { return (i32x16)x.v; }

// 2^k for integer k in [-126, 127], built from the exponent bits.
template <bool A> inline VFloatT<A> pow2(i32x16 k) { return from_bits<A>((k + 127) << 23); }

// a * 2^n for a in [0.5, 2] (or inf, NaN) and integer-valued nf in
// [-150, 128]: the result may be below the smallest normal float or above the
// largest, beyond a single float exponent, so 2^n comes in two factors.
template <bool A> inline VFloatT<A> scale_pow2(VFloatT<A> a, VFloatT<A> nf) {
  const i32x16 n = __builtin_convertvector(nf.v, i32x16);
  const i32x16 half = n >> 1;
  return a * pow2<A>(half) * pow2<A>(n - half);
}

// exp(x) = 2^n (1 + q) with r = x - n ln2 in [-ln2/2, ln2/2] and q = expm1(r)
// from its Taylor series to r^7 (truncation error < 2e-9 relative).
// Returns q and sets nf = n. x must already be clamped to |x| < 110.
template <bool A> inline VFloatT<A> exp_reduce(VFloatT<A> x, VFloatT<A>& nf) {
  using V = VFloatT<A>;
  const V shifter(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  nf = (x * V(1.44269504088896341f) + shifter) - shifter;
  // ln 2 split so that nf * kLn2Hi is exact for |n| < 2^11.
  const V r = (x - nf * V(0.693145751953125f)) - nf * V(1.428606765330187e-06f);
  V p(1.0f / 5040);
  p = p * r + V(1.0f / 720);
  p = p * r + V(1.0f / 120);
  p = p * r + V(1.0f / 24);
  p = p * r + V(1.0f / 6);
  p = p * r + V(0.5f);
  return r + r * r * p;
}

template <bool A> inline VFloatT<A> clamp(VFloatT<A> x, float lo, float hi) {  // NaN stays NaN
  x = m_select(x < VFloatT<A>(lo), VFloatT<A>(lo), x);
  return m_select(x > VFloatT<A>(hi), VFloatT<A>(hi), x);
}

template <bool A> inline VFloatT<A> m_exp(VFloatT<A> x) {
  VFloatT<A> nf;
  const VFloatT<A> q = exp_reduce(clamp(x, -104.0f, 89.0f), nf);
  return scale_pow2(VFloatT<A>(1.0f) + q, nf);
}

// expm1(x) = 2^n q + (2^n - 1), exact in its last step for n == 0, so that
// small x keep their relative accuracy.
template <bool A> inline VFloatT<A> m_expm1(VFloatT<A> x) {
  using V = VFloatT<A>;
  V nf;
  const V q = exp_reduce(clamp(x, -88.0f, 89.0f), nf);
  const i32x16 n = __builtin_convertvector(nf.v, i32x16);
  const i32x16 big = n > 127;  // 2^128 is not a float: use 2 * 2^127 (1 + q)
  const V s = pow2<A>(big ? i32x16{} + 127 : n);
  return m_select(Mask{big}, V(2.0f) * (s + s * q), s * q + (s - V(1.0f)));
}

// 1 / x for x >= 1 (and +inf, NaN): three Newton steps (six multiply-adds)
// from a bit-trick first guess instead of a vector division, a slow,
// long-latency instruction; within the tests' tolerance above. Beyond 1e38 the
// first guess would leave the float range, so x is capped there (1e-38 for
// 1 / 3e38, far below any tolerance), and 1 / inf is 0 as a division gives.
template <bool A> inline VFloatT<A> m_recip(VFloatT<A> x) {
  using V = VFloatT<A>;
  const Mask infinite = x > V(3.4028235e38f);
  const V capped = m_select(x > V(1e38f), V(1e38f), x);
  V r = from_bits<A>(0x7EF311C3 - to_bits(capped));
  for (int step = 0; step < 3; ++step) r = r * (V(2.0f) - capped * r);
  return m_select(infinite, V(0.0f), r);
}

#ifdef MLPB_SIMD_DISPATCH
// The AVX-512 overloads (non-templates, so preferred over the ones above).
// They carry the AVX-512 target themselves, so they are inlined only into
// code compiled for it (run_avx512 below). (The zero-masking forms with every
// lane selected: GCC 12 warns about the plain forms' undefined source.)
constexpr __mmask16 kAllLanes = 0xFFFF;

MLPB_SIMD_AVX512 inline VFloat512 scale_pow2(VFloat512 a, VFloat512 nf) {
  return VFloat512((f32x16)_mm512_maskz_scalef_ps(kAllLanes, (__m512)a.v, (__m512)nf.v));
}

// One Newton step after vrcp14ps's 14 bits. vrcp14ps gives exactly 0 for
// inf; the step uses x capped at 3e38 so that it keeps that 0 rather than
// making inf * 0 = NaN.
MLPB_SIMD_AVX512 inline VFloat512 m_recip(VFloat512 x) {
  const VFloat512 r((f32x16)_mm512_maskz_rcp14_ps(kAllLanes, (__m512)x.v));
  const VFloat512 capped = m_select(x > VFloat512(3e38f), VFloat512(3e38f), x);  // NaN stays
  return r * (VFloat512(2.0f) - capped * r);
}
#endif

template <bool A> inline VFloatT<A> abs(VFloatT<A> x) {
  return from_bits<A>(to_bits(x) & 0x7fffffff);
}
template <bool A> inline VFloatT<A> copysign(VFloatT<A> magnitude, VFloatT<A> sign) {
  return from_bits<A>(to_bits(magnitude) | (to_bits(sign) & int32_t(0x80000000u)));
}

// With e = expm1(2|x|): tanh|x| = e / (e + 2), which keeps small x's relative
// accuracy, and = 1 - 2 / (e + 2) from |x| = 0.5 on, which rounds only in the
// last subtraction near 1 (1 + tanh(x) is what gelu's tanh form uses).
// tanh rounds to 1 in float32 from |x| = 9.02 on, so |x| is capped at 10:
// then n <= 29 and expm1 needs neither m_expm1's clamp nor its overflow case.
template <bool A> inline VFloatT<A> m_tanh(VFloatT<A> x) {
  using V = VFloatT<A>;
  const V ax = m_select(abs(x) > V(10.0f), V(10.0f), abs(x));  // NaN stays
  V nf;
  const V q = exp_reduce(V(2.0f) * ax, nf);
  const V s = pow2<A>(__builtin_convertvector(nf.v, i32x16));
  const V e = s * q + (s - V(1.0f));
  const V d = m_recip(e + V(2.0f));
  const V t = m_select(ax < V(0.5f), e * d, V(1.0f) - V(2.0f) * d);
  return copysign(t, x);
}

// Phi(x), the standard normal CDF: 0.5 erfc(-x / sqrt 2). With z = |x| / sqrt 2,
// erfc(z) = exp(-z^2) R(t), t = 1 / (1 + z / 2), and R a degree-10 polynomial
// in t fitted to exp(z^2) erfc(z) on 0 <= z <= 10 (scripts/fit_erfcx.py;
// 3e-7 relative in float32). The negative tail is computed directly, not as
// 1 - something, so it keeps its relative accuracy.
template <bool A> inline VFloatT<A> m_normcdf(VFloatT<A> x) {
  using V = VFloatT<A>;
  const V z = abs(x) * V(0.70710678118654752f);
  const V t = m_recip(V(1.0f) + V(0.5f) * z);
  static constexpr float kR[] = {
      9.178994694e-06f, 2.818281129e-01f, 2.854722189e-01f, 2.222766604e-01f,
      2.897853505e-01f, -2.638104366e-01f, 7.052551057e-01f, -9.913491853e-01f,
      6.589779586e-01f, -2.176054345e-01f, 2.916046678e-02f};
  V r(kR[10]);
  for (int i = 9; i >= 0; --i) r = r * t + V(kR[i]);
  const V half_erfc = V(0.5f) * m_exp(-(z * z)) * r;
  return m_select(x < V(0.0f), half_erfc, V(1.0f) - half_erfc);
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
template <bool A>
inline VFloatT<A> dropout_apply(const uint32_t* words, int64_t count, uint32_t threshold,
                                VFloatT<A> v, float keep_prob) {
  u32x16 w = {};
  if (count == 16) {
    std::memcpy(&w, words, sizeof w);
  } else {
    std::memcpy(&w, words, count * sizeof(uint32_t));
  }
  const i32x16 keep = (w >> 8) >= threshold;
  return m_select(Mask{keep}, v / VFloatT<A>(keep_prob), VFloatT<A>(0.0f));
}

// ---- run-time instruction-set dispatch ----

enum class Level : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// What simd_dispatch tells the kernel: whether it runs in the AVX-512 build.
template <bool A> struct Isa {
  static constexpr bool kAvx512 = A;
};

// The best level this CPU supports, lowered by set_level() (tests compare levels).
Level level();
Level best_level();
void set_level(Level l);  // clamped to best_level()

#ifdef MLPB_SIMD_DISPATCH
// flatten inlines every call made inside, so the body and the functors and
// vector math it calls are all compiled for the target's instruction set.
template <typename F>
MLPB_SIMD_AVX512 __attribute__((flatten)) void run_avx512(F& f) { f(Isa<true>{}); }
template <typename F>
__attribute__((target("avx2,fma,bmi,bmi2"), flatten)) void run_avx2(F& f) { f(Isa<false>{}); }
template <typename F>
__attribute__((flatten)) void run_baseline(F& f) { f(Isa<false>{}); }
#endif

// Runs f(isa) compiled for the best instruction set available; isa is an
// Isa<A>, and A says whether the kernel may compute with VFloat512.
template <typename F>
void simd_dispatch(F&& f) {
#ifdef MLPB_SIMD_DISPATCH
  switch (level()) {
    case Level::Avx512: run_avx512(f); return;
    case Level::Avx2: run_avx2(f); return;
    case Level::Baseline: run_baseline(f); return;
  }
#else
  f(Isa<false>{});
#endif
}

}  // namespace mlpbench::simd
