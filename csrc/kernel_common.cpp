// Output allocation and dropout masks for the kernels (kernel_common.h).
#include "kernel_common.h"

#include <ATen/ops/empty.h>

#include <atomic>
#include <limits>

namespace mlpbench {
namespace {
std::atomic<bool> poison_outputs{false};
}  // namespace

void set_debug_poison(bool enabled) { poison_outputs = enabled; }
bool debug_poison() { return poison_outputs; }

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (poison_outputs) {
    if (at::isFloatingType(out.scalar_type())) {
      out.fill_(std::numeric_limits<double>::quiet_NaN());
    } else {
      out.fill_(255);
    }
  }
  return out;
}

DropoutMask dropout_mask(double p, const std::optional<at::Tensor>& seed, int64_t offset) {
  if (p == 0.0) return make_dropout_mask(0.0, 0, 0);
  const at::Tensor& s = *seed;
  if (s.is_cuda()) {  // read by the kernels (philox.h: seed_on_device)
    DropoutMask mask = make_dropout_mask(p, 0, static_cast<uint64_t>(offset));
    mask.seed_on_device = s.const_data_ptr<int64_t>();
    return mask;
  }
  // A seed made inside a torch.func transform is a wrapper without storage
  // of its own: item() reads through it.
  const uint64_t value = s.has_storage() ? static_cast<uint64_t>(*s.contiguous().const_data_ptr<int64_t>())
                                         : static_cast<uint64_t>(s.item<int64_t>());
  return make_dropout_mask(p, value, static_cast<uint64_t>(offset));
}

}  // namespace mlpbench
