// CUDA kernels of linear_act: y = dropout(act(x @ weight.T + bias)).
//
// Forward: the product through cuBLAS (at::mm; at::addmm with the bias in
// half precision, rounded once), then ONE epilogue kernel that adds the bias,
// applies the activation (maxout: the max over pieces) and dropout, and
// writes y (and the pre-activation for gelu/silu, the argmax for maxout).
// Backward: ONE kernel computes grad_pre (act' from what was saved, dropout
// mask regenerated) and the bias gradient (a column reduction finished by the
// last block of each column tile, in a fixed order: deterministic), then the
// two products through cuBLAS.
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "cuda_common.cuh"
#include "../layer_kernels.h"

namespace mlpbench::cuda {
namespace {

// Epilogue for the elementwise activations: one thread per group of four
// consecutive output elements (half a Philox block). `buf` holds x @ W.T; when
// keep_pre it receives pre = buf + bias; y may alias buf.
template <typename T, typename ActFn, bool kDropout, bool kVec>
__global__ void epilogue_kernel(T* buf, T* y, const T* bias, int64_t total, int64_t cols,
                                bool keep_pre, ActFn act, DropoutMask mask) {
  using acc_t = at::opmath_type<T>;
  if (kDropout) mask = mask.in_kernel();
  const acc_t scale = static_cast<acc_t>(mask.scale);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * 4;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < total;
       i += stride) {
    T v[4];
    load_group<kVec>(buf, i, total, v);
    Philox4 words;
    if (kDropout) words = mask.block_words(static_cast<uint64_t>(i) >> 3);
    T pre[4];
    int64_t col = i % cols;  // one division per group; then step with wrap-around
#pragma unroll
    for (int l = 0; l < 4; ++l, ++col) {
      while (col >= cols) col -= cols;
      acc_t a = static_cast<acc_t>(v[l]);
      if (bias != nullptr && i + l < total) a += static_cast<acc_t>(bias[col]);
      pre[l] = static_cast<T>(a);
      acc_t out = act.forward(a);
      if (kDropout) {
        out = dropout_value(mask.keeps_from(words, static_cast<uint64_t>(i + l)), out, scale);
      }
      v[l] = static_cast<T>(out);
    }
    if (keep_pre) store_group<kVec>(buf, i, total, pre);
    store_group<kVec>(y, i, total, v);
  }
}

// Maxout epilogue: output element e = (row, unit) takes the max over the
// unit's `pieces` columns of buf (+ bias) and records which piece won.
template <typename T, bool kDropout>
__global__ void maxout_epilogue_kernel(const T* buf, T* y, uint8_t* arg, const T* bias,
                                       int64_t total, int64_t cols, int pieces,
                                       DropoutMask mask) {
  using acc_t = at::opmath_type<T>;
  if (kDropout) mask = mask.in_kernel();
  const acc_t scale = static_cast<acc_t>(mask.scale);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * 4;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < total;
       i += stride) {
    Philox4 words;
    if (kDropout) words = mask.block_words(static_cast<uint64_t>(i) >> 3);
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int64_t e = i + l;
      if (e >= total) break;
      const int64_t row = e / cols, unit = e - row * cols;
      const T* u = buf + row * cols * pieces + unit * pieces;
      const T* b = bias ? bias + unit * pieces : nullptr;
      acc_t best = static_cast<acc_t>(u[0]) + (b ? static_cast<acc_t>(b[0]) : acc_t(0));
      int best_piece = 0;
      for (int s = 1; s < pieces; ++s) {
        const acc_t v = static_cast<acc_t>(u[s]) + (b ? static_cast<acc_t>(b[s]) : acc_t(0));
        // Larger, or a NaN (which then stays), as the CPU's maxout.
        if (!(v <= best) && best == best) {
          best = v;
          best_piece = s;
        }
      }
      if (kDropout) {
        best = dropout_value(mask.keeps_from(words, static_cast<uint64_t>(e)), best, scale);
      }
      y[e] = static_cast<T>(best);
      arg[e] = static_cast<uint8_t>(best_piece);
    }
  }
}

constexpr int kTileX = 32;              // threads across columns
constexpr int kTileY = 8;               // threads across rows
constexpr int kColsPerThread = 4;
constexpr int kTileCols = kTileX * kColsPerThread;

// The bias gradient of grad_pre_kernel's column tile: each block writes its
// column sums (over its kTileY row lanes, in a fixed order) to partial[by];
// the last block of the tile to finish adds every row block's partials, row
// lane ty taking row blocks ty, ty + kTileY, ..., then the lanes in order.
// The order depends only on the grid, so the result is deterministic.
template <typename T>
__device__ void finish_bias_tile(const at::opmath_type<T> (&sum)[kColsPerThread], int64_t out_rows,
                                 at::opmath_type<T>* partial, unsigned* tile_done, T* gbias) {
  using acc_t = at::opmath_type<T>;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c0 = (int64_t(blockIdx.x) * kTileX + tx) * kColsPerThread;
  __shared__ acc_t tile[kTileY][kTileCols];
  __shared__ bool last;
#pragma unroll
  for (int l = 0; l < kColsPerThread; ++l) tile[ty][tx * kColsPerThread + l] = sum[l];
  __syncthreads();
  for (int j = ty * kTileX + tx; j < kTileCols; j += kTileX * kTileY) {
    acc_t s = 0;
    for (int k = 0; k < kTileY; ++k) s += tile[k][j];
    const int64_t c = int64_t(blockIdx.x) * kTileCols + j;
    if (c < out_rows) partial[int64_t(blockIdx.y) * out_rows + c] = s;
  }
  __threadfence();  // partials visible to the block that finishes the tile
  __syncthreads();
  if (tx == 0 && ty == 0) last = atomicAdd(&tile_done[blockIdx.x], 1u) == gridDim.y - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const volatile acc_t* part = partial;
  acc_t s[kColsPerThread] = {};
  for (unsigned b = ty; b < gridDim.y; b += kTileY) {
#pragma unroll
    for (int l = 0; l < kColsPerThread; ++l) {
      const int64_t c = c0 + l;
      if (c < out_rows) s[l] += part[int64_t(b) * out_rows + c];
    }
  }
#pragma unroll
  for (int l = 0; l < kColsPerThread; ++l) tile[ty][tx * kColsPerThread + l] = s[l];
  __syncthreads();
  for (int j = ty * kTileX + tx; j < kTileCols; j += kTileX * kTileY) {
    const int64_t c = int64_t(blockIdx.x) * kTileCols + j;
    if (c >= out_rows) continue;
    acc_t sum_c = 0;
    for (int k = 0; k < kTileY; ++k) sum_c += tile[k][j];
    gbias[c] = static_cast<T>(sum_c);
  }
}

// grad_pre and grad_bias. Thread (tx, ty) of block (bx, by) owns grad_pre
// columns c = (bx * kTileX + tx) * 4 + l and rows by*kTileY + ty, stepping by
// gridDim.y * kTileY. Column c belongs to output unit c / pieces (piece
// c % pieces; pieces = 1 but for maxout). The bias gradient: finish_bias_tile.
template <typename T, typename ActFn, bool kDropout>
__global__ void __launch_bounds__(kTileX * kTileY)
grad_pre_kernel(const T* gy, const T* saved, const uint8_t* arg, T* gp, int64_t rows,
                int64_t out_cols, int pieces, ActFn act, DropoutMask mask,
                at::opmath_type<T>* partial, unsigned* tile_done, T* gbias) {
  using acc_t = at::opmath_type<T>;
  const int64_t out_rows = out_cols * pieces;
  const acc_t keep_prob = static_cast<acc_t>(mask.keep_prob);
  const acc_t scale = static_cast<acc_t>(mask.scale);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c0 = (int64_t(blockIdx.x) * kTileX + tx) * kColsPerThread;
  MaskCursor cursor{kDropout ? mask.in_kernel() : mask};
  acc_t sum[kColsPerThread] = {};
  for (int64_t r = int64_t(blockIdx.y) * kTileY + ty; r < rows; r += int64_t(gridDim.y) * kTileY) {
#pragma unroll
    for (int l = 0; l < kColsPerThread; ++l) {
      const int64_t c = c0 + l;
      if (c >= out_rows) break;
      const int64_t unit = pieces == 1 ? c : c / pieces;  // no 64-bit division unless maxout
      const int64_t e = r * out_cols + unit;
      acc_t g = static_cast<acc_t>(gy[e]);
      if (kDropout) g = dropout_value(cursor.keeps(static_cast<uint64_t>(e)), g, scale);
      acc_t v;
      if (arg != nullptr) {  // maxout: the gradient goes to the winning piece
        v = arg[e] == c - unit * pieces ? g : acc_t(0);
      } else if (saved == nullptr) {  // identity
        v = g;
      } else if (ActFn::kFromOutput) {
        // Kept outputs hold act(x) * scale; dropped ones have g == 0.
        const acc_t y = static_cast<acc_t>(saved[e]);
        v = g * act.derivative(kDropout ? y * keep_prob : y);
      } else {
        v = g * act.derivative(static_cast<acc_t>(saved[e]));
      }
      // The bias gradient sums the stored (rounded) values, which the
      // products use too, as stock's sum of its grad_pre does.
      const T stored = static_cast<T>(v);
      gp[r * out_rows + c] = stored;
      sum[l] += static_cast<acc_t>(stored);
    }
  }
  if (gbias != nullptr) finish_bias_tile<T>(sum, out_rows, partial, tile_done, gbias);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> linear_act_forward(const LinearActCall& call,
                                                      const at::Tensor& x,
                                                      const at::Tensor& weight,
                                                      const std::optional<at::Tensor>& bias) {
  const ActSpec& spec = call.spec();
  const DropoutMask& mask = call.mask;
  const bool dropout = call.dropout(), saves_pre = call.saves_pre();
  const bool maxout = spec.act == Act::Maxout;
  const int64_t n = call.n, out_cols = call.out_cols;
  const c10::cuda::CUDAGuard guard(x.device());
  check_capture_safe("linear_act", mask, dropout);

  // x @ W.T through cuBLAS; fresh, contiguous and aligned. In half precision
  // the bias joins the product's float32 accumulation, and the
  // pre-activation is rounded once, as stock F.linear rounds it (added to the
  // rounded product it would be rounded twice); float32 and float64 add it
  // in the epilogue.
  const bool bias_in_product = bias.has_value() && x.scalar_type() != at::kFloat &&
                               x.scalar_type() != at::kDouble;
  at::Tensor buf = bias_in_product ? at::addmm(*bias, call.x2, weight.t())
                                   : at::mm(call.x2, weight.t());
  at::Tensor y = (saves_pre || maxout) ? new_output({n, out_cols}, x.options()) : buf;
  // The pre-activation stays in the product's buffer; the shape rule otherwise.
  at::Tensor aux = saves_pre ? buf
                             : new_output(linear_act_shapes<int64_t>(x.sizes(), call.out_rows, spec).aux,
                                          x.options().dtype(aux_dtype(spec, x.scalar_type())));
  const int64_t total = n * out_cols;
  const at::Tensor b = bias.has_value() && !bias_in_product ? bias->contiguous() : at::Tensor();
  // The identity without dropout and with no bias left to add would only
  // copy the product onto itself.
  const bool copy_only = spec.act == Act::Identity && !dropout && !b.defined();
  if (total > 0 && !copy_only) {
    const auto stream = at::cuda::getCurrentCUDAStream();
    const int grid = grid_for((total + 3) / 4);
    MLPB_DISPATCH_CUDA(x.scalar_type(), "linear_act_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      scalar_t* bp = buf.mutable_data_ptr<scalar_t>();
      scalar_t* yp = y.mutable_data_ptr<scalar_t>();
      const scalar_t* biasp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
      if (maxout) {
        uint8_t* argp = aux.mutable_data_ptr<uint8_t>();
        const int k = static_cast<int>(spec.pieces);
        if (dropout) {
          maxout_epilogue_kernel<scalar_t, true><<<grid, kThreads, 0, stream>>>(bp, yp, argp, biasp, total, out_cols, k, mask);
        } else {
          maxout_epilogue_kernel<scalar_t, false><<<grid, kThreads, 0, stream>>>(bp, yp, argp, biasp, total, out_cols, k, mask);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        return;
      }
      const int bytes = 4 * sizeof(scalar_t);
      const bool vec = aligned_for(bp, bytes) && aligned_for(yp, bytes);
      with_activation<acc_t>(spec, [&](auto act) {
        using Act_ = decltype(act);
        if (dropout && vec) {
          epilogue_kernel<scalar_t, Act_, true, true><<<grid, kThreads, 0, stream>>>(bp, yp, biasp, total, out_cols, saves_pre, act, mask);
        } else if (dropout) {
          epilogue_kernel<scalar_t, Act_, true, false><<<grid, kThreads, 0, stream>>>(bp, yp, biasp, total, out_cols, saves_pre, act, mask);
        } else if (vec) {
          epilogue_kernel<scalar_t, Act_, false, true><<<grid, kThreads, 0, stream>>>(bp, yp, biasp, total, out_cols, saves_pre, act, mask);
        } else {
          epilogue_kernel<scalar_t, Act_, false, false><<<grid, kThreads, 0, stream>>>(bp, yp, biasp, total, out_cols, saves_pre, act, mask);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {LinearActCall::shaped(y, call.y_sizes), aux};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward(
    const LinearActCall& call, const at::Tensor& grad_y, const at::Tensor& x,
    const at::Tensor& weight, const at::Tensor& saved, std::array<bool, 3> output_mask) {
  const ActSpec& spec = call.spec();
  const DropoutMask& mask = call.mask;
  const bool dropout = call.dropout();
  const int64_t n = call.n, out_rows = call.out_rows, out_cols = call.out_cols;
  const c10::cuda::CUDAGuard guard(x.device());
  check_capture_safe("linear_act_backward", mask, dropout);
  const at::Tensor gy = call.as_y_rows(grad_y);
  const bool uses_saved = act_info(spec.act).saves != Saves::Nothing;
  const at::Tensor sv = uses_saved ? call.as_y_rows(saved) : saved;

  at::Tensor gp = new_output({n, out_rows}, x.options());
  at::Tensor gbias = output_mask[2] ? new_output({out_rows}, x.options()) : at::empty({0}, x.options());
  if (n == 0 || out_rows == 0) {
    gp.zero_();
    gbias.zero_();
  } else {
    const auto stream = at::cuda::getCurrentCUDAStream();
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const int64_t tiles = (out_rows + kTileCols - 1) / kTileCols;
    // Row blocks: each thread takes >= 4 rows; about 4 blocks per SM in all.
    const int64_t row_blocks = std::clamp<int64_t>(
        std::min((n + 4 * kTileY - 1) / (4 * kTileY), 4 * sms / tiles), 1, 65535);
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(row_blocks));
    const dim3 block(kTileX, kTileY);
    const auto acc_type = at::toOpMathType(x.scalar_type());
    at::Tensor partial, tile_done;
    if (output_mask[2]) {
      partial = new_output({row_blocks, out_rows}, x.options().dtype(acc_type));
      tile_done = at::zeros({tiles}, x.options().dtype(at::kInt));
    }
    MLPB_DISPATCH_CUDA(x.scalar_type(), "linear_act_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* svp = nullptr;
      const uint8_t* argp = nullptr;
      if (spec.act == Act::Maxout) argp = sv.const_data_ptr<uint8_t>();
      else if (uses_saved) svp = sv.const_data_ptr<scalar_t>();
      acc_t* partp = output_mask[2] ? partial.mutable_data_ptr<acc_t>() : nullptr;
      unsigned* donep = output_mask[2] ? reinterpret_cast<unsigned*>(tile_done.mutable_data_ptr<int>()) : nullptr;
      scalar_t* gbp = output_mask[2] ? gbias.mutable_data_ptr<scalar_t>() : nullptr;
      const int k = static_cast<int>(spec.pieces);
      with_activation<acc_t>(spec, [&](auto act) {
        using Act_ = decltype(act);
        if (dropout) {
          grad_pre_kernel<scalar_t, Act_, true><<<grid, block, 0, stream>>>(
              gy.const_data_ptr<scalar_t>(), svp, argp, gp.mutable_data_ptr<scalar_t>(), n,
              out_cols, k, act, mask, partp, donep, gbp);
        } else {
          grad_pre_kernel<scalar_t, Act_, false><<<grid, block, 0, stream>>>(
              gy.const_data_ptr<scalar_t>(), svp, argp, gp.mutable_data_ptr<scalar_t>(), n,
              out_cols, k, act, mask, partp, donep, gbp);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  auto [gx, gw] = input_grads(call, gp, x, weight, output_mask, &aten_mm);
  return {gx, gw, gbias};
}

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  m.impl("linear_act", boxed<&linear_act_op<&linear_act_forward>>());
  m.impl("linear_act_backward", boxed<&linear_act_backward_op<&linear_act_backward>>());
}

}  // namespace mlpbench::cuda
