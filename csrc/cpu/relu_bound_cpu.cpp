// The CPU's proof behind LinearActCall::finite_pre: a bound on every
// pre-activation of a chain of bfloat16 ReLU layers, from the chain's input.
//
// For an input bounded by B, |pre_j| <= B * sum_k |W_jk| + |b_j|, and the ReLU
// output has the same bound, which bounds the next layer's input. Every
// float32 partial sum of the product stays within that bound times kSlack,
// so a bound far below float's largest value proves that no sum overflows,
// and finite inputs and weights (a NaN or infinity makes the bound one too)
// that no sum is NaN. The proof costs a read of the input and of every
// weight; it is made only where oneDNN's linear can then apply the ReLU
// (products_cpu.h), which saves the pass over each layer's output, and where
// that pays (finite_pre_layers; docs/cpu-tuning.md).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../layer_kernels.h"
#include "products_cpu.h"
#include "simd.h"

namespace mlpbench::cpu {
namespace {

// The proof's limit: 2^100, far below float's 2^128.
constexpr float kBoundLimit = 1.2676506e30f;
// Each layer's bound times 8 covers rounding: the product's float32 sums and
// the bound's own (each a factor below e for widths under 2^24), and the
// output's rounding to bfloat16.
constexpr float kSlack = 8.0f;
constexpr int64_t kMaxInFeatures = int64_t{1} << 24;
// Elements per parallel chunk of x's read: a second thread's wake-up costs
// more than a smaller read (the weights are read by one thread).
constexpr int64_t kGrainElements = int64_t{1} << 20;

const uint16_t* bits_of(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.const_data_ptr<c10::BFloat16>());
}

float bf16_value(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float v;
  std::memcpy(&v, &wide, sizeof v);
  return v;
}

// The largest magnitude among x's bfloat16 values as a bit pattern with the
// sign cleared: ordered as the magnitudes are, infinity 0x7F80 and NaNs above.
uint16_t max_magnitude_bits(const at::Tensor& x) {
  const at::Tensor xc = x.contiguous();
  const uint16_t* p = bits_of(xc);
  return static_cast<uint16_t>(at::parallel_reduce(
      int64_t{0}, xc.numel(), kGrainElements, int64_t{0},
      [&](int64_t begin, int64_t end, int64_t found) {
        uint16_t m = 0;
        simd::simd_dispatch([&](auto) {
          // Independent lanes, which the compiler turns into vector maxima.
          constexpr int kLanes = 32;
          uint16_t lanes[kLanes] = {};
          int64_t i = begin;
          for (; i + kLanes <= end; i += kLanes) {
            for (int j = 0; j < kLanes; ++j) {
              lanes[j] = std::max<uint16_t>(lanes[j], p[i + j] & 0x7FFF);
            }
          }
          for (; i < end; ++i) m = std::max<uint16_t>(m, p[i] & 0x7FFF);
          for (int j = 0; j < kLanes; ++j) m = std::max(m, lanes[j]);
        });
        return std::max<int64_t>(found, m);
      },
      [](int64_t a, int64_t b) { return std::max(a, b); }));
}

// The larger of two bounds, NaN if either is (a NaN bound proves nothing).
float max_bound(float a, float b) { return std::isnan(a) || b > a ? b : a; }

// max_j (in_bound * sum_k |W_jk| + |b_j|): the bound of a layer's
// pre-activations; NaN or infinite where a weight or bias is.
float layer_bound(const at::Tensor& weight, const at::Tensor& bias, float in_bound) {
  const at::Tensor w = weight.contiguous(), b = bias.contiguous();
  const int64_t rows = w.size(0), k = w.size(1);
  const uint16_t* wp = bits_of(w);
  const uint16_t* bp = bits_of(b);
  float found = 0.0f;
  simd::simd_dispatch([&](auto lanes) {
    using L = decltype(lanes);
    using V = simd::VFloatT<L::kWidth>;
    for (int64_t j = 0; j < rows; ++j) {
      V acc(0.0f);
      for (int64_t i = 0; i < k; i += L::kWidth) {
        const int64_t count = std::min<int64_t>(L::kWidth, k - i);
        acc += simd::abs(simd::bf16_load<L>(wp + j * k + i, count));
      }
      float lane[L::kWidth];
      std::memcpy(lane, &acc.v, sizeof lane);
      float sum = 0.0f;
      for (float v : lane) sum += v;
      found = max_bound(found, in_bound * sum + std::fabs(bf16_value(bp[j])));
    }
  });
  return found;
}

}  // namespace

size_t finite_pre_layers(const at::Tensor& x, at::TensorList weights, at::TensorList biases) {
  if (x.scalar_type() != at::kBFloat16 || x.numel() == 0 || x.size(-1) == 0) return 0;
  const int64_t rows = x.numel() / x.size(-1), in = x.size(-1), out = weights[0].size(0);
  if (!bf16_linear_takes_relu(rows, !biases.empty())) return 0;
  // The proof reads x and the weights, each worth it where it is smaller
  // than the output passes it saves: from an input no wider than the output
  // (the lecture network's second layer), at 8 rows per input feature or
  // more (batch 2048 there; below, the gain was within this VM's noise).
  if (in > out || rows < 8 * in) return 0;
  const uint16_t x_bits = max_magnitude_bits(x);
  if (x_bits >= 0x7F80) return 0;  // an infinity or NaN
  float bound = bf16_value(x_bits);
  for (size_t l = 0; l < weights.size(); ++l) {
    if (weights[l].size(1) >= kMaxInFeatures) return l;
    bound = kSlack * layer_bound(weights[l], biases[l], bound);
    if (!(bound <= kBoundLimit)) return l;
  }
  return weights.size();
}

}  // namespace mlpbench::cpu
