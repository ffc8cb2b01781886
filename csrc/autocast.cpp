// Autocast for the ops with products (linear_act, mlp), on the CPU and CUDA:
// under torch.autocast they cast every floating-point tensor argument (x,
// the weights, the biases) to the autocast dtype as
// torch.nn.functional.linear does (same cache, same eligibility), so that
// the output dtype is stock Linear+activation's. The seed is an int64
// tensor, which autocast leaves alone. The elementwise ops (activation,
// dropout) keep their input's dtype, as stock activations and dropout do,
// so they need no autocast kernel. Cross-entropy runs in float32.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "op_call.h"

namespace mlpbench {
namespace {

template <c10::DeviceType kDevice>
void autocast_products(OpCall& c) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(kDevice));
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(kDevice);
  torch::jit::Stack& stack = *c.stack();
  const size_t args = c.schema().arguments().size();
  for (size_t i = stack.size() - args; i < stack.size(); ++i) {
    c10::IValue& v = stack[i];
    if (v.isTensor()) {
      v = at::autocast::cached_cast(dtype, v.toTensor(), kDevice);
    } else if (v.isTensorList()) {
      // (As a TensorList: the catch-all overload would pass a vector through.)
      const std::vector<at::Tensor> list = v.toTensorVector();
      v = at::autocast::cached_cast(dtype, at::TensorList(list), kDevice);
    }
  }
  c.handle().callBoxed(c.stack());
}

// Cross-entropy runs in float32 under autocast, as stock's does: bfloat16
// and float16 logits are cast up (float64 stays).
template <c10::DeviceType kDevice>
void autocast_float32(OpCall& c) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(kDevice));
  torch::jit::Stack& stack = *c.stack();
  const size_t first = stack.size() - c.schema().arguments().size();
  for (size_t i = first; i < stack.size(); ++i) {
    if (stack[i].isTensor() && stack[i].toTensor().is_floating_point()) {
      stack[i] = at::autocast::cached_cast(at::kFloat, stack[i].toTensor(), kDevice);
    }
  }
  c.handle().callBoxed(c.stack());
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, AutocastCPU, m) {
  m.impl("linear_act", boxed<&autocast_products<c10::DeviceType::CPU>>());
  m.impl("mlp", boxed<&autocast_products<c10::DeviceType::CPU>>());
  m.impl("cross_entropy", boxed<&autocast_float32<c10::DeviceType::CPU>>());
}

TORCH_LIBRARY_IMPL(mlpbench, AutocastCUDA, m) {
  m.impl("linear_act", boxed<&autocast_products<c10::DeviceType::CUDA>>());
  m.impl("mlp", boxed<&autocast_products<c10::DeviceType::CUDA>>());
  m.impl("cross_entropy", boxed<&autocast_float32<c10::DeviceType::CUDA>>());
}

}  // namespace mlpbench
