// Counter-based random numbers for dropout, written once for the CPU and CUDA.
//
// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11). The dropout mask is a pure function of
// (seed, offset, element index), so backward regenerates it instead of storing
// it, and both devices produce the same mask bit for bit.
//
// Mapping from the flat (row-major, contiguous) element index i to a word:
//   counter = (lo32(i / 4), hi32(i / 4), lo32(offset), hi32(offset))
//   key     = (lo32(seed), hi32(seed))
//   word    = philox4x32_10(counter, key)[i % 4]
// Uniform:  u = (word >> 8) * 2^-24, in [0, 1) with 24 bits, exact in float.
// Element i is KEPT when u >= p. The comparison is done on integers,
// (word >> 8) >= ceil(p * 2^24), with the threshold computed once on the host
// in double, so no float rounding on either device can flip a decision.
#pragma once

#include <cmath>
#include <cstdint>

#include "activations.h"  // MLPB_HD

namespace mlpbench {

struct Philox4 {
  uint32_t v[4];
};

MLPB_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// The round multipliers and the key's per-round increments (Weyl sequence),
// shared by the CPU's vector generators (simd.cpp).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

MLPB_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                              uint32_t k0, uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(kPhiloxM0, c0, &hi0);
    const uint32_t lo1 = mulhilo32(kPhiloxM1, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Everything a kernel needs to decide and scale one element.
struct DropoutMask {
  uint64_t seed = 0;
  // A CUDA seed tensor's memory, which the CUDA kernels read (in_kernel())
  // instead of `seed`: a captured CUDA graph then uses each replay's seed,
  // where a value read on the host would freeze the capture's mask.
  const int64_t* seed_on_device = nullptr;
  uint64_t offset = 0;
  uint32_t threshold = 0;  // keep when (word >> 8) >= threshold
  double keep_prob = 1.0;  // 1 - p
  double scale = 1.0;      // 1 / (1 - p): kept values are multiplied by it

  // The four words for flat indices 4*block .. 4*block+3.
  MLPB_HD Philox4 block_words(uint64_t block) const {
    return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                         static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                         static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  }
  MLPB_HD bool keeps_word(uint32_t word) const { return (word >> 8) >= threshold; }
  MLPB_HD bool keeps(uint64_t index) const {
    return keeps_word(block_words(index >> 2).v[index & 3]);
  }
  // The mask with its seed loaded from device memory where it lives there:
  // what a CUDA kernel uses (only there: the host cannot read that memory).
  MLPB_HD DropoutMask in_kernel() const {
    DropoutMask m = *this;
    if (seed_on_device != nullptr) m.seed = static_cast<uint64_t>(*seed_on_device);
    return m;
  }
};

// Dropout's scaling, the one place it is written: v * scale where kept, as
// stock multiplies by 1 / (1 - p), and v * 0 where dropped (0, or NaN for a
// NaN or infinite v, as stock's v * mask). scale is DropoutMask::scale
// rounded once to T, so every device gives the same bits (a multiply: a
// divide is slow on the CPU). K is bool for a scalar, the vector mask of
// simd.h, or a TMask (composite.cpp); m_select picks lane by lane.
template <typename K, typename T> MLPB_HD T dropout_value(K kept, T v, T scale) {
  return m_select(kept, v * scale, v * T(0));
}

// Host side: the mask for probability p (already checked to lie in [0, 1]).
inline DropoutMask make_dropout_mask(double p, uint64_t seed, uint64_t offset) {
  DropoutMask mask;
  mask.seed = seed;
  mask.offset = offset;
  mask.threshold = static_cast<uint32_t>(std::ceil(p * 16777216.0));  // 2^24
  mask.keep_prob = 1.0 - p;
  mask.scale = 1.0 / mask.keep_prob;  // inf for p = 1, where nothing is kept
  return mask;
}

}  // namespace mlpbench
