// mlpbench::draw_seed: a dropout seed from torch's default CPU generator, so
// that torch.manual_seed reproduces every mask. The same source as
// torch.randint, without a tensor op per training step.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <mutex>

namespace mlpbench {
namespace {

at::Tensor draw_seed() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  int64_t seed;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = static_cast<int64_t>(at::check_generator<at::CPUGeneratorImpl>(gen)->random64() >> 1);
  }
  at::Tensor out = at::empty({}, at::TensorOptions().dtype(at::kLong));
  *out.mutable_data_ptr<int64_t>() = seed;
  return out;
}

}  // namespace

// No tensor argument: the CompositeExplicitAutograd kernel serves every
// backend, and torch.compile uses the fake kernel of mlpbench/ops.py.
TORCH_LIBRARY_IMPL(mlpbench, CompositeExplicitAutograd, m) { m.impl("draw_seed", &draw_seed); }

}  // namespace mlpbench
