// The CPU layer kernels' matrix products (products_cpu.h).
#include "products_cpu.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <vector>

#include "simd.h"

// oneDNN's matmul as ATen calls it for its own bfloat16 products (exported
// by libtorch_cpu, declared in a header torch does not install): result =
// beta * result + alpha * mat1 @ mat2, strided operands allowed. Weak: a
// torch without it (or with another signature) loads us all the same, and
// the products stay ATen's.
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                             const at::Tensor& result, float beta, float alpha)
    __attribute__((weak));
}

namespace mlpbench::cpu {
namespace {

std::atomic<Fp32Matmul> chosen{Fp32Matmul::Auto};

// From about a million multiply-adds oneDNN beat MKL on the AMD EPYC; below,
// its fixed cost lost (256 -> 10 at batch 100: 22 against 15 us).
constexpr int64_t kOneDnnMinMacs = int64_t{1} << 20;

bool onednn_usable() {
  return &at::native::mkldnn_matmul != nullptr && at::hasMKLDNN() &&
         at::globalContext().userEnabledMkldnn();
}

bool mkl_is_fast_here() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool intel = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
  }();
  return at::hasMKL() && intel;
#else
  return false;  // torch's other builds have no MKL
#endif
}

bool use_onednn(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != at::kFloat || !onednn_usable()) return false;
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  if (m == 0 || k == 0 || n == 0) return false;  // empty: nothing to gain, ATen's rules
  switch (chosen.load(std::memory_order_relaxed)) {
    case Fp32Matmul::Aten: return false;
    case Fp32Matmul::OneDnn: return true;
    case Fp32Matmul::Auto: break;
  }
  // Measured where oneDNN has AVX-512 and MKL does not use it; on an AVX2-only
  // CPU both run AVX2 kernels, and ATen's stays.
  return !mkl_is_fast_here() && simd::best_level() >= simd::Level::Avx512 &&
         m * k * n >= kOneDnnMinMacs;
}

}  // namespace

void set_fp32_matmul(Fp32Matmul choice) { chosen.store(choice); }
Fp32Matmul fp32_matmul() { return chosen.load(); }

at::Tensor mm(const at::Tensor& a, const at::Tensor& b) {
  // A forward-shaped bfloat16 product, x @ weight.T: as bf16_linear runs it.
  if (a.scalar_type() == at::kBFloat16 && b.t().is_contiguous() &&
      bf16_linear_on_amx(a, b.t(), /*relu=*/false)) {
    return bf16_amx_linear(a, b.t(), at::Tensor(), /*relu=*/false);
  }
  if (!use_onednn(a, b)) return at::mm(a, b);
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, out, /*beta=*/0.0f, /*alpha=*/1.0f);
  return out;
}

namespace {

// The sum of v's lanes, pairwise (the same order whatever the thread count).
template <int W> float lane_sum(simd::VFloatT<W> v) {
  float t[W];
  std::memcpy(t, &v.v, sizeof t);
  for (int half = W / 2; half > 0; half /= 2) {
    for (int i = 0; i < half; ++i) t[i] += t[i + half];
  }
  return t[0];
}

// y[r, j] = bf16(x[r] . w[j] + bias[j]) for NR rows of x (float32, k wide)
// and the NJ outputs from j: NR * NJ independent sums in float32 vectors
// (one sum alone would wait on each multiply-add's latency), each weight
// vector loaded once for the NR rows; the bias joins the sum and the result
// is rounded once, as oneDNN's linear rounds it.
template <int NR, int NJ, typename L>
void dot_block(const float* x, const uint16_t* w, const c10::BFloat16* bias, int64_t k,
               int64_t j, c10::BFloat16* y, int64_t n_out) {
  using V = simd::VFloatT<L::kWidth>;
  constexpr int64_t kW = L::kWidth;
  V acc[NR][NJ];
  for (int r = 0; r < NR; ++r) {
    for (int q = 0; q < NJ; ++q) acc[r][q] = V(0.0f);
  }
  const auto step = [&](int64_t i, int64_t m) {
    V wv[NJ];
    for (int q = 0; q < NJ; ++q) wv[q] = simd::bf16_load<L>(w + (j + q) * k + i, m);
    for (int r = 0; r < NR; ++r) {
      const V xv = simd::float_load<L>(x + r * k + i, m);
      for (int q = 0; q < NJ; ++q) acc[r][q] += xv * wv[q];
    }
  };
  int64_t i = 0;
  for (; i + kW <= k; i += kW) step(i, kW);
  if (i < k) step(i, std::min(kW, k - i));
  for (int q = 0; q < NJ; ++q) {
    const float b = bias ? static_cast<float>(bias[j + q]) : 0.0f;
    for (int r = 0; r < NR; ++r) {
      y[r * n_out + j + q] = c10::BFloat16(lane_sum<L::kWidth>(acc[r][q]) + b);
    }
  }
}

// Outputs [j0, j1) of NR rows: four at a time, then one by one.
template <int NR, typename L>
void dot_rows(const float* x, const uint16_t* w, const c10::BFloat16* bias, int64_t k,
              int64_t j0, int64_t j1, c10::BFloat16* y, int64_t n_out) {
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) dot_block<NR, 4, L>(x, w, bias, k, j, y, n_out);
  for (; j < j1; ++j) dot_block<NR, 1, L>(x, w, bias, k, j, y, n_out);
}

// Below this many rows a bf16 forward product runs as dot products here:
// oneDNN's linear costs 25-40 us a call at batch 1 to 8 whatever the layer
// (it prepares the weights on every call), more than the dot products of a
// lecture layer take up to batch 4 (docs/cpu-tuning.md).
constexpr int64_t kSmallBatchRows = 4;
// Multiply-adds per parallel chunk of outputs: a batch-1 lecture layer
// (200K) is not worth waking a second thread for.
constexpr int64_t kSmallChunkMacs = int64_t{1} << 18;

at::Tensor small_batch_linear(const at::Tensor& x2, const at::Tensor& weight,
                              const at::Tensor& bias) {
  const int64_t n = x2.size(0), k = x2.size(1), n_out = weight.size(0);
  const at::Tensor xc = x2.contiguous(), wc = weight.contiguous();
  at::Tensor y = at::empty({n, n_out}, x2.options());
  // x's rows in float32 once, rather than converted again for every output.
  std::vector<float> xf(static_cast<size_t>(n * k));
  const c10::BFloat16* xp = xc.const_data_ptr<c10::BFloat16>();
  for (int64_t e = 0; e < n * k; ++e) xf[e] = static_cast<float>(xp[e]);
  const auto* wp = reinterpret_cast<const uint16_t*>(wc.const_data_ptr<c10::BFloat16>());
  const at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
  const c10::BFloat16* bp = bc.defined() ? bc.const_data_ptr<c10::BFloat16>() : nullptr;
  c10::BFloat16* yp = y.mutable_data_ptr<c10::BFloat16>();
  const int64_t grain = std::max<int64_t>(1, kSmallChunkMacs / std::max<int64_t>(1, n * k));
  at::parallel_for(0, n_out, grain, [&](int64_t j0, int64_t j1) {
    simd::simd_dispatch([&](auto lanes) {
      using L = decltype(lanes);
      // Two rows at a time: 8 sums and 4 weight vectors fit AVX2's registers.
      for (int64_t r = 0; r < n; r += 2) {
        const float* xr = xf.data() + r * k;
        c10::BFloat16* yr = yp + r * n_out;
        if (n - r >= 2) {
          dot_rows<2, L>(xr, wp, bp, k, j0, j1, yr, n_out);
        } else {
          dot_rows<1, L>(xr, wp, bp, k, j0, j1, yr, n_out);
        }
      }
    });
  });
  return y;
}

// Up to this many rows the bf16 forward product runs on AMX tiles where the
// CPU has them, and with a ReLU in the tile up to kAmxMaxReluRows: above,
// oneDNN's linear (and its pass) was the faster (docs/cpu-tuning.md).
constexpr int64_t kAmxMaxRows = 512;
constexpr int64_t kAmxMaxReluRows = 1024;
// Widths whose packed offsets fit the AMX kernel's 32-bit gather indices.
constexpr int64_t kAmxMaxWidth = int64_t{1} << 24;

}  // namespace

bool bf16_linear_on_amx(const at::Tensor& x2, const at::Tensor& weight, bool relu) {
  const int64_t m = x2.size(0), k = x2.size(1), n = weight.size(0);
  return m > kSmallBatchRows && m <= (relu ? kAmxMaxReluRows : kAmxMaxRows) && k % 2 == 0 &&
         k > 0 && k <= kAmxMaxWidth && n > 0 && n <= kAmxMaxWidth &&
         x2.scalar_type() == at::kBFloat16 &&
         simd::level() >= simd::Level::Avx512Bf16 && at::globalContext().userEnabledMkldnn() &&
         amx_bf16_available();
}

namespace {

// oneDNN's linear: its mkldnn::_linear_pointwise op, where torch has it.
const std::optional<c10::OperatorHandle>& onednn_linear() {
  static const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
  return op;
}

// Where the user left oneDNN on, from AVX-512 (oneDNN's bfloat16 products
// need it; below, ATen's addmm uses its own).
bool onednn_linear_usable() {
  return onednn_linear().has_value() && at::globalContext().userEnabledMkldnn() &&
         simd::level() >= simd::Level::Avx512;
}

at::Tensor call_onednn_linear(const at::Tensor& x2, const at::Tensor& weight,
                              const at::Tensor& bias, const char* post_op) {
  torch::jit::Stack stack{x2, weight, bias, std::string(post_op),
                          c10::List<std::optional<at::Scalar>>(), std::string()};
  onednn_linear()->callBoxed(stack);
  return stack[0].toTensor();
}

}  // namespace

// oneDNN's linear (no post-op) takes the bias as its own where addmm first
// copies it into the output (docs/cpu-tuning.md). addmm where oneDNN's linear
// is not usable (above). Without a bias, mm; small batches:
// small_batch_linear; on AMX, our tiles.
at::Tensor bf16_linear(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias) {
  if (x2.size(0) <= kSmallBatchRows) return small_batch_linear(x2, weight, bias);
  if (bf16_linear_on_amx(x2, weight, /*relu=*/false)) {
    return bf16_amx_linear(x2, weight, bias, /*relu=*/false);
  }
  if (!bias.defined()) return at::mm(x2, weight.t());
  if (!onednn_linear_usable()) return at::addmm(bias, x2, weight.t());
  return call_onednn_linear(x2, weight, bias, "none");
}

bool bf16_linear_takes_relu(int64_t rows, bool has_bias) {
  return rows > kSmallBatchRows && has_bias && onednn_linear_usable();
}

at::Tensor bf16_relu_linear(const at::Tensor& x2, const at::Tensor& weight,
                            const at::Tensor& bias) {
  TORCH_INTERNAL_ASSERT(bf16_linear_takes_relu(x2.size(0), bias.defined()));
  return call_onednn_linear(x2, weight, bias, "relu");
}

}  // namespace mlpbench::cpu
