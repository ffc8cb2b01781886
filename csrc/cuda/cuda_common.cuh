// Helpers shared by the CUDA kernels: launch sizes, vector loads and stores,
// and a cursor that reuses one Philox call for four consecutive elements.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>

#include "../philox.h"

namespace mlpbench::cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `items`: enough to fill the device a few
// times over, never more than there is work for.
inline int grid_for(int64_t items) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t wanted = (items + kThreads - 1) / kThreads;
  return static_cast<int>(std::clamp<int64_t>(wanted, 1, sms * 8));
}

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

inline bool aligned_for(const void* p, int bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Loads elements i .. i+N-1 of p (those below n; the rest are zero), with one
// vector load when kVec and the whole group is in range.
template <bool kVec, typename T, int N>
__device__ __forceinline__ void load_group(const T* p, int64_t i, int64_t n, T (&out)[N]) {
  if (kVec && i + N <= n) {
    const Vec<T, N> v = *reinterpret_cast<const Vec<T, N>*>(p + i);
#pragma unroll
    for (int l = 0; l < N; ++l) out[l] = v.v[l];
  } else {
#pragma unroll
    for (int l = 0; l < N; ++l) out[l] = i + l < n ? p[i + l] : T(0);
  }
}

template <bool kVec, typename T, int N>
__device__ __forceinline__ void store_group(T* p, int64_t i, int64_t n, const T (&in)[N]) {
  if (kVec && i + N <= n) {
    Vec<T, N> v;
#pragma unroll
    for (int l = 0; l < N; ++l) v.v[l] = in[l];
    *reinterpret_cast<Vec<T, N>*>(p + i) = v;
  } else {
#pragma unroll
    for (int l = 0; l < N; ++l)
      if (i + l < n) p[i + l] = in[l];
  }
}

// A dropout mask whose seed was read on the host would be frozen into a
// captured CUDA graph, every replay reusing the capture's mask: refuse it
// while the stream is capturing. (A seed on the GPU is read by the kernels,
// so each replay sees the seed that replay drew.)
inline void check_capture_safe(const char* op, const DropoutMask& mask, bool dropout) {
  if (!dropout || mask.seed_on_device != nullptr) return;
  TORCH_CHECK(c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None,
              op, ": dropout while a CUDA graph is being captured needs its seed on the GPU "
              "(a one-element int64 CUDA tensor, as mlpbench.ops.draw_seed(device='cuda') "
              "draws and the modules draw by themselves): a CPU seed is read once, at capture, "
              "and every replay would reuse that mask");
}

// Keep/drop decisions for indices visited in increasing order: one Philox
// call per block of eight, the words kept in registers (philox.h: draw_of).
struct MaskCursor {
  DropoutMask mask;
  uint64_t block = ~uint64_t{0};
  Philox4 words{};

  __device__ __forceinline__ bool keeps(uint64_t index) {
    if ((index >> 3) != block) {
      block = index >> 3;
      words = mask.block_words(block);
    }
    return mask.keeps_from(words, index);
  }
};

}  // namespace mlpbench::cuda
