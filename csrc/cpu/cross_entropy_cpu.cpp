// CPU kernels of cross_entropy (cross_entropy.h), row by row in parallel
// chunks: each row's max and sum of exponentials one vectorised pass each
// (vectors of classes, reduced in registers), its logsumexp in double;
// backward the softmax less the target's one, times the row's gradient. The
// loss's sum over rows runs in double in row order, so it does not depend on
// the thread count.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../checks.h"
#include "../cross_entropy.h"
#include "../kernel_common.h"
#include "../op_call.h"
#include "vec_loops.h"

namespace mlpbench::cpu {
namespace {

// Rows per parallel chunk: about this many logits each.
constexpr int64_t kChunkLogits = 16384;

int64_t rows_per_chunk(int64_t classes) {
  return std::max<int64_t>(1, kChunkLogits / std::max<int64_t>(1, classes));
}

// A vector's two halves (G a GCC vector of floats): copies that compile to
// one extract, where __builtin_shufflevector needs GCC 12.
template <typename G> struct Halves {
  typedef float H __attribute__((vector_size(sizeof(G) / 2)));
  H lo, hi;
  explicit Halves(const G& v) {
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
  }
};

// A vector's lanes summed, or their max, by folding halves in registers
// (double: its one lane). A row of ten classes is all latency: a scalar
// chain through memory took most of the kernel's time.
template <typename G> float fold_sum(G v) {
  if constexpr (sizeof(G) == 2 * sizeof(float)) {
    return v[0] + v[1];
  } else {
    const Halves<G> h(v);
    return fold_sum(h.lo + h.hi);
  }
}
template <typename G> float fold_max(G v) {
  if constexpr (sizeof(G) == 2 * sizeof(float)) {
    return std::max(v[0], v[1]);
  } else {
    const Halves<G> h(v);
    return fold_max(h.lo > h.hi ? h.lo : h.hi);
  }
}
template <int W> float lane_sum(simd::VFloatT<W> v) { return fold_sum(v.v); }
template <int W> float lane_max(simd::VFloatT<W> v) { return fold_max(v.v); }
inline double lane_sum(double v) { return v; }
inline double lane_max(double v) { return v; }

// Each lane's index, to tell a row's lanes from those past its end.
constexpr float kLaneIndex[kMaxWidth] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

// The row's max; a NaN is left out (the sum below carries it).
template <typename P, typename T>
typename P::Scalar row_max(const T* row, int64_t classes) {
  using V = typename P::V;
  using S = typename P::Scalar;
  constexpr int64_t W = P::kWidth;
  const S inf = std::numeric_limits<S>::infinity();
  V vmax(-inf);
  for (int64_t c0 = 0; c0 < classes; c0 += W) {
    const int64_t count = std::min(W, classes - c0);
    V v = P::load(row + c0, count);
    if constexpr (W > 1) {
      if (count < W) v = m_select(V::load(kLaneIndex, W) < V(float(count)), v, V(-inf));
    }
    vmax = m_select(v > vmax, v, vmax);
  }
  return lane_max(vmax);
}

// The row's logsumexp, m + log(sum exp(x - m)) for its max m, in double: an
// infinite max gives inf - inf = NaN, as stock's log_softmax does.
template <typename P, typename T>
double row_lse(const T* row, int64_t classes) {
  using V = typename P::V;
  using S = typename P::Scalar;
  constexpr int64_t W = P::kWidth;
  const S m = row_max<P>(row, classes);
  V vsum(S(0));
  for (int64_t c0 = 0; c0 < classes; c0 += W) {
    const int64_t count = std::min(W, classes - c0);
    V e = m_exp(P::load(row + c0, count) - V(m));
    if constexpr (W > 1) {
      if (count < W) e = m_select(V::load(kLaneIndex, W) < V(float(count)), e, V(0.0f));
    }
    vsum = vsum + e;
  }
  return static_cast<double>(m) + std::log(static_cast<double>(lane_sum(vsum)));
}

// The row's gradient g (softmax - onehot(t)) into out. softmax is
// exp((x - m) - (lse - m)), m the row's max again: x - m is exact near the
// max and lse - m small, so the softmax near 1 keeps float's accuracy (an
// ulp of lse itself would cost it several).
template <typename P, typename T>
void row_grad(const T* row, int64_t classes, double lse, int64_t t, typename P::Scalar g,
              T* out) {
  using V = typename P::V;
  using S = typename P::Scalar;
  constexpr int64_t W = P::kWidth;
  const S m = row_max<P>(row, classes);
  const S log_sum = static_cast<S>(lse - static_cast<double>(m));
  for (int64_t c0 = 0; c0 < classes; c0 += W) {
    const int64_t count = std::min(W, classes - c0);
    V p = m_exp((P::load(row + c0, count) - V(m)) - V(log_sum));
    if (t >= c0 && t < c0 + count) {
      if constexpr (W > 1) {
        const V lane = V::load(kLaneIndex, W);
        const S at = static_cast<S>(t - c0);
        p = m_select(lane < V(at), p, m_select(lane < V(at + 1), p - V(S(1)), p));
      } else {
        p = p - S(1);
      }
    }
    P::store(out + c0, p * V(g), count);
  }
}

void cross_entropy_cpu(OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_args(c);
  const at::Tensor logits = c.tensor("logits").contiguous();
  const at::Tensor target = c.tensor("target").contiguous();
  const int64_t classes = logits.size(-1), rows = target.numel();
  TORCH_CHECK_VALUE(classes >= 1, c.op(), ": logits must have at least one class, got shape ",
                    logits.sizes());
  const int64_t* t = target.const_data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    if ((t[r] < 0 || t[r] >= classes) && t[r] != args.ignore_index) {
      bad_target(c.op(), r, t[r], classes, args.ignore_index);
    }
  }
  at::Tensor lse = new_output(target.sizes(), logits.options().dtype(at::kDouble));
  at::Tensor loss = new_output(
      C10_AS_INTARRAYREF_SLOW(cross_entropy_loss_sizes(target, args.reduction)), logits.options());
  MLPB_DISPATCH_CPU(logits.scalar_type(), "cross_entropy_cpu", [&] {
    using T = scalar_t;
    const T* x = logits.const_data_ptr<T>();
    double* lsep = lse.mutable_data_ptr<double>();
    // Each row's loss (0 where ignored), before the reduction.
    std::vector<double> row_loss(rows);
    at::parallel_for(0, rows, rows_per_chunk(classes), [&](int64_t r0, int64_t r1) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<T, decltype(lanes)>;
        for (int64_t r = r0; r < r1; ++r) {
          const T* row = x + r * classes;
          lsep[r] = row_lse<P>(row, classes);
          row_loss[r] = t[r] == args.ignore_index ? 0.0 : lsep[r] - static_cast<double>(row[t[r]]);
        }
      });
    });
    T* out = loss.mutable_data_ptr<T>();
    if (args.reduction == Reduction::None) {
      for (int64_t r = 0; r < rows; ++r) out[r] = static_cast<T>(row_loss[r]);
      return;
    }
    double sum = 0;
    int64_t kept = 0;
    for (int64_t r = 0; r < rows; ++r) {
      sum += row_loss[r];
      kept += t[r] != args.ignore_index;
    }
    // The mean over no rows is 0 / 0 = NaN, as stock's.
    out[0] = static_cast<T>(args.reduction == Reduction::Mean ? sum / static_cast<double>(kept) : sum);
  });
  c.returns(std::move(loss), std::move(lse));
}

void cross_entropy_backward_cpu(OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_backward_args(c);
  const at::Tensor logits = c.tensor("logits").contiguous();
  const at::Tensor target = c.tensor("target").contiguous();
  const at::Tensor lse = c.tensor("lse").contiguous();
  const at::Tensor grad_loss = c.tensor("grad_loss").contiguous();
  const int64_t classes = logits.size(-1), rows = target.numel();
  at::Tensor grad = new_output(logits.sizes(), logits.options());
  MLPB_DISPATCH_CPU(logits.scalar_type(), "cross_entropy_backward_cpu", [&] {
    using T = scalar_t;
    using S = at::opmath_type<T>;
    const T* x = logits.const_data_ptr<T>();
    const int64_t* t = target.const_data_ptr<int64_t>();
    const double* lsep = lse.const_data_ptr<double>();
    const T* gl = grad_loss.const_data_ptr<T>();
    T* out = grad.mutable_data_ptr<T>();
    S scale = 1;  // the mean's 1 / (rows kept)
    if (args.reduction == Reduction::Mean) {
      int64_t kept = 0;
      for (int64_t r = 0; r < rows; ++r) kept += t[r] != args.ignore_index;
      scale = S(1) / static_cast<S>(kept);
    }
    at::parallel_for(0, rows, rows_per_chunk(classes), [&](int64_t r0, int64_t r1) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<T, decltype(lanes)>;
        for (int64_t r = r0; r < r1; ++r) {
          T* grow = out + r * classes;
          if (t[r] == args.ignore_index) {
            std::fill(grow, grow + classes, T(0));
            continue;
          }
          const S g = static_cast<S>(gl[args.reduction == Reduction::None ? r : 0]) * scale;
          row_grad<P>(x + r * classes, classes, lsep[r], t[r], g, grow);
        }
      });
    });
  });
  c.returns(std::move(grad));
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("cross_entropy", boxed<&cross_entropy_cpu>());
  m.impl("cross_entropy_backward", boxed<&cross_entropy_backward_cpu>());
}

}  // namespace mlpbench::cpu
