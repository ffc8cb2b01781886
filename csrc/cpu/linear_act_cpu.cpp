// CPU kernels of linear_act: y = dropout(act(x @ weight.T + bias)).
//
// Forward: the product through ATen's multi-threaded BLAS straight into y,
// then one vectorised pass over y's rows (epilogue) that adds the bias, saves
// the pre-activation when backward needs it (gelu, silu), applies the
// activation and dropout. Maxout first reduces each unit's pieces (scalar).
//
// Backward: one vectorised pass computes grad_pre = grad_y * dropout scale *
// act'(saved), in chunks of rows; each chunk also sums its rows into a partial
// bias gradient, and the partials are added in chunk order, so grad_bias does
// not depend on the thread count. Then the two matrix products.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "../op_args.h"
#include "vec_loops.h"

namespace mlpbench::cpu {
namespace {

// Rows per parallel chunk: about this many elements each.
constexpr int64_t kChunkElements = 65536;

int64_t rows_per_chunk(int64_t cols) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols));
}

// Maxout's reduction, in place on one row of acc (out_rows wide): the best
// piece of unit j, plus its bias, into acc[j]; its index into arg[j].
template <typename T>
void maxout_row(int64_t out_cols, int64_t pieces, T* acc, const T* bias, uint8_t* arg) {
  for (int64_t j = 0; j < out_cols; ++j) {
    const T* unit = acc + j * pieces;
    T best = unit[0] + (bias ? bias[j * pieces] : T(0));
    uint8_t best_piece = 0;
    for (int64_t s = 1; s < pieces; ++s) {
      const T v = unit[s] + (bias ? bias[j * pieces + s] : T(0));
      if (v > best) {
        best = v;
        best_piece = static_cast<uint8_t>(s);
      }
    }
    acc[j] = best;  // j <= j * pieces: never overwrites a unit still to be read
    arg[j] = best_piece;
  }
}

// Epilogue of one row, columns [0, cols): y = dropout(act(in + bias)), and
// pre = in + bias when pre is non-null. in may alias y.
template <typename T, typename ActFn>
void epilogue_row(const ActFn& act, const DropoutMask* mask, uint64_t row_start, int64_t cols,
                  const T* in, const T* bias, T* y, T* pre) {
  using P = Pack<T>;
  using V = typename P::V;
  uint32_t words[kSpan];
  for (int64_t s0 = 0; s0 < cols; s0 += kSpan) {
    const int64_t span = std::min(kSpan, cols - s0);
    if (mask) simd::dropout_words(*mask, row_start + s0, span, words);
    for (int64_t i = 0; i < span; i += P::kWidth) {
      const int64_t j = s0 + i, m = std::min(P::kWidth, span - i);
      V v = P::load(in + j, m);
      if (bias) v = v + P::load(bias + j, m);
      if (pre) P::store(pre + j, v, m);
      V a = act.forward(v);
      if (mask) a = P::dropout(words + i, m, *mask, a);
      P::store(y + j, a, m);
    }
  }
}

template <typename T>
void forward_impl(const LinearActCall& call, const at::Tensor& x2, const at::Tensor& weight,
                  const T* bias, at::Tensor& y, at::Tensor& aux) {
  const ActSpec& spec = call.spec;
  const DropoutMask* mask = call.dropout ? &call.mask : nullptr;
  const int64_t out_cols = call.out_cols;
  const bool maxout = spec.act == Act::Maxout;
  // The product lands in y itself unless it is wider than y (maxout).
  at::Tensor acc = maxout ? at::mm(x2, weight.t()) : at::mm_out(y, x2, weight.t());
  T* accp = acc.mutable_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  T* prep = call.saves_pre() ? aux.mutable_data_ptr<T>() : nullptr;
  uint8_t* argp = maxout ? aux.mutable_data_ptr<uint8_t>() : nullptr;

  with_activation<typename Pack<T>::V>(spec, [&](auto act) {
    at::parallel_for(0, call.n, rows_per_chunk(call.out_rows), [&](int64_t r0, int64_t r1) {
      simd::simd_dispatch([&] {
        for (int64_t r = r0; r < r1; ++r) {
          T* in = accp + r * call.out_rows;
          const T* row_bias = bias;
          if (maxout) {
            maxout_row(out_cols, spec.pieces, in, bias, argp + r * out_cols);
            row_bias = nullptr;  // already added
          }
          epilogue_row(act, mask, static_cast<uint64_t>(r) * out_cols, out_cols, in, row_bias,
                       yp + r * out_cols, prep ? prep + r * out_cols : nullptr);
        }
      });
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

// grad_pre of one row, columns [0, cols) (not maxout). saved is null for the
// identity, whose derivative does not read it.
template <typename T, typename ActFn>
void grad_pre_row(const ActFn& act, const DropoutMask* mask, uint64_t row_start, int64_t cols,
                  const T* gy, const T* saved, T* gp) {
  using P = Pack<T>;
  using V = typename P::V;
  const T keep_prob = mask ? static_cast<T>(mask->keep_prob) : T(1);
  uint32_t words[kSpan];
  for (int64_t s0 = 0; s0 < cols; s0 += kSpan) {
    const int64_t span = std::min(kSpan, cols - s0);
    if (mask) simd::dropout_words(*mask, row_start + s0, span, words);
    for (int64_t i = 0; i < span; i += P::kWidth) {
      const int64_t j = s0 + i, m = std::min(P::kWidth, span - i);
      V g = P::load(gy + j, m);
      V s = saved ? P::load(saved + j, m) : V(T(0));
      if (mask) {
        g = P::dropout(words + i, m, *mask, g);
        // Kept elements of a saved output hold act(x) / (1 - p); dropped ones
        // have g == 0 already.
        if constexpr (ActFn::kFromOutput) s = s * V(keep_prob);
      }
      P::store(gp + j, g * act.derivative(s), m);
    }
  }
}

// Maxout's grad_pre of one row: each unit's gradient goes to its best piece.
template <typename T>
void maxout_grad_row(const DropoutMask* mask, uint64_t row_start, int64_t out_cols,
                     int64_t pieces, const T* gy, const uint8_t* arg, T* gp) {
  const T keep_prob = mask ? static_cast<T>(mask->keep_prob) : T(1);
  for (int64_t j = 0; j < out_cols; ++j) {
    T g = gy[j];
    if (mask) g = mask->keeps(row_start + j) ? g / keep_prob : T(0);
    T* unit = gp + j * pieces;
    std::fill(unit, unit + pieces, T(0));
    unit[arg[j]] = g;
  }
}

// sum[j] += rows[r][j] for r < count, j < cols (row stride cols).
template <typename T>
void add_rows(const T* rows, int64_t count, int64_t cols, T* sum) {
  using P = Pack<T>;
  for (int64_t j = 0; j < cols; j += P::kWidth) {
    const int64_t m = std::min(P::kWidth, cols - j);
    auto acc = P::load(sum + j, m);
    for (int64_t r = 0; r < count; ++r) acc = acc + P::load(rows + r * cols + j, m);
    P::store(sum + j, acc, m);
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
  const bool maxout = spec.act == Act::Maxout;
  const bool uses_saved = spec.act != Act::Identity;
  const at::Tensor sv = uses_saved ? call.as_y_rows(saved) : saved;

  at::Tensor gp = new_output({n, out_rows}, x.options());
  at::Tensor gbias = output_mask[2] ? new_output({out_rows}, x.options()) : at::empty({0}, x.options());
  if (output_mask[2] && n == 0) gbias.zero_();
  if (n > 0 && out_cols > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "linear_act_backward_cpu", [&] {
      using T = scalar_t;
      const T* gyp = gy.const_data_ptr<T>();
      const T* svp = uses_saved && !maxout ? sv.const_data_ptr<T>() : nullptr;
      const uint8_t* argp = maxout ? sv.const_data_ptr<uint8_t>() : nullptr;
      T* gpp = gp.mutable_data_ptr<T>();
      const DropoutMask* mask = call.dropout ? &call.mask : nullptr;
      // Chunks of rows fixed by the shape alone, each with its partial bias sum.
      const int64_t chunk = rows_per_chunk(out_rows);
      const int64_t chunks = (n + chunk - 1) / chunk;
      at::Tensor partial = at::zeros({output_mask[2] ? chunks : 0, out_rows}, x.options());
      T* partp = partial.mutable_data_ptr<T>();
      with_activation<typename Pack<T>::V>(spec, [&](auto act) {
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          simd::simd_dispatch([&] {
            for (int64_t c = c0; c < c1; ++c) {
              const int64_t r0 = c * chunk, r1 = std::min(n, r0 + chunk);
              for (int64_t r = r0; r < r1; ++r) {
                const uint64_t row_start = static_cast<uint64_t>(r) * out_cols;
                if (maxout) {
                  maxout_grad_row(mask, row_start, out_cols, spec.pieces, gyp + r * out_cols,
                                  argp + r * out_cols, gpp + r * out_rows);
                } else {
                  grad_pre_row(act, mask, row_start, out_cols, gyp + r * out_cols,
                               svp ? svp + r * out_cols : nullptr, gpp + r * out_rows);
                }
              }
              if (partp) add_rows(gpp + r0 * out_rows, r1 - r0, out_rows, partp + c * out_rows);
            }
          });
        });
      });
      if (output_mask[2]) {
        // Chunk partials in order, in double: the same sum for any thread count.
        T* gb = gbias.mutable_data_ptr<T>();
        for (int64_t j = 0; j < out_rows; ++j) {
          double sum = 0;
          for (int64_t c = 0; c < chunks; ++c) sum += partp[c * out_rows + j];
          gb[j] = static_cast<T>(sum);
        }
      }
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
