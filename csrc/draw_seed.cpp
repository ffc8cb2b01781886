// mlpbench::draw_seed: a dropout seed from torch's default generator of the
// device asked for, so that torch.manual_seed reproduces every mask. On the
// CPU the same source as torch.randint, without a tensor op per training
// step; on CUDA a one-thread kernel reads the CUDA generator's Philox state
// (draw_seed_cuda.cu), which CUDA graphs advance on every replay.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <mutex>

#include "kernel_common.h"
#include "op_call.h"

namespace mlpbench {
namespace {

at::Tensor draw_cpu_seed() {
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

void draw_seed(OpCall& c) {
  const c10::IValue& arg = c.arg("device");
  const at::Device device = arg.isNone() ? at::Device(at::kCPU) : arg.toDevice();
  if (device.is_cpu()) return c.returns(draw_cpu_seed());
  if (device.is_meta()) return c.returns(at::empty({}, at::TensorOptions().dtype(at::kLong).device(device)));
#ifdef MLPBENCH_WITH_CUDA
  if (device.is_cuda()) return c.returns(cuda::draw_seed(device));
#endif
  TORCH_CHECK_VALUE(!device.is_cuda(), c.op(), ": this build of mlpbench has CPU kernels only; "
                    "rebuild with MLPBENCH_CUDA=1 for seeds on ", device);
  TORCH_CHECK_VALUE(false, c.op(), ": device must be the CPU or a CUDA device, got ", device);
}

}  // namespace

// No tensor argument: the CompositeExplicitAutograd kernel serves every
// backend, and torch.compile uses the fake kernel of mlpbench/ops.py.
TORCH_LIBRARY_IMPL(mlpbench, CompositeExplicitAutograd, m) { m.impl("draw_seed", boxed<&draw_seed>()); }

}  // namespace mlpbench
