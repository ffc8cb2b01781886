// Autocast for the ops with products (linear_act, mlp), on the CPU and CUDA:
// under torch.autocast they cast x, the weights and the biases to the
// autocast dtype as torch.nn.functional.linear does (same cache, same
// eligibility), so that the output dtype is stock Linear+activation's. The
// elementwise ops (activation, dropout) keep their input's dtype, as stock
// activations and dropout do, so they need no autocast kernel.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "op_handles.h"

namespace mlpbench {
namespace {

template <c10::DeviceType kDevice>
std::tuple<at::Tensor, at::Tensor> linear_act_autocast(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(kDevice));
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(kDevice);
  using at::autocast::cached_cast;
  return op_handles::linear_act().call(
      cached_cast(dtype, x, kDevice), cached_cast(dtype, weight, kDevice),
      cached_cast(dtype, bias, kDevice), activation, negative_slope, alpha, approximate, pieces,
      dropout_p, seed, offset);
}

template <c10::DeviceType kDevice>
std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> mlp_autocast(
    const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, c10::string_view output_activation,
    double dropout_p, const std::optional<at::Tensor>& seed, int64_t offset) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(kDevice));
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(kDevice);
  using at::autocast::cached_cast;
  return op_handles::mlp().call(cached_cast(dtype, x, kDevice),
                                cached_cast(dtype, weights, kDevice),
                                cached_cast(dtype, biases, kDevice), activation, negative_slope,
                                alpha, approximate, pieces, output_activation, dropout_p, seed,
                                offset);
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, AutocastCPU, m) {
  m.impl("linear_act", &linear_act_autocast<c10::DeviceType::CPU>);
  m.impl("mlp", &mlp_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(mlpbench, AutocastCUDA, m) {
  m.impl("linear_act", &linear_act_autocast<c10::DeviceType::CUDA>);
  m.impl("mlp", &mlp_autocast<c10::DeviceType::CUDA>);
}

}  // namespace mlpbench
