// Which instruction set simd_dispatch() runs the CPU kernels with, and the
// dropout words (Philox4x32-10, philox.h) for spans of elements: 32 blocks at
// a time with AVX-512, 16 with AVX2, one by one otherwise; the same words.
#include "simd.h"

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

// Words of blocks [block, block + blocks) into words[4 (b - block) + j].
void scalar_words(const DropoutMask& mask, uint64_t block, int64_t blocks, uint32_t* words) {
  for (int64_t b = 0; b < blocks; ++b) {
    const Philox4 w = mask.block_words(block + b);
    for (int j = 0; j < 4; ++j) words[4 * b + j] = w.v[j];
  }
}

#ifdef MLPB_SIMD_DISPATCH
#define MLPB_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))

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

// Stores the 64 words of 16 blocks in element order (block k's word j at 4 k + j).
MLPB_AVX512 inline void store_words(const Blocks16& r, uint32_t* out) {
  // Within each 128-bit lane L (blocks 4L .. 4L+3): a = block 4L's four words, ...
  const __m512i lo01 = _mm512_unpacklo_epi32(r.c0, r.c1), hi01 = _mm512_unpackhi_epi32(r.c0, r.c1);
  const __m512i lo23 = _mm512_unpacklo_epi32(r.c2, r.c3), hi23 = _mm512_unpackhi_epi32(r.c2, r.c3);
  const __m512i a = _mm512_unpacklo_epi64(lo01, lo23), b = _mm512_unpackhi_epi64(lo01, lo23);
  const __m512i c = _mm512_unpacklo_epi64(hi01, hi23), d = _mm512_unpackhi_epi64(hi01, hi23);
  // ... then gather lane L of a, b, c, d into output vector L.
  const __m512i ab01 = _mm512_shuffle_i32x4(a, b, 0x44), cd01 = _mm512_shuffle_i32x4(c, d, 0x44);
  const __m512i ab23 = _mm512_shuffle_i32x4(a, b, 0xEE), cd23 = _mm512_shuffle_i32x4(c, d, 0xEE);
  _mm512_storeu_si512(out, _mm512_shuffle_i32x4(ab01, cd01, 0x88));
  _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(ab01, cd01, 0xDD));
  _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(ab23, cd23, 0x88));
  _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(ab23, cd23, 0xDD));
}

// Blocks [block, block + blocks), blocks a multiple of 32.
MLPB_AVX512 void avx512_words(const DropoutMask& mask, uint64_t block, int64_t blocks,
                              uint32_t* words) {
  for (int64_t b = 0; b < blocks; b += 32) {
    Blocks16 first = philox16(mask, block + b), second = philox16(mask, block + b + 16);
    philox_rounds(mask, first, second);
    store_words(first, words + 4 * b);
    store_words(second, words + 4 * b + 64);
  }
}

#define MLPB_AVX2 __attribute__((target("avx2")))

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

// Stores the 32 words of 8 blocks in element order.
MLPB_AVX2 inline void store_words8(const Blocks8& r, uint32_t* out) {
  // Within each 128-bit half H: a = block 4H's four words, b = block 4H+1's, ...
  const __m256i lo01 = _mm256_unpacklo_epi32(r.c0, r.c1), hi01 = _mm256_unpackhi_epi32(r.c0, r.c1);
  const __m256i lo23 = _mm256_unpacklo_epi32(r.c2, r.c3), hi23 = _mm256_unpackhi_epi32(r.c2, r.c3);
  const __m256i a = _mm256_unpacklo_epi64(lo01, lo23), b = _mm256_unpackhi_epi64(lo01, lo23);
  const __m256i c = _mm256_unpacklo_epi64(hi01, hi23), d = _mm256_unpackhi_epi64(hi01, hi23);
  auto* v = reinterpret_cast<__m256i*>(out);
  _mm256_storeu_si256(v, _mm256_permute2x128_si256(a, b, 0x20));      // blocks 0, 1
  _mm256_storeu_si256(v + 1, _mm256_permute2x128_si256(c, d, 0x20));  // blocks 2, 3
  _mm256_storeu_si256(v + 2, _mm256_permute2x128_si256(a, b, 0x31));  // blocks 4, 5
  _mm256_storeu_si256(v + 3, _mm256_permute2x128_si256(c, d, 0x31));  // blocks 6, 7
}

// Blocks [block, block + blocks), blocks a multiple of 16.
MLPB_AVX2 void avx2_words(const DropoutMask& mask, uint64_t block, int64_t blocks,
                          uint32_t* words) {
  for (int64_t b = 0; b < blocks; b += 16) {
    Blocks8 first = philox8(mask, block + b), second = philox8(mask, block + b + 8);
    philox_rounds8(mask, first, second);
    store_words8(first, words + 4 * b);
    store_words8(second, words + 4 * b + 32);
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

void dropout_words(const DropoutMask& mask, uint64_t begin, int64_t count, uint32_t* words) {
  const uint64_t end = begin + static_cast<uint64_t>(count);
  uint64_t i = begin;
  // Up to the first block boundary.
  if (i & 3) {
    const Philox4 w = mask.block_words(i >> 2);
    for (uint64_t lane = i & 3; lane < 4 && i < end; ++lane, ++i) words[i - begin] = w.v[lane];
  }
  // Whole blocks: 32 at a time with AVX-512, 16 with AVX2, the rest one by one.
  int64_t blocks = static_cast<int64_t>((end - i) >> 2);
#ifdef MLPB_SIMD_DISPATCH
  if (level() >= Level::Avx512 && blocks >= 32) {
    const int64_t fast = blocks & ~int64_t{31};
    avx512_words(mask, i >> 2, fast, words + (i - begin));
    i += 4 * static_cast<uint64_t>(fast);
    blocks -= fast;
  }
  if (level() >= Level::Avx2 && blocks >= 16) {
    const int64_t fast = blocks & ~int64_t{15};
    avx2_words(mask, i >> 2, fast, words + (i - begin));
    i += 4 * static_cast<uint64_t>(fast);
    blocks -= fast;
  }
#endif
  scalar_words(mask, i >> 2, blocks, words + (i - begin));
  i += 4 * static_cast<uint64_t>(blocks);
  // The last, partial block.
  if (i < end) {
    const Philox4 w = mask.block_words(i >> 2);
    for (uint64_t lane = 0; i < end; ++lane, ++i) words[i - begin] = w.v[lane];
  }
}

}  // namespace mlpbench::simd
