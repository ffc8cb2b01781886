// bfloat16 y = act(x @ weight.T + bias) on AMX tiles (products_cpu.h:
// bf16_amx_linear), for the batches where oneDNN's linear spends most of its
// time preparing the weights: it reorders them on every call (they are
// plain tensors), then runs a GEMM sized for large products.
//
// The weight is packed per call too, but only into AMX's pair layout: tile
// rows of 16 output features, each holding two neighbouring input features
// (one 32-bit word), gathered 16 words at a time. Each thread packs the
// column blocks it computes, so one parallel region does it all. Blocks of
// 32 rows x 32 outputs accumulate in four float32 tiles over the whole
// input width in order, as oneDNN's AMX kernel does (its bits in all but
// rare elements, tests/test_bf16.py), then each tile is stored once and
// finished in registers: the bias added in float32, the ReLU where asked
// (a NaN stays NaN, as stock's), one rounding to bfloat16. Partial blocks
// (rows, the last 32 inputs) are staged in zeroed buffers.
#include "products_cpu.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "simd.h"

// AMX needs GCC 11 or Clang 12 for its intrinsics, and Linux to grant the
// tile state (arch_prctl).
#if defined(MLPB_SIMD_DISPATCH) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 12) ||    \
     (!defined(__clang__) && __GNUC__ >= 11))
#define MLPB_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define MLPB_TARGET_AMX \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,amx-tile,amx-bf16")))
#endif

namespace mlpbench::cpu {

#ifdef MLPB_AMX
namespace {

struct TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0-3 the float32 sums of a 32x32 block, 4-5 two 16-row slices of x,
// 6-7 two packed 16-output slices of the weight: all 16 rows of 64 bytes.
MLPB_TARGET_AMX void configure_tiles() {
  alignas(64) TileConfig config;
  std::memset(&config, 0, sizeof config);
  config.palette = 1;
  for (int t = 0; t < 8; ++t) {
    config.colsb[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

struct AmxProblem {
  const uint16_t* x;    // (m, k) bfloat16 bits, rows contiguous
  const uint32_t* w;    // (n, k / 2) pairs of bfloat16
  const float* bias;    // n + 32 floats (zeros past n)
  uint16_t* y;          // (m, n)
  int64_t m, k, n;
  int64_t k_blocks;     // ceil(k / 32): tiles along the input
  int64_t n_blocks;     // ceil(n / 16)
  bool relu;
};

constexpr int64_t kTileWords = 256;  // 16 rows of 64 bytes

// The weight's column blocks [nb0, nb1) in AMX's layout: for block nb and
// input block kb, a tile whose row p holds the pair (2q, 2q + 1), q = 16 kb
// + p, of the block's 16 outputs; outputs past n and pairs past k/2 are 0.
MLPB_TARGET_AMX void pack_weight(const AmxProblem& pr, int64_t nb0, int64_t nb1, uint32_t* out) {
  const int64_t pairs = pr.k / 2;
  const __m512i rows = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(pairs)));
  for (int64_t nb = nb0; nb < nb1; ++nb) {
    const int64_t outputs = std::min<int64_t>(16, pr.n - nb * 16);
    const __mmask16 present = static_cast<__mmask16>((1u << outputs) - 1);
    const uint32_t* block = pr.w + nb * 16 * pairs;
    for (int64_t kb = 0; kb < pr.k_blocks; ++kb) {
      uint32_t* tile = out + ((nb - nb0) * pr.k_blocks + kb) * kTileWords;
      for (int64_t p = 0; p < 16; ++p) {
        const int64_t q = kb * 16 + p;
        const __m512i v = q < pairs ? _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), present,
                                                                  rows, block + q, 4)
                                    : _mm512_setzero_si512();
        _mm512_storeu_si512(tile + p * 16, v);
      }
    }
  }
}

// One stored tile (rows x 16 sums) into y: + bias, ReLU, rounded once.
MLPB_TARGET_AMX void finish_tile(const float* sums, int64_t rows, int64_t cols, const float* bias,
                                 bool relu, uint16_t* y, int64_t ldy) {
  const __mmask16 keep = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __m512 b = _mm512_loadu_ps(bias);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    __m512 v = _mm512_add_ps(_mm512_loadu_ps(sums + r * 16), b);
    // v <= 0 is false for a NaN, which stays.
    if (relu) v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ), v, zero);
    _mm256_mask_storeu_epi16(y + r * ldy, keep, (__m256i)_mm512_cvtneps_pbh(v));
  }
}

// Where a 16-row slice of x comes from: input blocks before `first_staged`
// from x itself (stride k), the rest from a zeroed copy (stride
// `staged_width`): the last block where it is partial, every block where
// the slice has fewer than 16 rows.
struct RowSlice {
  const uint16_t* x;
  const uint16_t* staged;
  int64_t first_staged, staged_width, rows;
};

MLPB_TARGET_AMX RowSlice slice_rows(const AmxProblem& pr, int64_t r0, std::vector<uint16_t>& buf) {
  const int64_t rows = std::clamp<int64_t>(pr.m - r0, 0, 16);
  const int64_t whole_blocks = rows == 16 ? pr.k / 32 : 0;
  RowSlice s{pr.x + std::min(r0, pr.m) * pr.k, nullptr, whole_blocks,
             (pr.k_blocks - whole_blocks) * 32, rows};
  if (whole_blocks == pr.k_blocks) return s;
  buf.assign(static_cast<size_t>(16 * s.staged_width), 0);
  const int64_t from = whole_blocks * 32;
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(buf.data() + r * s.staged_width, s.x + r * pr.k + from,
                static_cast<size_t>(pr.k - from) * 2);
  }
  s.staged = buf.data();
  return s;
}

#define MLPB_LOAD_SLICE(tile, s, kb)                                                   \
  do {                                                                                \
    if ((kb) < (s).first_staged) {                                                    \
      _tile_loadd(tile, (s).x + (kb) * 32, pr.k * 2);                                  \
    } else {                                                                          \
      _tile_loadd(tile, (s).staged + ((kb) - (s).first_staged) * 32, (s).staged_width * 2); \
    }                                                                                 \
  } while (0)

// Rows [r0, r0 + 32) by outputs [16 nb, 16 nb + 32), the weight's two column
// blocks packed at w0 and w1.
MLPB_TARGET_AMX void block_32x32(const AmxProblem& pr, const RowSlice& s0, const RowSlice& s1,
                                 int64_t r0, int64_t nb, const uint32_t* w0, const uint32_t* w1) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t kb = 0; kb < pr.k_blocks; ++kb) {
    MLPB_LOAD_SLICE(4, s0, kb);
    MLPB_LOAD_SLICE(5, s1, kb);
    _tile_loadd(6, w0 + kb * kTileWords, 64);
    _tile_loadd(7, w1 + kb * kTileWords, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  // Tile 2h + c: rows of slice h, outputs of column block nb + c.
  alignas(64) float sums[4][16 * 16];
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  _tile_stored(2, sums[2], 64);
  _tile_stored(3, sums[3], 64);
  const RowSlice* slices[2] = {&s0, &s1};
  for (int h = 0; h < 2; ++h) {
    for (int c = 0; c < 2; ++c) {
      const int64_t cols = std::clamp<int64_t>(pr.n - (nb + c) * 16, 0, 16);
      if (slices[h]->rows == 0 || cols == 0) continue;
      finish_tile(sums[2 * h + c], slices[h]->rows, cols, pr.bias + (nb + c) * 16, pr.relu,
                  pr.y + (r0 + 16 * h) * pr.n + (nb + c) * 16, pr.n);
    }
  }
}
#undef MLPB_LOAD_SLICE

// Column-block pairs [p0, p1): packed, then every row block of them.
MLPB_TARGET_AMX void run_pairs(const AmxProblem& pr, int64_t p0, int64_t p1) {
  configure_tiles();
  const int64_t nb0 = 2 * p0, nb1 = std::min(pr.n_blocks, 2 * p1);
  const int64_t tiles = pr.k_blocks * kTileWords;
  // pack_weight fills the blocks; one zero block past the last is the
  // partner of an odd last block.
  const size_t filled = static_cast<size_t>((nb1 - nb0) * tiles);
  std::unique_ptr<uint32_t[]> packed(new uint32_t[filled + tiles]);
  std::memset(packed.get() + filled, 0, static_cast<size_t>(tiles) * sizeof(uint32_t));
  pack_weight(pr, nb0, nb1, packed.get());
  std::vector<uint16_t> buf0, buf1;
  for (int64_t r0 = 0; r0 < pr.m; r0 += 32) {
    const RowSlice s0 = slice_rows(pr, r0, buf0), s1 = slice_rows(pr, r0 + 16, buf1);
    for (int64_t nb = nb0; nb < nb1; nb += 2) {
      const uint32_t* w0 = packed.get() + (nb - nb0) * tiles;
      block_32x32(pr, s0, s1, r0, nb, w0, w0 + tiles);
    }
  }
  _tile_release();
}

}  // namespace

bool amx_bf16_available() {
  static const bool available = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
    if (!tile || !bf16) return false;
    // Linux grants a process the tiles' state on request (ARCH_REQ_XCOMP_PERM).
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return available;
}

at::Tensor bf16_amx_linear(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias,
                           bool relu) {
  TORCH_INTERNAL_ASSERT(amx_bf16_available() && x2.size(1) % 2 == 0);
  const at::Tensor xc = x2.contiguous(), wc = weight.contiguous();
  const int64_t m = xc.size(0), k = xc.size(1), n = wc.size(0);
  at::Tensor y = at::empty({m, n}, xc.options());
  std::vector<float> bias32(static_cast<size_t>(n + 32), 0.0f);
  if (bias.defined()) {
    const at::Tensor bc = bias.contiguous();
    const c10::BFloat16* bp = bc.const_data_ptr<c10::BFloat16>();
    for (int64_t j = 0; j < n; ++j) bias32[j] = static_cast<float>(bp[j]);
  }
  const AmxProblem pr{reinterpret_cast<const uint16_t*>(xc.const_data_ptr<c10::BFloat16>()),
                      reinterpret_cast<const uint32_t*>(wc.const_data_ptr<c10::BFloat16>()),
                      bias32.data(),
                      reinterpret_cast<uint16_t*>(y.mutable_data_ptr<c10::BFloat16>()),
                      m, k, n, (k + 31) / 32, (n + 15) / 16, relu};
  at::parallel_for(0, (pr.n_blocks + 1) / 2, 1,
                   [&](int64_t p0, int64_t p1) { run_pairs(pr, p0, p1); });
  return y;
}

#else  // no AMX in this build

bool amx_bf16_available() { return false; }

at::Tensor bf16_amx_linear(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool) {
  TORCH_INTERNAL_ASSERT(false, "bf16_amx_linear: not built with AMX");
}

#endif

}  // namespace mlpbench::cpu
