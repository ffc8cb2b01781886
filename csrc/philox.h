// Counter-based random numbers for dropout, written once for the CPU and CUDA.
//
// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11). The dropout mask is a pure function of
// (seed, offset, element index), so backward regenerates it instead of storing
// it, and both devices produce the same mask bit for bit.
//
// Each element draws 16 bits, so that one Philox call (four 32-bit words)
// decides eight elements. For the flat (row-major, contiguous) index i:
//   block   = i / 8
//   counter = (lo32(block), hi32(block), lo32(offset), hi32(offset))
//   key     = (lo32(seed), hi32(seed))
//   word    = philox4x32_10(counter, key)[(i / 2) % 4]
//   draw    = the low 16 bits of word for even i, the high 16 for odd i.
// The element's uniform is u = (draw * 2^16 + tie) * 2^-32, in [0, 1) with 32
// bits, and element i is KEPT when u >= p. On integers, with
// ceil(p * 2^32) = above * 2^16 + from (computed once on the host, in double,
// exactly): kept when draw > above, or draw == above and tie >= from. The 16
// bits `tie` are only needed in that second case (probability 2^-16): they are
// element i's draw in the same mapping with the block counter's top bit set,
// a stream the first never reaches (block < 2^61). So p is honoured to 2^-32
// although most decisions cost half a word.
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
  // ceil(p * 2^32) = keep_above * 2^16 + tie_from (see the top of this file);
  // keep_above is 65536 for p = 1, where nothing is kept.
  uint32_t keep_above = 0, tie_from = 0;
  double keep_prob = 1.0;  // 1 - p
  double scale = 1.0;      // 1 / (1 - p): kept values are multiplied by it

  // The four words of block `block`: the draws of elements 8 block .. 8 block + 7.
  MLPB_HD Philox4 block_words(uint64_t block) const {
    return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                         static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                         static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  }
  // Element `index`'s 16-bit draw, from its block's words. (Selects, not
  // words.v[lane]: a dynamic index would put the words in a GPU's local memory.)
  MLPB_HD static uint32_t draw_of(const Philox4& words, uint64_t index) {
    const uint32_t lane = (index >> 1) & 3;
    const uint32_t word = lane == 0 ? words.v[0]
                          : lane == 1 ? words.v[1]
                          : lane == 2 ? words.v[2]
                                      : words.v[3];
    return (word >> ((index & 1) * 16)) & 0xFFFFu;
  }
  // Whether element `index`, whose draw is `draw`, is kept.
  MLPB_HD bool keeps_draw(uint32_t draw, uint64_t index) const {
    if (draw != keep_above) return draw > keep_above;
    const uint64_t tie_block = (index >> 3) | (uint64_t{1} << 63);
    return draw_of(block_words(tie_block), index) >= tie_from;
  }
  // Whether element `index` of block `words` (block_words(index / 8)) is kept.
  MLPB_HD bool keeps_from(const Philox4& words, uint64_t index) const {
    return keeps_draw(draw_of(words, index), index);
  }
  MLPB_HD bool keeps(uint64_t index) const { return keeps_from(block_words(index >> 3), index); }
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
  const uint64_t threshold = static_cast<uint64_t>(std::ceil(p * 4294967296.0));  // 2^32, exact
  mask.keep_above = static_cast<uint32_t>(threshold >> 16);
  mask.tie_from = static_cast<uint32_t>(threshold & 0xFFFFu);
  mask.keep_prob = 1.0 - p;
  mask.scale = 1.0 / mask.keep_prob;  // inf for p = 1, where nothing is kept
  return mask;
}

}  // namespace mlpbench
