// Which instruction set simd_dispatch() runs the CPU kernels with, and the
// dropout keep bits (Philox4x32-10, philox.h) for groups of 64 elements: 32
// blocks (256 elements) at a time with AVX-512, 16 with AVX2, one by one
// otherwise; the same bits.
#include "simd.h"

#include <algorithm>
#include <atomic>
#include <initializer_list>

#ifdef MLPB_SIMD_DISPATCH
#include <immintrin.h>
#endif

namespace mlpbench::simd {
namespace {

Level detect() {
#ifdef MLPB_SIMD_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("bmi2")) {
    return __builtin_cpu_supports("avx512bf16") ? Level::Avx512Bf16 : Level::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2")) {
    return Level::Avx2;
  }
#endif
  return Level::Baseline;
}

std::atomic<int> chosen{-1};

// Keep bits of groups [group, group + groups): bits[g] bit k for element
// 64 (group + g) + k.
void scalar_keeps(const DropoutMask& mask, uint64_t group, int64_t groups, uint64_t* bits) {
  for (int64_t g = 0; g < groups; ++g) {
    const uint64_t first = 64 * (group + static_cast<uint64_t>(g));
    uint64_t keeps = 0;
    for (int k = 0; k < 8; ++k) {
      const Philox4 words = mask.block_words((first >> 3) + k);
      for (int e = 0; e < 8; ++e) {
        const uint64_t i = first + 8 * k + e;
        keeps |= uint64_t{mask.keeps_draw(DropoutMask::draw_of(words, i), i)} << (8 * k + e);
      }
    }
    bits[g] = keeps;
  }
}

#ifdef MLPB_SIMD_DISPATCH
#define MLPB_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,bmi2")))

// (lo, hi) halves of the 64-bit products m * a, lane by lane (32-bit lanes).
// One masked dword shuffle puts each result's halves in place, where a shift
// and a blend took two instructions (the rounds: 12 instead of 16 a group).
MLPB_AVX512 inline void mulhilo16(__m512i m, __m512i a, __m512i& lo, __m512i& hi) {
  const __m512i even = _mm512_mul_epu32(a, m);                      // lanes 0, 2, ...
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1, 3, ...
  // lo: even's low words stay, odd's low words (dwords 0, 2) move up a lane;
  // hi: odd's high words stay, even's high words (dwords 1, 3) move down.
  lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, static_cast<_MM_PERM_ENUM>(0xA0));
  hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, static_cast<_MM_PERM_ENUM>(0xF5));
}

// Philox of 16 consecutive blocks, lane k = block block0 + k; the four result
// words c0..c3 are transposed so that block k's words are consecutive.
struct Blocks16 {
  __m512i c0, c1, c2, c3;
};

MLPB_AVX512 inline Blocks16 philox16(const DropoutMask& mask, uint64_t block0) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i base = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(block0)));
  Blocks16 r;
  r.c0 = _mm512_add_epi32(base, lane);
  // Blocks past a 2^32 boundary carry into the high word.
  const __mmask16 carry = _mm512_cmplt_epu32_mask(r.c0, base);
  r.c1 = _mm512_mask_add_epi32(_mm512_set1_epi32(static_cast<int>(block0 >> 32)), carry,
                               _mm512_set1_epi32(static_cast<int>(block0 >> 32)),
                               _mm512_set1_epi32(1));
  r.c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(mask.offset)));
  r.c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(mask.offset >> 32)));
  return r;
}

MLPB_AVX512 inline void philox_rounds(const DropoutMask& mask, Blocks16& a, Blocks16& b) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0 = static_cast<uint32_t>(mask.seed), k1 = static_cast<uint32_t>(mask.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0));
    const __m512i key1 = _mm512_set1_epi32(static_cast<int>(k1));
    // Two independent groups interleaved, to hide the multiplies' latency.
    for (Blocks16* g : {&a, &b}) {
      __m512i lo0, hi0, lo1, hi1;
      mulhilo16(m0, g->c0, lo0, hi0);
      mulhilo16(m1, g->c2, lo1, hi1);
      g->c0 = _mm512_ternarylogic_epi32(hi1, g->c1, key0, 0x96);  // three-way xor
      g->c1 = lo1;
      g->c2 = _mm512_ternarylogic_epi32(hi0, g->c3, key1, 0x96);
      g->c3 = lo0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// Word j of block k holds the draws of elements 8k + 2j (its low half) and
// 8k + 2j + 1 (high half): bits 2k and 2k + 1 of a 16-bit compare on word j
// go to bits 8k + 2j and 8k + 2j + 1 of the element-order bits, one deposit
// (pdep) per 8 blocks.
constexpr uint64_t kPairs = 0x0303030303030303ull;

// Keep bits of r's 16 blocks (128 elements from element `first`) into
// out[0] and out[1]. keep_above < 2^16.
MLPB_AVX512 inline void keep_bits16(const DropoutMask& mask, const Blocks16& r, uint64_t first,
                                    uint64_t* out) {
  const __m512i above = _mm512_set1_epi16(static_cast<int16_t>(mask.keep_above));
  const __m512i words[4] = {r.c0, r.c1, r.c2, r.c3};
  uint64_t low = 0, high = 0;
  uint32_t ties = 0;
  for (int j = 0; j < 4; ++j) {
    const uint32_t kept = _mm512_cmpgt_epu16_mask(words[j], above);
    ties |= _mm512_cmpeq_epu16_mask(words[j], above);
    low |= _pdep_u64(kept & 0xFFFFu, kPairs << (2 * j));
    high |= _pdep_u64(kept >> 16, kPairs << (2 * j));
  }
  out[0] = low;
  out[1] = high;
  // A draw equal to keep_above needs its tie draw: the scalar generator
  // redoes these 128 elements (about one call in 500).
  if (ties != 0) scalar_keeps(mask, first >> 6, 2, out);
}

// Groups [group, group + groups), groups a multiple of 4.
MLPB_AVX512 void avx512_keeps(const DropoutMask& mask, uint64_t group, int64_t groups,
                              uint64_t* bits) {
  for (int64_t g = 0; g < groups; g += 4) {
    const uint64_t first = 64 * (group + static_cast<uint64_t>(g));
    Blocks16 a = philox16(mask, first >> 3), b = philox16(mask, (first >> 3) + 16);
    philox_rounds(mask, a, b);
    keep_bits16(mask, a, first, bits + g);
    keep_bits16(mask, b, first + 128, bits + g + 2);
  }
}

#define MLPB_AVX2 __attribute__((target("avx2,bmi2")))

// The AVX2 generator: as the AVX-512 one above, on 8 lanes.
MLPB_AVX2 inline void mulhilo8(__m256i m, __m256i a, __m256i& lo, __m256i& hi) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

struct Blocks8 {
  __m256i c0, c1, c2, c3;
};

MLPB_AVX2 inline Blocks8 philox8(const DropoutMask& mask, uint64_t block0) {
  const __m256i base = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block0)));
  const __m256i high = _mm256_set1_epi32(static_cast<int>(block0 >> 32));
  Blocks8 r;
  r.c0 = _mm256_add_epi32(base, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  // Blocks past a 2^32 boundary carry into the high word: c0 < base,
  // unsigned, compared as signed after flipping the sign bits (-1 where true).
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(base, sign),
                                           _mm256_xor_si256(r.c0, sign));
  r.c1 = _mm256_sub_epi32(high, carry);
  r.c2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(mask.offset)));
  r.c3 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(mask.offset >> 32)));
  return r;
}

MLPB_AVX2 inline void philox_rounds8(const DropoutMask& mask, Blocks8& a, Blocks8& b) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0 = static_cast<uint32_t>(mask.seed), k1 = static_cast<uint32_t>(mask.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i key1 = _mm256_set1_epi32(static_cast<int>(k1));
    for (Blocks8* g : {&a, &b}) {
      __m256i lo0, hi0, lo1, hi1;
      mulhilo8(m0, g->c0, lo0, hi0);
      mulhilo8(m1, g->c2, lo1, hi1);
      g->c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, g->c1), key0);
      g->c1 = lo1;
      g->c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, g->c3), key1);
      g->c3 = lo0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// Keep bits of r's 8 blocks (the 64 elements of group `group`), as
// keep_bits16. Unsigned 16-bit compares are signed ones on sign-flipped
// values; movemask gives two bits a lane, pext keeps one.
MLPB_AVX2 inline uint64_t keep_bits8(const DropoutMask& mask, const Blocks8& r, uint64_t group) {
  const __m256i flip = _mm256_set1_epi16(static_cast<int16_t>(0x8000));
  const __m256i above = _mm256_set1_epi16(static_cast<int16_t>(mask.keep_above ^ 0x8000u));
  const __m256i words[4] = {r.c0, r.c1, r.c2, r.c3};
  uint64_t keeps = 0;
  uint32_t ties = 0;
  for (int j = 0; j < 4; ++j) {
    const __m256i w = _mm256_xor_si256(words[j], flip);
    const uint32_t kept = _pext_u32(
        static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpgt_epi16(w, above))), 0x55555555u);
    ties |= static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi16(w, above)));
    keeps |= _pdep_u64(kept, kPairs << (2 * j));
  }
  if (ties != 0) scalar_keeps(mask, group, 1, &keeps);
  return keeps;
}

// Groups [group, group + groups), two at a time (the second of an odd last
// pair computed and left).
MLPB_AVX2 void avx2_keeps(const DropoutMask& mask, uint64_t group, int64_t groups,
                          uint64_t* bits) {
  for (int64_t g = 0; g < groups; g += 2) {
    const uint64_t first = group + static_cast<uint64_t>(g);
    Blocks8 a = philox8(mask, 8 * first), b = philox8(mask, 8 * first + 8);
    philox_rounds8(mask, a, b);
    bits[g] = keep_bits8(mask, a, first);
    if (g + 1 < groups) bits[g + 1] = keep_bits8(mask, b, first + 1);
  }
}
#endif

}  // namespace

Level best_level() {
  static const Level best = detect();
  return best;
}

Level level() {
  const int l = chosen.load(std::memory_order_relaxed);
  return l < 0 ? best_level() : static_cast<Level>(l);
}

void set_level(Level l) {
  const Level best = best_level();
  chosen.store(static_cast<int>(static_cast<int>(l) < static_cast<int>(best) ? l : best));
}

void dropout_keeps(const DropoutMask& mask, uint64_t group, int64_t groups, uint64_t* bits) {
  if (groups <= 0) return;
  if (mask.keep_above > 0xFFFFu) {  // p = 1: nothing is kept
    std::fill_n(bits, groups, uint64_t{0});
    return;
  }
  int64_t done = 0;
#ifdef MLPB_SIMD_DISPATCH
  if (level() >= Level::Avx512) {
    done = groups & ~int64_t{3};
    avx512_keeps(mask, group, done, bits);
  }
  if (level() >= Level::Avx2) {
    avx2_keeps(mask, group + static_cast<uint64_t>(done), groups - done, bits + done);
    done = groups;
  }
#endif
  scalar_keeps(mask, group + static_cast<uint64_t>(done), groups - done, bits + done);
}

}  // namespace mlpbench::simd
