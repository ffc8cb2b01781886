// CPU kernels of linear_act: y = dropout(act(x @ weight.T + bias)).
//
// Forward: the product (products_cpu.h: MKL or oneDNN, multi-threaded), which
// becomes y (for bfloat16 with the bias, oneDNN's linear, rounded once), then one
// vectorised pass over y (epilogue) that adds the bias (float32, float64),
// saves the pre-activation when backward needs it (gelu, silu), applies the
// activation and dropout. The pass runs flat across rows (see bias_pattern), so narrow
// layers cost no partial vector per row. Maxout first reduces each unit's
// pieces (scalar).
//
// Backward: one vectorised pass computes grad_pre = grad_y * dropout *
// act'(saved) (over grad_y where that is the caller's scratch), in chunks of rows; each chunk also sums its columns into a
// partial bias gradient, and the partials are added in chunk order, so
// grad_bias does not depend on the thread count. Then the two matrix products.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../layer_kernels.h"
#include "products_cpu.h"
#include "vec_loops.h"

namespace mlpbench::cpu {
namespace {

// Rows per parallel chunk: about this many elements each, so that a lecture
// layer at batch 100 (25,600 outputs) already gives two threads work
// (docs/cpu-tuning.md has the measurements).
constexpr int64_t kChunkElements = 16384;

int64_t rows_per_chunk(int64_t cols) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols));
}

// Whether piece value v beats the best so far: larger, or a NaN (which then
// stays: a NaN in any piece makes the unit NaN, as stock's amax does).
template <typename T> inline bool beats(T v, T best) { return !(v <= best) && best == best; }

// Maxout with two pieces (the lecture's) over `units` units: written without
// branches so that the compiler vectorises it (the pairs de-interleaved by
// permutes) in each instruction set's build; the same choice as below. Sums
// and comparisons in S (float for bfloat16: one rounding, at the store).
template <typename T>
void maxout_pairs(int64_t units, const T* __restrict acc, const T* __restrict bias,
                  T* __restrict y, uint8_t* __restrict arg) {
  using S = at::opmath_type<T>;
  for (int64_t j = 0; j < units; ++j) {
    const S first = S(acc[2 * j]) + S(bias[2 * j]);
    const S second = S(acc[2 * j + 1]) + S(bias[2 * j + 1]);
    const bool take_second = beats(second, first);
    y[j] = T(take_second ? second : first);
    arg[j] = take_second;
  }
}

// Maxout's reduction of one row: the best of unit j's pieces (acc, out_rows
// wide), plus its bias (zeros: no bias), into y[j]; the first best piece's
// index into arg[j].
template <typename T>
void maxout_row(int64_t out_cols, int64_t pieces, const T* acc, const T* bias, T* y,
                uint8_t* arg) {
  if (pieces == 2) return maxout_pairs(out_cols, acc, bias, y, arg);
  using S = at::opmath_type<T>;
  for (int64_t j = 0; j < out_cols; ++j) {
    const T* unit = acc + j * pieces;
    S best = S(unit[0]) + S(bias[j * pieces]);
    uint8_t best_piece = 0;
    for (int64_t s = 1; s < pieces; ++s) {
      const S v = S(unit[s]) + S(bias[j * pieces + s]);
      if (beats(v, best)) {
        best = v;
        best_piece = static_cast<uint8_t>(s);
      }
    }
    y[j] = T(best);
    arg[j] = best_piece;
  }
}

// The bias repeated along a row and kWidth past its end: for the flat element
// e of a row-major (rows, cols) matrix, the vector of biases of elements
// e .. e + kWidth - 1 is `pattern + e % cols`, whatever the row width. This
// lets the epilogue run over many rows as one flat span, so narrow layers
// (256 -> 10) are not split into a partial vector per row.
template <typename T>
std::vector<T> bias_pattern(const T* bias, int64_t cols) {
  std::vector<T> pattern(cols + kMaxWidth);
  for (size_t k = 0; k < pattern.size(); ++k) pattern[k] = bias[k % cols];
  return pattern;
}

// Advances column q by one vector, modulo cols.
inline int64_t next_column(int64_t q, int64_t width, int64_t cols) {
  q += width;
  return q < cols ? q : (q - cols < cols ? q - cols : q % cols);
}

// Epilogue of the flat elements [start, start + count) of y, in place:
// y = dropout(act(y + bias)), and pre = y + bias when pre is non-null. y and
// pre point at element `start`; pattern is bias_pattern() or null.
template <typename P, typename T, typename ActFn>
void epilogue_span(const ActFn& act, const DropoutMask* mask, int64_t start, int64_t count,
                   int64_t cols, const T* pattern, T* y, T* pre) {
  using V = typename P::V;
  int64_t q = start % cols;
  for_each_vector<P>(mask, start, count, [&](int64_t e, int64_t m, Keeps keeps) {
    prefetch_ahead<true>(y + e);
    if (pre) prefetch_ahead<true>(pre + e);
    V v = P::load(y + e, m);
    if (pattern) v = v + P::load(pattern + q, P::kWidth);
    if (pre) P::store(pre + e, v, m);
    V a = act.forward(v);
    if (mask) a = P::dropout(keeps, *mask, a);
    P::store(y + e, a, m);
    q = next_column(q, P::kWidth, cols);
  });
}

// y: allocated here, or the product itself where that is y's shape.
template <typename T>
void forward_impl(const LinearActCall& call, const at::Tensor& x2, const at::Tensor& weight,
                  const at::Tensor& bias_tensor, at::Tensor& y, at::Tensor& aux) {
  const ActSpec& spec = call.spec();
  const DropoutMask* mask = call.dropout() ? &call.mask : nullptr;
  const int64_t out_cols = call.out_cols;
  const bool maxout = spec.act == Act::Maxout;
  // bfloat16: the bias joins the product's float32 accumulation and the
  // pre-activation is rounded once, as stock F.linear rounds it; added to
  // the rounded product it would be rounded twice, off by an ulp of the
  // product where the two nearly cancel. float32 and float64 products
  // accumulate in their own type, so their bias joins the epilogue's pass.
  const bool bias_in_product = bias_tensor.defined() && std::is_same_v<T, c10::BFloat16>;
  const T* bias = bias_tensor.defined() && !bias_in_product ? bias_tensor.const_data_ptr<T>() : nullptr;
  // bfloat16 ReLU without dropout: on AMX tiles the ReLU joins the product's
  // own pass (NaNs kept); elsewhere, its pre-activation proved finite,
  // oneDNN's product applies it. Either way no pass is left to do.
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (spec.act == Act::Relu && !mask && cpu::bf16_linear_on_amx(x2, weight, /*relu=*/true)) {
      y = cpu::bf16_amx_linear(x2, weight, bias_tensor, /*relu=*/true);
      return;
    }
    if (call.finite_pre && spec.act == Act::Relu && !mask &&
        cpu::bf16_linear_takes_relu(call.n, bias_tensor.defined())) {
      y = cpu::bf16_relu_linear(x2, weight, bias_tensor);
      return;
    }
  }
  // The product lands in y itself unless it is wider than y (maxout).
  const at::Tensor acc = std::is_same_v<T, c10::BFloat16>
                             ? cpu::bf16_linear(x2, weight, bias_tensor)
                             : cpu::mm(x2, weight.t());
  y = maxout ? new_output({call.n, out_cols}, x2.options()) : acc;
  // The identity without dropout and with no bias left to add (none, or in
  // bfloat16's product) would only copy y onto itself: a pass over an output
  // that may have left the cache (784 -> 256 at batch 4096: 270 us).
  if (spec.act == Act::Identity && !mask && !bias) return;
  const T* accp = acc.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  T* prep = call.saves_pre() ? aux.mutable_data_ptr<T>() : nullptr;
  uint8_t* argp = maxout ? aux.mutable_data_ptr<uint8_t>() : nullptr;
  // Maxout adds its bias while it reduces the pieces (zeros if none).
  const std::vector<T> pattern = bias && !maxout ? bias_pattern(bias, out_cols) : std::vector<T>();
  const std::vector<T> no_bias(maxout && !bias ? call.out_rows : 0, T(0));
  const T* maxout_bias = bias ? bias : no_bias.data();

  at::parallel_for(0, call.n, rows_per_chunk(call.out_rows), [&](int64_t r0, int64_t r1) {
    simd::simd_dispatch([&](auto lanes) {
      using P = Pack<T, decltype(lanes)>;
      with_activation<typename P::V>(spec, [&](auto act) {
        if (maxout) {
          for (int64_t r = r0; r < r1; ++r) {
            maxout_row(out_cols, spec.pieces, accp + r * call.out_rows, maxout_bias,
                       yp + r * out_cols, argp + r * out_cols);
          }
          if (!mask) return;  // the epilogue would only copy y onto itself
        }
        const int64_t start = r0 * out_cols;
        epilogue_span<P>(act, mask, start, (r1 - r0) * out_cols, out_cols,
                         pattern.empty() ? nullptr : pattern.data(), yp + start,
                         prep ? prep + start : nullptr);
      });
    });
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> linear_act_forward(const LinearActCall& call,
                                                      const at::Tensor& x,
                                                      const at::Tensor& weight,
                                                      const std::optional<at::Tensor>& bias) {
  const ActSpec& spec = call.spec();
  const int64_t n = call.n, out_cols = call.out_cols;
  const at::Tensor x2 = call.x2.contiguous();

  at::Tensor y;  // forward_impl's, or empty when there is nothing to compute
  at::Tensor aux = new_output(linear_act_shapes<int64_t>(x.sizes(), call.out_rows, spec).aux,
                              x.options().dtype(aux_dtype(spec, x.scalar_type())));
  if (n > 0 && out_cols > 0) {
    const at::Tensor w = weight.contiguous();
    const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
    MLPB_DISPATCH_CPU(x.scalar_type(), "linear_act_cpu",
                      [&] { forward_impl<scalar_t>(call, x2, w, b, y, aux); });
  } else {
    y = new_output({n, out_cols}, x.options());
  }
  return {LinearActCall::shaped(y, call.y_sizes), aux};
}

namespace {

// grad_pre of the flat elements [start, start + count) (not maxout):
// gy * dropout * act'(saved); the pointers point at element `start`. saved is
// null for the identity, whose derivative does not read it.
template <typename P, typename T, typename ActFn>
void grad_pre_span_with_mask(const ActFn& act, const DropoutMask* mask, int64_t start,
                             int64_t count, const T* gy, const T* saved, T* gp) {
  using V = typename P::V;
  using S = typename P::Scalar;
  const S keep_prob = mask ? static_cast<S>(mask->keep_prob) : S(1);
  for_each_vector<P>(mask, start, count, [&](int64_t e, int64_t m, Keeps keeps) {
    V g = P::load(gy + e, m);
    V s = saved ? P::load(saved + e, m) : V(S(0));
    if (mask) {
      g = P::dropout(keeps, *mask, g);
      // Kept elements of a saved output hold act(x) * scale; dropped ones
      // have g == 0 already.
      if constexpr (ActFn::kFromOutput) s = s * V(keep_prob);
    }
    P::store(gp + e, g * act.derivative(s), m);
  });
}

// Whether any of p[0 .. n) is a NaN: whether the largest magnitude, in bits,
// lies above infinity's. A max the compiler vectorises, where a loop of
// `any |= p[i] != p[i]` stayed scalar and took most of ReLU's backward pass.
template <typename T> bool any_nan(const T* p, int64_t n) {
  using U = std::conditional_t<sizeof(T) == 2, uint16_t,
                               std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  constexpr int kMantissaBits = std::numeric_limits<T>::digits - 1;
  constexpr U kMagnitude = static_cast<U>(static_cast<U>(~U(0)) >> 1);
  constexpr U kInfinity = static_cast<U>(kMagnitude >> kMantissaBits << kMantissaBits);
  const U* bits = reinterpret_cast<const U*>(p);
  U largest = 0;
  for (int64_t i = 0; i < n; ++i) largest = std::max<U>(largest, bits[i] & kMagnitude);
  return largest > kInfinity;
}

// grad_pre of the flat elements [start, start + count): gy * dropout *
// act'(saved); the pointers point at element `start`. saved is null for the
// identity, whose derivative does not read it.
// ReLU under dropout needs no mask: its saved output is 0 wherever the mask
// dropped or ReLU cut, and > 0 only where both passed, so grad_pre is
// gy * scale where saved > 0 and gy * 0 elsewhere, the values the mask
// gives. Only a NaN output (kept, or dropped as NaN * 0) needs the mask: a
// span holding one takes the general path.
template <typename P, typename T, typename ActFn>
void grad_pre_span(const ActFn& act, const DropoutMask* mask, int64_t start, int64_t count,
                   const T* gy, const T* saved, T* gp) {
  if constexpr (std::is_same_v<ActFn, Relu<typename P::V>>) {
    if (mask && saved) {
      using V = typename P::V;
      const V scale(static_cast<typename P::Scalar>(mask->scale));
      for (int64_t s0 = 0; s0 < count; s0 += kSpan) {
        const int64_t span = std::min(kSpan, count - s0);
        if (any_nan(saved + s0, span)) {
          grad_pre_span_with_mask<P>(act, mask, start + s0, span, gy + s0, saved + s0, gp + s0);
          continue;
        }
        for_each_vector<P>(nullptr, 0, span, [&](int64_t e, int64_t m, Keeps) {
          const V g = P::load(gy + s0 + e, m);
          const V y = P::load(saved + s0 + e, m);
          P::store(gp + s0 + e, m_select(V(0.0f) < y, g * scale, g * V(0.0f)), m);
        });
      }
      return;
    }
  }
  grad_pre_span_with_mask<P>(act, mask, start, count, gy, saved, gp);
}

// maxout_grad_row for two pieces and no dropout, without branches (as
// maxout_pairs, so that the compiler vectorises it).
template <typename T>
void maxout_grad_pairs(int64_t units, const T* __restrict gy, const uint8_t* __restrict arg,
                       T* __restrict gp) {
  for (int64_t j = 0; j < units; ++j) {
    const bool second = arg[j] != 0;
    gp[2 * j] = second ? T(0) : gy[j];
    gp[2 * j + 1] = second ? gy[j] : T(0);
  }
}

// Maxout's grad_pre of one row: each unit's gradient goes to its best piece.
template <typename T>
void maxout_grad_row(const DropoutMask* mask, uint64_t row_start, int64_t out_cols,
                     int64_t pieces, const T* gy, const uint8_t* arg, T* gp) {
  if (pieces == 2 && !mask) return maxout_grad_pairs(out_cols, gy, arg, gp);
  using S = at::opmath_type<T>;
  const S scale = mask ? static_cast<S>(mask->scale) : S(1);
  for (int64_t j = 0; j < out_cols; ++j) {
    T g = gy[j];
    if (mask) g = static_cast<T>(dropout_value(mask->keeps(row_start + j), static_cast<S>(g), scale));
    T* unit = gp + j * pieces;
    std::fill(unit, unit + pieces, T(0));
    unit[arg[j]] = g;
  }
}

// acc += x, compensated: comp holds the rounding error of the last addition,
// taken back from the next.
template <typename V> inline void kahan_add(V& acc, V& comp, V x) {
  const V y = x - comp;
  const V t = acc + y;
  comp = (t - acc) - y;
  acc = t;
}

// sum[j] = the sum of column j of the (count / cols, cols) row-major rows, in
// P's Scalar (float for bfloat16 rows). Runs flat, each vector added at its
// column into acc, which wraps past the row's end (bias_pattern's layout) and
// is folded back at the end. Compensated (Kahan): each addition's rounding
// error is carried in comp and taken back, so a chunk's sum is within an ulp
// or two however many rows it holds; a plain running sum over a chunk's 64
// rows was at times 3-4x further off than stock's bias gradient.
//
// Where a row is a whole number of vectors, the columns go by in blocks of
// B vectors instead, each block's sums and compensations held in registers
// while the rows go by (column_block_sums): the same additions in the same
// order, without the flat walk's loads and stores of acc and comp for every
// vector, which made the bias gradient cost half as much as grad_pre's pass.
template <int64_t B, typename P, typename T>
void column_block_sums(const T* rows, int64_t n, int64_t cols, typename P::Scalar* sum) {
  using A = Pack<typename P::Scalar, typename P::Lanes>;  // the accumulator's
  using V = typename A::V;
  constexpr int64_t W = P::kWidth;
  V acc[B], comp[B];
  for (int64_t b = 0; b < B; ++b) acc[b] = comp[b] = V(typename P::Scalar(0));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < B; ++b) kahan_add(acc[b], comp[b], P::load(rows + r * cols + b * W, W));
  }
  for (int64_t b = 0; b < B; ++b) A::store(sum + b * W, acc[b] - comp[b], W);
}

// Four vectors' sums and compensations: eight registers of sixteen (AVX2).
constexpr int64_t kSumBlock = 4;

template <typename P, typename T>
void column_sums(const T* rows, int64_t count, int64_t cols, typename P::Scalar* sum) {
  using S = typename P::Scalar;
  using A = Pack<S, typename P::Lanes>;  // the accumulator's
  using V = typename A::V;
  constexpr int64_t W = P::kWidth;
  if (cols % W == 0) {
    const int64_t n = count / cols;
    int64_t j = 0;
    for (; j + kSumBlock * W <= cols; j += kSumBlock * W) {
      column_block_sums<kSumBlock, P>(rows + j, n, cols, sum + j);
    }
    for (; j < cols; j += W) column_block_sums<1, P>(rows + j, n, cols, sum + j);
    return;
  }
  std::vector<S> acc(cols + P::kWidth, S(0)), comp(cols + P::kWidth, S(0));
  int64_t q = 0;
  for (int64_t e = 0; e < count; e += P::kWidth) {
    const int64_t m = std::min(P::kWidth, count - e);
    V a = A::load(acc.data() + q, P::kWidth), c = A::load(comp.data() + q, P::kWidth);
    kahan_add(a, c, P::load(rows + e, m));
    A::store(comp.data() + q, c, P::kWidth);
    A::store(acc.data() + q, a, P::kWidth);
    q = next_column(q, P::kWidth, cols);
  }
  for (int64_t j = 0; j < cols; ++j) sum[j] = acc[j] - comp[j];
  for (size_t k = cols; k < acc.size(); ++k) sum[k % cols] += acc[k] - comp[k];
}

// The input gradients grad_pre @ weight and grad_pre^T @ x: two products of
// the same n * in * out multiply-adds. ATen's BLAS splits each across all
// threads in turn; they run side by side instead, one single-threaded product
// per thread, when that is faster:
// - small products, under kTaskParallelMacs per thread: too small for BLAS's
//   split of one product to pay for itself;
// - large ones, from kLargeMacs, when there are as many threads as products:
//   none idles, and neither product pays for BLAS's synchronisation.
// In between, side by side measured slower, and so it did for large bfloat16
// products, which oneDNN splits across the threads faster (docs/cpu-tuning.md).
// (Inside at::parallel_for, ATen and MKL run single-threaded. The dispatch
// guard keeps a worker thread's own grad mode from recording the products.)
constexpr int64_t kProducts = 2;
constexpr int64_t kTaskParallelMacs = int64_t{1} << 24;
constexpr int64_t kLargeMacs = int64_t{1} << 29;

bool products_side_by_side(int64_t macs, at::ScalarType dtype, int64_t threads) {
  if (threads < 2 || at::in_parallel_region()) return false;
  const bool large = threads == kProducts && macs >= kLargeMacs && dtype != at::kBFloat16;
  return macs <= kTaskParallelMacs * threads || large;
}

std::pair<at::Tensor, at::Tensor> input_grads_cpu(const LinearActCall& call,
                                                  const at::Tensor& grad_pre, const at::Tensor& x,
                                                  const at::Tensor& weight,
                                                  std::array<bool, 3> output_mask) {
  const int64_t macs = call.n * grad_pre.size(1) * weight.size(1);
  if (!(output_mask[0] && output_mask[1] &&
        products_side_by_side(macs, x.scalar_type(), at::get_num_threads()))) {
    return input_grads(call, grad_pre, x, weight, output_mask, &cpu::mm);
  }
  at::Tensor gx, gw;
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    at::AutoDispatchBelowADInplaceOrView guard;
    for (int64_t i = begin; i < end; ++i) {
      if (i == 0) {
        gx = LinearActCall::shaped(cpu::mm(grad_pre, weight), x.sizes());
      } else {
        gw = cpu::mm(grad_pre.t(), call.x2);
      }
    }
  });
  return {gx, gw};
}

// Backward's elementwise pass for one dtype: grad_pre = grad_y * dropout *
// act'(saved) (maxout: each unit's gradient to its winning piece), in chunks
// of rows fixed by the shape alone; each chunk also sums its columns into a
// partial bias gradient (in float for bfloat16), so that grad_bias does not
// depend on the thread count.
template <typename T>
struct GradPrePass {
  using S = at::opmath_type<T>;
  const LinearActCall& call;
  const T* gy;
  const T* saved;       // y or the pre-activation; null where not read
  const uint8_t* arg;   // maxout's winning pieces, else null
  T* gp;                // null for the identity without dropout (grad_pre is gy)
  S* partial;           // (chunks, out_rows) bias partial sums, or null
  int64_t chunk;        // rows per chunk

  int64_t chunks() const { return (call.n + chunk - 1) / chunk; }

  // grad_pre and the bias partial sums of chunk c.
  template <typename P, typename ActFn> void run_chunk(const ActFn& act, int64_t c) const {
    const int64_t out_rows = call.out_rows, out_cols = call.out_cols;
    const int64_t r0 = c * chunk, r1 = std::min(call.n, r0 + chunk);
    const DropoutMask* mask = call.dropout() ? &call.mask : nullptr;
    if (arg) {
      for (int64_t r = r0; r < r1; ++r) {
        maxout_grad_row(mask, static_cast<uint64_t>(r) * out_cols, out_cols, call.spec().pieces,
                        gy + r * out_cols, arg + r * out_cols, gp + r * out_rows);
      }
    } else if (gp) {
      const int64_t start = r0 * out_cols;
      grad_pre_span<P>(act, mask, start, (r1 - r0) * out_cols, gy + start,
                       saved ? saved + start : nullptr, gp + start);
    }
    if (partial) {
      const T* rows = gp ? gp : gy;
      column_sums<P>(rows + r0 * out_rows, (r1 - r0) * out_rows, out_rows, partial + c * out_rows);
    }
  }

  void run() const {
    at::parallel_for(0, chunks(), 1, [&](int64_t c0, int64_t c1) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<T, decltype(lanes)>;
        with_activation<typename P::V>(call.spec(), [&](auto act) {
          for (int64_t c = c0; c < c1; ++c) run_chunk<P>(act, c);
        });
      });
    });
  }

  // The chunks' partial sums added in chunk order, in double: the same sum
  // for any thread count.
  void finish_bias(T* gbias) const {
    for (int64_t j = 0; j < call.out_rows; ++j) {
      double sum = 0;
      for (int64_t c = 0; c < chunks(); ++c) sum += partial[c * call.out_rows + j];
      gbias[j] = static_cast<T>(sum);
    }
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward(
    const LinearActCall& call, const at::Tensor& grad_y, const at::Tensor& x,
    const at::Tensor& weight, const at::Tensor& saved, std::array<bool, 3> output_mask) {
  const ActSpec& spec = call.spec();
  const int64_t n = call.n, out_rows = call.out_rows;
  const at::Tensor gy = call.as_y_rows(grad_y);
  const bool maxout = spec.act == Act::Maxout;
  const bool uses_saved = act_info(spec.act).saves != Saves::Nothing;
  const at::Tensor sv = uses_saved ? call.as_y_rows(saved) : saved;

  // Identity without dropout: grad_pre is grad_y itself, and no pass copies it.
  const bool passthrough = spec.act == Act::Identity && !call.dropout();
  // grad_pre over a scratch grad_y where it has y's shape (not maxout's
  // wider one): the pass then reads two arrays and writes one it already
  // holds in cache, where a fresh buffer costs a third array's traffic.
  const bool over_gy = call.grad_y_is_scratch && !maxout;
  at::Tensor gp = passthrough || over_gy ? gy : new_output({n, out_rows}, x.options());
  at::Tensor gbias = output_mask[2] ? new_output({out_rows}, x.options()) : at::empty({0}, x.options());
  if (output_mask[2] && n == 0) gbias.zero_();
  if (n > 0 && call.out_cols > 0) {
    MLPB_DISPATCH_CPU(x.scalar_type(), "linear_act_backward_cpu", [&] {
      using T = scalar_t;
      const int64_t chunk = rows_per_chunk(out_rows);
      using S = at::opmath_type<T>;
      at::Tensor partial = at::empty({output_mask[2] ? (n + chunk - 1) / chunk : 0, out_rows},
                                     x.options().dtype(c10::CppTypeToScalarType<S>::value));
      const GradPrePass<T> pass{call,
                                gy.const_data_ptr<T>(),
                                uses_saved && !maxout ? sv.const_data_ptr<T>() : nullptr,
                                maxout ? sv.const_data_ptr<uint8_t>() : nullptr,
                                passthrough ? nullptr : gp.mutable_data_ptr<T>(),
                                output_mask[2] ? partial.mutable_data_ptr<S>() : nullptr,
                                chunk};
      pass.run();
      if (output_mask[2]) pass.finish_bias(gbias.mutable_data_ptr<T>());
    });
  } else if (n > 0 && !passthrough) {
    gp.zero_();
  }
  auto [gx, gw] = input_grads_cpu(call, gp, x, weight, output_mask);
  return {gx, gw, gbias};
}

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("linear_act", boxed<&linear_act_op<&linear_act_forward>>());
  m.impl("linear_act_backward", boxed<&linear_act_backward_op<&linear_act_backward>>());
}

}  // namespace mlpbench::cpu
