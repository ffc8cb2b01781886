// TExpr: a tensor (or a plain number) that the activation functors of
// activations.h compute with through ATen ops, so that their forward and
// derivative become autograd graphs: what autograd.cpp uses for forward-mode
// AD and for double backward, with the same formulas as the kernels.
//
// A number stays a number (T(1) in a functor) until it meets a tensor, so it
// never promotes the tensor's dtype; a comparison remembers the dtype and
// device its select must produce.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <utility>

namespace mlpbench {

struct TExpr {
  at::Tensor t;  // defined, or the expression is the number s
  double s = 0.0;

  TExpr() = default;                                   // T pdf; in a functor
  TExpr(at::Tensor tensor) : t(std::move(tensor)) {}  // NOLINT: functors take tensors
  TExpr(double v) : s(v) {}                            // NOLINT: T(1) in a functor
  bool is_tensor() const { return t.defined(); }
};

struct TMask {
  at::Tensor cond;
  at::TensorOptions options;  // of the selected values
};

#define MLPB_TEXPR_OP(op)                                                      \
  inline TExpr operator op(const TExpr& a, const TExpr& b) {                   \
    if (a.is_tensor() && b.is_tensor()) return TExpr(a.t op b.t);              \
    if (a.is_tensor()) return TExpr(a.t op b.s);                               \
    if (b.is_tensor()) return TExpr(at::Scalar(a.s) op b.t);                   \
    return TExpr(a.s op b.s);                                                  \
  }
MLPB_TEXPR_OP(+)
MLPB_TEXPR_OP(-)
MLPB_TEXPR_OP(*)
MLPB_TEXPR_OP(/)
#undef MLPB_TEXPR_OP
inline TExpr operator-(const TExpr& a) { return a.is_tensor() ? TExpr(-a.t) : TExpr(-a.s); }

// Comparisons with a number on either side (the functors compare x with 0).
inline TMask compare(const TExpr& a, const TExpr& b, at::Tensor (*op)(const at::Tensor&, const at::Scalar&),
                     at::Tensor (*reversed)(const at::Tensor&, const at::Scalar&)) {
  TORCH_INTERNAL_ASSERT(a.is_tensor() != b.is_tensor(), "TExpr compares a tensor with a number");
  return a.is_tensor() ? TMask{op(a.t, b.s), a.t.options()} : TMask{reversed(b.t, a.s), b.t.options()};
}
inline TMask operator>(const TExpr& a, const TExpr& b) { return compare(a, b, at::gt, at::lt); }
inline TMask operator<(const TExpr& a, const TExpr& b) { return compare(a, b, at::lt, at::gt); }
inline TMask operator<=(const TExpr& a, const TExpr& b) { return compare(a, b, at::le, at::ge); }

inline TExpr m_select(const TMask& c, const TExpr& a, const TExpr& b) {
  if (a.is_tensor() && b.is_tensor()) return TExpr(at::where(c.cond, a.t, b.t));
  if (a.is_tensor()) return TExpr(at::where(c.cond, a.t, b.s));
  if (b.is_tensor()) return TExpr(at::where(c.cond, a.s, b.t));
  return TExpr(at::where(c.cond, at::scalar_tensor(a.s, c.options), at::scalar_tensor(b.s, c.options)));
}

inline TExpr m_exp(const TExpr& x) { return TExpr(at::exp(x.t)); }
inline TExpr m_expm1_neg(const TExpr& x) { return TExpr(at::expm1(at::clamp_max(x.t, 0))); }
inline TExpr m_tanh(const TExpr& x) { return TExpr(at::tanh(x.t)); }
inline TExpr m_recip(const TExpr& x) { return TExpr(at::reciprocal(x.t)); }
inline TExpr m_div(const TExpr& a, const TExpr& b) { return TExpr(at::div(a.t, b.t)); }
inline TExpr m_normcdf(const TExpr& x) {
  return TExpr(at::erfc(x.t * -0.70710678118654752440) * 0.5);
}

}  // namespace mlpbench
