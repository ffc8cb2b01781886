// CPU kernels of linear_act: y = dropout(act(x @ weight.T + bias)).
//
// Forward: each thread takes a range of rows and walks it in blocks small
// enough that the block's output stays in cache; per block it runs one
// single-threaded BLAS product and then the epilogue (bias, activation,
// dropout) over the block just written. No pre-activation tensor is
// materialised unless backward needs it (gelu, silu).
//
// Backward: one pass computes grad_pre = grad_y * keep / (1 - p) * act'(saved)
// and accumulates grad_bias, parallel over output columns so that the bias sum
// is the same whatever the thread count; then the two matrix products.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../op_args.h"
#include "blas.h"

namespace mlpbench::cpu {
namespace {

constexpr int64_t kBlockBytes = 512 * 1024;  // output block kept in cache (L2)

// Rows per parallel chunk: at least ~1 MFLOP of product per chunk.
int64_t row_grain(int64_t out_rows, int64_t in_features) {
  const int64_t per_row = std::max<int64_t>(1, out_rows * in_features);
  return std::max<int64_t>(1, (int64_t{1} << 20) / per_row);
}

// Epilogue for one block of `rows` rows starting at global row `row0`.
// acc holds x @ W.T for the block (row stride out_rows); writes y (row stride
// out_cols), the pre-activation into pre when non-null, the argmax into arg
// (maxout).
template <typename T, typename ActFn>
void epilogue_block(const ActFn& act, const ActSpec& spec, const DropoutMask* mask,
                    int64_t row0, int64_t rows, int64_t out_rows, int64_t out_cols,
                    T* acc, const T* bias, T* y, T* pre, uint8_t* arg) {
  const T keep_prob = mask ? static_cast<T>(mask->keep_prob) : T(1);
  const int64_t k = spec.pieces;
  for (int64_t r = 0; r < rows; ++r) {
    T* acc_row = acc + r * out_rows;
    T* y_row = y + r * out_cols;
    // 1. bias + max over pieces (maxout) or bias alone, into acc_row[0:out_cols].
    if (spec.act == Act::Maxout) {
      uint8_t* arg_row = arg + r * out_cols;
      for (int64_t j = 0; j < out_cols; ++j) {
        const T* unit = acc_row + j * k;
        T best = unit[0] + (bias ? bias[j * k] : T(0));
        uint8_t best_piece = 0;
        for (int64_t s = 1; s < k; ++s) {
          const T v = unit[s] + (bias ? bias[j * k + s] : T(0));
          if (v > best) {
            best = v;
            best_piece = static_cast<uint8_t>(s);
          }
        }
        acc_row[j] = best;  // j <= j*k: never overwrites a unit still to be read
        arg_row[j] = best_piece;
      }
    } else if (bias) {
      for (int64_t j = 0; j < out_cols; ++j) acc_row[j] += bias[j];
    }
    if (pre) std::copy(acc_row, acc_row + out_cols, pre + r * out_cols);
    // 2. activation, then dropout.
    if (!mask) {
      for (int64_t j = 0; j < out_cols; ++j) y_row[j] = act.forward(acc_row[j]);
    } else {
      const uint64_t base = static_cast<uint64_t>(row0 + r) * out_cols;
      for_each_keep(*mask, base, base + out_cols, [&](uint64_t i, bool keep) {
        const int64_t j = static_cast<int64_t>(i - base);
        y_row[j] = keep ? act.forward(acc_row[j]) / keep_prob : T(0);
      });
    }
  }
}

template <typename T>
void forward_impl(const LinearActCall& call, const at::Tensor& x2, const at::Tensor& weight,
                  const T* bias, at::Tensor& y, at::Tensor& aux) {
  const ActSpec& spec = call.spec;
  const DropoutMask* mask = call.dropout ? &call.mask : nullptr;
  const int64_t n = call.n, in = x2.size(1), out_rows = call.out_rows, out_cols = call.out_cols;
  const bool saves_pre = call.saves_pre();
  // The product lands in y itself unless it is wider than y (maxout).
  const bool needs_scratch = spec.act == Act::Maxout;
  const int64_t block_rows =
      std::max<int64_t>(8, kBlockBytes / (std::max<int64_t>(1, out_rows) * int64_t(sizeof(T))));
  const T* xp = x2.const_data_ptr<T>();
  const T* wp = weight.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  T* prep = saves_pre ? aux.mutable_data_ptr<T>() : nullptr;
  uint8_t* argp = spec.act == Act::Maxout ? aux.mutable_data_ptr<uint8_t>() : nullptr;

  with_activation<T>(spec, [&](auto act) {
    at::parallel_for(0, n, row_grain(out_rows, in), [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(needs_scratch ? std::min(block_rows, end - begin) * out_rows : 0);
      for (int64_t r0 = begin; r0 < end; r0 += block_rows) {
        const int64_t rows = std::min(block_rows, end - r0);
        T* acc = needs_scratch ? scratch.data() : yp + r0 * out_cols;
        gemm_a_bt<T>(rows, out_rows, in, xp + r0 * in, wp, acc, out_rows);
        epilogue_block<T>(act, spec, mask, r0, rows, out_rows, out_cols, acc, bias,
                          yp + r0 * out_cols, prep ? prep + r0 * out_cols : nullptr,
                          argp ? argp + r0 * out_cols : nullptr);
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor> linear_act_cpu(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p, int64_t seed,
    int64_t offset) {
  const LinearActCall call = linear_act_call(false, x, weight, bias, activation, negative_slope,
                                             alpha, approximate, pieces, dropout_p, seed, offset);
  const ActSpec& spec = call.spec;
  const int64_t n = call.n, out_cols = call.out_cols;
  const at::Tensor x2 = call.x2.contiguous();

  at::Tensor y = new_output({n, out_cols}, x.options());
  at::Tensor aux;
  if (call.saves_pre()) {
    aux = new_output({n, out_cols}, x.options());
  } else if (spec.act == Act::Maxout) {
    aux = new_output({n, out_cols}, x.options().dtype(at::kByte));
  } else {
    aux = at::empty({0}, x.options());
  }
  if (n > 0 && out_cols > 0) {
    const at::Tensor w = weight.contiguous();
    const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear_act_cpu", [&] {
      forward_impl<scalar_t>(call, x2, w, b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                             y, aux);
    });
  }
  return {y.view(call.y_sizes), aux};
}

// grad_pre for output columns [c0, c1), all rows; accumulates grad_bias.
template <typename T, typename ActFn>
void grad_pre_columns(const ActFn& act, const ActSpec& spec, const DropoutMask* mask,
                      int64_t c0, int64_t c1, int64_t n, int64_t out_cols, const T* gy,
                      const T* saved, const uint8_t* arg, T* gp, T* gbias) {
  const int64_t k = spec.pieces;
  const int64_t out_rows = out_cols * k;
  const T keep = mask ? static_cast<T>(mask->keep_prob) : T(1);
  std::vector<double> bias_sum(gbias && spec.act != Act::Maxout ? c1 - c0 : 0, 0.0);
  // g: upstream gradient already through dropout; j: output column.
  auto emit = [&](int64_t row, int64_t j, T g) {
    const int64_t e = row * out_cols + j;
    if (spec.act == Act::Maxout) {
      T* unit = gp + row * out_rows + j * k;
      for (int64_t s = 0; s < k; ++s) unit[s] = T(0);
      unit[arg[e]] = g;
      return;
    }
    T d;
    if constexpr (ActFn::kFromOutput) {
      // Kept elements hold act(x) / keep; dropped ones have g == 0 already.
      d = saved ? act.derivative(mask ? saved[e] * keep : saved[e]) : T(1);
    } else {
      d = act.derivative(saved[e]);
    }
    const T v = g * d;
    gp[e] = v;
    if (gbias) bias_sum[j - c0] += v;
  };
  for (int64_t row = 0; row < n; ++row) {
    const T* gy_row = gy + row * out_cols;
    if (!mask) {
      for (int64_t j = c0; j < c1; ++j) emit(row, j, gy_row[j]);
    } else {
      const uint64_t base = static_cast<uint64_t>(row) * out_cols;
      for_each_keep(*mask, base + c0, base + c1, [&](uint64_t i, bool kept) {
        const int64_t j = static_cast<int64_t>(i - base);
        emit(row, j, kept ? gy_row[j] / keep : T(0));
      });
    }
  }
  if (!gbias) return;
  if (spec.act == Act::Maxout) {
    // Bias gradient of piece s of unit j: the gradient routed to that piece.
    for (int64_t j = c0; j < c1; ++j)
      for (int64_t s = 0; s < k; ++s) {
        double sum = 0;
        for (int64_t row = 0; row < n; ++row) sum += gp[row * out_rows + j * k + s];
        gbias[j * k + s] = static_cast<T>(sum);
      }
  } else {
    for (int64_t j = c0; j < c1; ++j) gbias[j] = static_cast<T>(bias_sum[j - c0]);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_cpu(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& saved, c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p, int64_t seed,
    int64_t offset, std::array<bool, 3> output_mask) {
  const LinearActCall call = linear_act_call(true, x, weight, std::nullopt, activation,
                                             negative_slope, alpha, approximate, pieces,
                                             dropout_p, seed, offset);
  const ActSpec& spec = call.spec;
  const int64_t n = call.n, out_rows = call.out_rows, out_cols = call.out_cols;
  const at::Tensor gy = call.as_y_rows(grad_y);
  const bool uses_saved = spec.act != Act::Identity;
  const at::Tensor sv = uses_saved ? call.as_y_rows(saved) : saved;

  at::Tensor gp = new_output({n, out_rows}, x.options());
  at::Tensor gbias = output_mask[2] ? new_output({out_rows}, x.options()) : at::empty({0}, x.options());
  if (n == 0 && output_mask[2]) gbias.zero_();
  if (n > 0 && out_cols > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear_act_backward_cpu", [&] {
      const scalar_t* svp = nullptr;
      const uint8_t* argp = nullptr;
      if (spec.act == Act::Maxout) argp = sv.const_data_ptr<uint8_t>();
      else if (uses_saved) svp = sv.const_data_ptr<scalar_t>();
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n));
      with_activation<scalar_t>(spec, [&](auto act) {
        at::parallel_for(0, out_cols, grain, [&](int64_t c0, int64_t c1) {
          grad_pre_columns<scalar_t>(
              act, spec, call.dropout ? &call.mask : nullptr, c0, c1, n, out_cols,
              gy.const_data_ptr<scalar_t>(), svp, argp, gp.mutable_data_ptr<scalar_t>(),
              output_mask[2] ? gbias.mutable_data_ptr<scalar_t>() : nullptr);
        });
      });
    });
  } else if (n > 0) {
    gp.zero_();
  }
  auto [gx, gw] = input_grads(call, gp, x, weight, output_mask);
  return {gx, gw, gbias};
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("linear_act", &linear_act_cpu);
  m.impl("linear_act_backward", &linear_act_backward_cpu);
}

}  // namespace mlpbench::cpu
