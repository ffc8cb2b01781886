// The CPU layer kernels' matrix products (products_cpu.h).
#include "products_cpu.h"

#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>

#include <atomic>
#include <optional>

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
  if (!use_onednn(a, b)) return at::mm(a, b);
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, out, /*beta=*/0.0f, /*alpha=*/1.0f);
  return out;
}

// oneDNN's linear (its mkldnn::_linear_pointwise op, no post-op) takes the
// bias as its own where addmm first copies it into the output
// (docs/cpu-tuning.md). addmm where torch lacks that op, where the user
// turned oneDNN off, and below AVX-512 (oneDNN's bfloat16 products need it;
// ATen's addmm then uses its own).
at::Tensor bf16_linear(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias) {
  static const std::optional<c10::OperatorHandle> onednn_linear =
      c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
  if (!onednn_linear || !at::globalContext().userEnabledMkldnn() ||
      simd::level() < simd::Level::Avx512) {
    return at::addmm(bias, x2, weight.t());
  }
  torch::jit::Stack stack{x2, weight, bias, std::string("none"),
                          c10::List<std::optional<at::Scalar>>(), std::string()};
  onednn_linear->callBoxed(stack);
  return stack[0].toTensor();
}

}  // namespace mlpbench::cpu
