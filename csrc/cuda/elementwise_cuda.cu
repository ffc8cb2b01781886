// CUDA kernels of the standalone elementwise ops: activation (forward and
// backward, the functors of csrc/activations.h) and dropout (the Philox
// mapping of csrc/philox.h, so masks equal the CPU's bit for bit).
// Grid-stride loops; each thread moves 16 bytes per access where aligned.
#include <torch/library.h>

#include "../checks.h"
#include "../kernel_common.h"
#include "../op_args.h"
#include "cuda_common.cuh"

namespace mlpbench::cuda {
namespace {

template <typename T, typename ActFn, bool kVec>
__global__ void activation_forward_kernel(const T* x, T* y, int64_t n, ActFn act) {
  using acc_t = at::opmath_type<T>;
  constexpr int N = 16 / sizeof(T) > 0 ? 16 / sizeof(T) : 1;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * N;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
    T v[N];
    load_group<kVec>(x, i, n, v);
#pragma unroll
    for (int l = 0; l < N; ++l) v[l] = static_cast<T>(act.forward(static_cast<acc_t>(v[l])));
    store_group<kVec>(y, i, n, v);
  }
}

template <typename T, typename ActFn, bool kVec>
__global__ void activation_backward_kernel(const T* g, const T* saved, T* gx, int64_t n,
                                           ActFn act) {
  using acc_t = at::opmath_type<T>;
  constexpr int N = 16 / sizeof(T) > 0 ? 16 / sizeof(T) : 1;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * N;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * N; i < n; i += stride) {
    T gv[N], sv[N];
    load_group<kVec>(g, i, n, gv);
    load_group<kVec>(saved, i, n, sv);
#pragma unroll
    for (int l = 0; l < N; ++l)
      gv[l] = static_cast<T>(static_cast<acc_t>(gv[l]) *
                             act.derivative(static_cast<acc_t>(sv[l])));
    store_group<kVec>(gx, i, n, gv);
  }
}

// One thread per four elements: one Philox call (half of its block) decides all four.
template <typename T, bool kVec>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, DropoutMask mask) {
  using acc_t = at::opmath_type<T>;
  mask = mask.in_kernel();
  const acc_t scale = static_cast<acc_t>(mask.scale);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * 4;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < n; i += stride) {
    T v[4];
    load_group<kVec>(x, i, n, v);
    const Philox4 words = mask.block_words(static_cast<uint64_t>(i) >> 3);
#pragma unroll
    for (int l = 0; l < 4; ++l)
      v[l] = static_cast<T>(dropout_value(mask.keeps_from(words, static_cast<uint64_t>(i + l)),
                                          static_cast<acc_t>(v[l]), scale));
    store_group<kVec>(y, i, n, v);
  }
}

void activation_cuda(OpCall& c) {
  const ActSpec spec = checked_activation_args(c);
  const at::Tensor& x = c.tensor("x");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  const int64_t n = xc.numel();
  if (n == 0) return c.returns(std::move(y));
  const auto stream = at::cuda::getCurrentCUDAStream();
  MLPB_DISPATCH_CUDA(x.scalar_type(), "activation_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    const bool vec = aligned_for(in, 16) && aligned_for(out, 16);
    const int grid = grid_for((n + 3) / 4);
    with_activation<acc_t>(spec, [&](auto act) {
      if (vec) {
        activation_forward_kernel<scalar_t, decltype(act), true><<<grid, kThreads, 0, stream>>>(in, out, n, act);
      } else {
        activation_forward_kernel<scalar_t, decltype(act), false><<<grid, kThreads, 0, stream>>>(in, out, n, act);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  c.returns(std::move(y));
}

void activation_backward_cuda(OpCall& c) {
  const ActSpec spec = checked_activation_backward_args(c);
  const c10::cuda::CUDAGuard guard(c.tensor("grad_y").device());
  const at::Tensor g = c.tensor("grad_y").contiguous(), s = c.tensor("saved").contiguous();
  at::Tensor gx = new_output(g.sizes(), g.options());
  const int64_t n = g.numel();
  if (n == 0) return c.returns(std::move(gx));
  const auto stream = at::cuda::getCurrentCUDAStream();
  MLPB_DISPATCH_CUDA(g.scalar_type(), "activation_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* sp = s.const_data_ptr<scalar_t>();
    scalar_t* out = gx.mutable_data_ptr<scalar_t>();
    const bool vec = aligned_for(gp, 16) && aligned_for(sp, 16) && aligned_for(out, 16);
    const int grid = grid_for((n + 3) / 4);
    with_activation<acc_t>(spec, [&](auto act) {
      if (vec) {
        activation_backward_kernel<scalar_t, decltype(act), true><<<grid, kThreads, 0, stream>>>(gp, sp, out, n, act);
      } else {
        activation_backward_kernel<scalar_t, decltype(act), false><<<grid, kThreads, 0, stream>>>(gp, sp, out, n, act);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  c.returns(std::move(gx));
}

void dropout_cuda(OpCall& c) {
  const double p = checked_dropout_args(c);
  const at::Tensor& x = c.tensor("x");
  const DropoutMask mask = dropout_mask(p, c.optional_tensor("seed"), c.integer("offset"));
  const c10::cuda::CUDAGuard guard(x.device());
  check_capture_safe(c.op(), mask, p > 0.0);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  const int64_t n = xc.numel();
  if (n == 0) return c.returns(std::move(y));
  const auto stream = at::cuda::getCurrentCUDAStream();
  MLPB_DISPATCH_CUDA(x.scalar_type(), "dropout_cuda", [&] {
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    const int bytes = 4 * sizeof(scalar_t);
    const int grid = grid_for((n + 3) / 4);
    if (aligned_for(in, bytes) && aligned_for(out, bytes)) {
      dropout_kernel<scalar_t, true><<<grid, kThreads, 0, stream>>>(in, out, n, mask);
    } else {
      dropout_kernel<scalar_t, false><<<grid, kThreads, 0, stream>>>(in, out, n, mask);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  c.returns(std::move(y));
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  m.impl("activation", boxed<&activation_cuda>());
  m.impl("activation_backward", boxed<&activation_backward_cuda>());
  m.impl("dropout", boxed<&dropout_cuda>());
}

}  // namespace mlpbench::cuda
