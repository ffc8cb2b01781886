// draw_seed on a CUDA device: one thread mixes the default CUDA generator's
// (seed, offset) through Philox (philox.h) into a 63-bit dropout seed,
// written to device memory. The generator hands out its state as
// philox_cuda_state(), which is graph-safe: under CUDA graph capture the
// kernel reads the seed and offset from memory that every replay advances,
// so a replayed graph draws a new seed, and with it new masks, each time.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/detail/UnpackRaw.cuh>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>

#include <mutex>

#include "../kernel_common.h"

namespace mlpbench::cuda {
namespace {

__global__ void draw_seed_kernel(at::PhiloxCudaState state, int64_t* out) {
  const auto [seed, offset] = at::cuda::philox::unpack(state);
  const Philox4 r = philox4x32_10(static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                  0, 0, static_cast<uint32_t>(seed),
                                  static_cast<uint32_t>(seed >> 32));
  *out = static_cast<int64_t>(((static_cast<uint64_t>(r.v[1]) << 32) | r.v[0]) >> 1);
}

}  // namespace

at::Tensor draw_seed(at::Device device) {
  const c10::cuda::CUDAGuard guard(device);
  at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(device.index());
  at::PhiloxCudaState state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = at::check_generator<at::CUDAGeneratorImpl>(gen)->philox_cuda_state(4);
  }
  at::Tensor out = at::empty({}, at::TensorOptions().dtype(at::kLong).device(device));
  draw_seed_kernel<<<1, 1, 0, at::cuda::getCurrentCUDAStream()>>>(state,
                                                                   out.mutable_data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace mlpbench::cuda
