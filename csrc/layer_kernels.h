// One Linear+activation layer: its shape rule, its checked call as the
// kernels see it, and each backend's layer kernels. The registered
// linear_act ops run them (linear_act_op below), and so does the whole-MLP
// op (mlp.cpp), layer after layer, without the dispatcher between.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "checks.h"
#include "kernel_common.h"
#include "op_args.h"
#include "op_call.h"

namespace mlpbench {

// What linear_act returns besides y, for backward: the pre-activation (x's
// dtype) where the derivative reads the input, the winning piece (uint8) for
// maxout, and an empty tensor otherwise.
enum class Aux : int8_t { None, Pre, Argmax };
inline Aux aux_of(const ActSpec& spec) {
  switch (act_info(spec.act).saves) {
    case Saves::Input: return Aux::Pre;
    case Saves::Argmax: return Aux::Argmax;
    default: return Aux::None;
  }
}

inline at::ScalarType aux_dtype(const ActSpec& spec, at::ScalarType x_dtype) {
  return aux_of(spec) == Aux::Argmax ? at::kByte : x_dtype;
}

// The output-shape rule of linear_act, written once for the real kernels
// (Int = int64_t) and the meta kernels (Int = c10::SymInt, symbolic shapes):
// y is x's leading dimensions then out_rows / pieces; aux is (n, out_cols),
// n the product of x's leading dimensions, or (0,) when there is none.
template <typename Int>
struct LinearActShapes {
  Int n, out_cols;
  std::vector<Int> y, aux;
};

template <typename Int>
LinearActShapes<Int> linear_act_shapes(c10::ArrayRef<Int> x_sizes, const Int& out_rows,
                                       const ActSpec& spec) {
  LinearActShapes<Int> s{Int(1), out_rows / spec.pieces, {}, {}};
  for (size_t d = 0; d + 1 < x_sizes.size(); ++d) s.n = s.n * x_sizes[d];
  s.y = std::vector<Int>(x_sizes.begin(), x_sizes.end());
  s.y.back() = s.out_cols;
  s.aux = aux_of(spec) == Aux::None ? std::vector<Int>{Int(0)} : std::vector<Int>{s.n, s.out_cols};
  return s;
}

// x (..., in) as a 2-D (rows, in) matrix; works when in == 0 too. (x itself
// when 2-D: a view costs a dispatcher call, a fair share of a small layer's.)
inline at::Tensor as_rows(const at::Tensor& x) {
  if (x.dim() == 2) return x;
  const auto sizes = x.sizes();
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < sizes.size(); ++d) rows *= sizes[d];
  return x.reshape({rows, sizes.back()});
}

// A layer's call as every backend's kernels need it, its tensors checked.
struct LinearActCall {
  LinearActArgs args;
  const ActSpec& spec() const { return args.spec; }
  DropoutMask mask;
  int64_t n = 0;         // rows of x once its leading dimensions are flattened
  int64_t out_rows = 0;  // rows of weight
  int64_t out_cols = 0;  // features of y (out_rows / pieces)
  at::Tensor x2;         // x as (n, in_features), a view where possible
  std::vector<int64_t> y_sizes;  // x's leading dimensions, then out_cols
  // Backward only: grad_y is the caller's scratch (the whole-MLP op's own
  // input gradient of the layer above), so a kernel may write grad_pre over
  // it instead of into a new buffer. Never set for a grad_y the user holds.
  bool grad_y_is_scratch = false;
  // Forward only: the caller has proved every pre-activation finite (a bound
  // on the layer's input and weights), so the product may apply the ReLU
  // itself, which would turn a NaN into 0 (LayerKernels::finite_pre_layers).
  bool finite_pre = false;

  bool dropout() const { return args.dropout(); }
  bool saves_pre() const { return aux_of(args.spec) == Aux::Pre; }
  // A tensor of y's shape (grad_y, saved) as a contiguous (n, out_cols) matrix.
  at::Tensor as_y_rows(const at::Tensor& t) const {
    return t.dim() == 2 && t.is_contiguous() ? t : t.reshape({n, out_cols}).contiguous();
  }
  // A (n, cols) result in the shape of x's leading dimensions then `cols`
  // (y: y_sizes; grad_x: x's sizes).
  static at::Tensor shaped(const at::Tensor& rows, at::IntArrayRef sizes) {
    return sizes.size() == 2 ? rows : rows.view(sizes);
  }
};

// The call of a layer whose x, weight (and seed) are already checked.
LinearActCall layer_call(const at::Tensor& x, const at::Tensor& weight, const LinearActArgs& args,
                         const std::optional<at::Tensor>& seed);

// What backward reads besides grad_y (the activation's row: y, the
// pre-activation or maxout's argmax): on x's device, of the dtype it saves.
void check_saved(const char* op, const std::string& name, const at::Tensor& saved,
                 const ActSpec& spec, const at::Tensor& x);

// A backward's grad_y (y's shape, x's dtype and device; unchecked when
// null) and saved (what the activation's row says backward reads: y or aux,
// on x's device). `layer` prefixes the messages; g and s name the arguments.
void check_layer_grads(const char* op, const std::string& layer, const LinearActCall& call,
                       const at::Tensor& x, const at::Tensor* grad_y, const std::string& g,
                       const at::Tensor& saved, const std::string& s);

// a @ b as a backend runs its products: aten_mm, or the CPU's choice of
// library (cpu/products_cpu.h).
using Product = at::Tensor (*)(const at::Tensor& a, const at::Tensor& b);
at::Tensor aten_mm(const at::Tensor& a, const at::Tensor& b);

// The end of every backward: grad_x = grad_pre @ W and grad_W = grad_pre^T @ x
// where requested (output_mask), empty tensors otherwise.
std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask, Product mm);

// (y, aux) of linear_act.
using LayerForward = std::tuple<at::Tensor, at::Tensor>(const LinearActCall& call,
                                                        const at::Tensor& x,
                                                        const at::Tensor& weight,
                                                        const std::optional<at::Tensor>& bias);

// (grad_x, grad_weight, grad_bias) of linear_act, each where output_mask asks,
// else empty; saved is what its autograd keeps (Aux).
using LayerBackward = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const LinearActCall& call, const at::Tensor& grad_y, const at::Tensor& x,
    const at::Tensor& weight, const at::Tensor& saved, std::array<bool, 3> output_mask);

// How many of a chain of layers (ReLU without dropout, each taking the
// previous one's output) have provably finite pre-activations for input x,
// where proving it pays; 0 where it does not (LinearActCall::finite_pre).
using FinitePreLayers = size_t(const at::Tensor& x, at::TensorList weights,
                               at::TensorList biases);

struct LayerKernels {
  LayerForward* forward;
  LayerBackward* backward;
  FinitePreLayers* finite_pre_layers = nullptr;  // none: never proved
};

// The registered linear_act and linear_act_backward kernels of a backend:
// the arguments parsed and checked, then the backend's layer kernel.
LinearActCall linear_act_op_call(const OpCall& call, bool backward);

template <LayerForward* kForward>
void linear_act_op(OpCall& c) {
  const LinearActCall call = linear_act_op_call(c, false);
  auto [y, aux] = kForward(call, c.tensor("x"), c.tensor("weight"), c.optional_tensor("bias"));
  c.returns(std::move(y), std::move(aux));
}

template <LayerBackward* kBackward>
void linear_act_backward_op(OpCall& c) {
  const LinearActCall call = linear_act_op_call(c, true);
  auto [gx, gw, gb] = kBackward(call, c.tensor("grad_y"), c.tensor("x"), c.tensor("weight"),
                                c.tensor("saved"), c.flags<3>("output_mask"));
  c.returns(std::move(gx), std::move(gw), std::move(gb));
}

namespace cpu {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
FinitePreLayers finite_pre_layers;  // relu_bound_cpu.cpp
}  // namespace cpu

namespace cuda {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
}  // namespace cuda

}  // namespace mlpbench
