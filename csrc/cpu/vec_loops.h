// What the CPU kernels need to handle float, bfloat16 and double alike:
// Pack<T, L> is the vector the kernels compute with for element type T and
// the lanes L that simd_dispatch gives (simd::VFloatT<L::kWidth> for float
// and bfloat16, whose elements are converted on load and store and computed
// in float; plain double, one lane, for double, which serves gradcheck rather
// than speed), with loads and stores of `count` <= kWidth elements so that a
// loop's last, partial vector goes through the same code as the others.
// Scalar is what sums and scale factors are kept in (float for bfloat16).
#pragma once

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>

#include "../philox.h"
#include "simd.h"

namespace mlpbench::cpu {

// The widest vector any build uses (padding sized for every Pack).
constexpr int64_t kMaxWidth = 16;

// A vector's dropout decisions: bit l of keeps.lanes() for its lane l (the
// bits of simd::dropout_keeps, from bit `first` of `bits` on).
struct Keeps {
  const uint64_t* bits;
  int64_t first;
  uint64_t lanes() const { return simd::bits_from(bits, first); }
};

template <typename T, typename L> struct Pack;

template <typename L> struct Pack<float, L> {
  using V = simd::VFloatT<L::kWidth>;
  using Scalar = float;
  using Lanes = L;
  static constexpr int64_t kWidth = V::kWidth;
  static V load(const float* p, int64_t count) { return simd::float_load<L>(p, count); }
  static void store(float* p, V v, int64_t count) { simd::float_store<L>(p, v, count); }
  static V dropout(Keeps keeps, const DropoutMask& mask, V v) {
    return simd::dropout_apply(keeps.lanes(), v, static_cast<float>(mask.scale));
  }
};

template <typename L> struct Pack<c10::BFloat16, L> : Pack<float, L> {
  using V = typename Pack<float, L>::V;
  static V load(const c10::BFloat16* p, int64_t count) {
    return simd::bf16_load<L>(reinterpret_cast<const uint16_t*>(p), count);
  }
  static void store(c10::BFloat16* p, V v, int64_t count) {
    simd::bf16_store<L>(reinterpret_cast<uint16_t*>(p), v, count);
  }
};

template <typename L> struct Pack<double, L> {
  using V = double;
  using Scalar = double;
  using Lanes = L;
  static constexpr int64_t kWidth = 1;
  static V load(const double* p, int64_t) { return *p; }
  static void store(double* p, V v, int64_t) { *p = v; }
  static V dropout(Keeps keeps, const DropoutMask& mask, V v) {
    return dropout_value((keeps.lanes() & 1) != 0, v, mask.scale);
  }
};

// How far ahead the streaming loops prefetch. The hardware prefetcher alone
// falls behind once a loop computes more per vector than a copy does
// (docs/cpu-tuning.md).
constexpr uintptr_t kPrefetchBytes = 4096;

// Prefetches the line kPrefetchBytes past p, for reading or (write) writing.
// (Integer arithmetic: the address may lie past the array, where a prefetch
// is harmless but pointer arithmetic is not defined.)
template <bool write = false>
inline void prefetch_ahead(const void* p) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + kPrefetchBytes),
                     write);
}

// out[i] = f(a[i]) for i < n with the pack P: full vectors, then one partial
// vector. The pointers arrive by value and unaliased, so the loop keeps them in
// registers.
template <typename P, typename T, typename F>
inline void map_unary(const T* __restrict a, T* __restrict out, int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + P::kWidth <= n; i += P::kWidth) {
    prefetch_ahead(a + i);
    prefetch_ahead<true>(out + i);
    P::store(out + i, f(P::load(a + i, P::kWidth)), P::kWidth);
  }
  if (i < n) P::store(out + i, f(P::load(a + i, n - i)), n - i);
}

// out[i] = f(a[i], b[i]) for i < n.
template <typename P, typename T, typename F>
inline void map_binary(const T* __restrict a, const T* __restrict b, T* __restrict out,
                       int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + P::kWidth <= n; i += P::kWidth) {
    prefetch_ahead(a + i);
    prefetch_ahead(b + i);
    prefetch_ahead<true>(out + i);
    P::store(out + i, f(P::load(a + i, P::kWidth), P::load(b + i, P::kWidth)), P::kWidth);
  }
  if (i < n) P::store(out + i, f(P::load(a + i, n - i), P::load(b + i, n - i)), n - i);
}

// Elements per span of keep bits: the kernels walk long spans in pieces this
// long so that the bits stay in L1.
constexpr int64_t kSpan = 1024;

// The walk every dropout-aware kernel makes over the flat elements
// [start, start + count): f(e, m, keeps) for each vector, e its offset from
// start, m <= kWidth its element count, keeps its dropout decisions (unused
// when mask is null). Each span takes the 64-element groups it touches; a
// group shared with the span before is copied, not drawn again.
template <typename P, typename F>
inline void for_each_vector(const DropoutMask* mask, int64_t start, int64_t count, const F& f) {
  constexpr int64_t kWidth = P::kWidth;
  // The groups of one span, and one more word that bits_from may read.
  uint64_t bits[kSpan / 64 + 2] = {};
  uint64_t last_group = ~uint64_t{0}, last_bits = 0;
  for (int64_t s0 = 0; s0 < count; s0 += kSpan) {
    const int64_t span = std::min(kSpan, count - s0);
    const uint64_t first = static_cast<uint64_t>(start + s0);
    if (mask) {
      const uint64_t g0 = first >> 6, g1 = (first + static_cast<uint64_t>(span) + 63) >> 6;
      int64_t have = 0;
      if (g0 == last_group) {
        bits[0] = last_bits;
        have = 1;
      }
      simd::dropout_keeps(*mask, g0 + have, static_cast<int64_t>(g1 - g0) - have, bits + have);
      last_group = g1 - 1;
      last_bits = bits[g1 - 1 - g0];
    }
    for (int64_t i = 0; i < span; i += kWidth) {
      f(s0 + i, std::min(kWidth, span - i), Keeps{bits, static_cast<int64_t>(first & 63) + i});
    }
  }
}

}  // namespace mlpbench::cpu
