// Argument parsing and validation shared by every backend of every op (and
// the meta kernels), so that the CPU and CUDA kernels reject bad input with
// the same message. Errors use TORCH_CHECK_VALUE / TORCH_CHECK_TYPE, which
// Python sees as ValueError / TypeError.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/string_view.h>

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "activations.h"
#include "philox.h"

namespace mlpbench {

// An activation by name and parameters (any row of kActivations).
ActSpec parse_activation(const char* op, c10::string_view name, double negative_slope,
                         double alpha, c10::string_view approximate, int64_t pieces);

// An activation for the elementwise ops: any but maxout.
ActSpec parse_elementwise(const char* op, c10::string_view name, double negative_slope,
                          double alpha, c10::string_view approximate);

// The name and approximate= string that parse back to spec.act.
inline const char* approximate_of(const ActSpec& spec) {
  const char* approximate = act_info(spec.act).approximate;
  return approximate ? approximate : "none";
}

// Numbers and shapes for error messages, formatted with snprintf rather than
// std::ostream: on the GPU machine's toolchain, formatting a number through
// std::ostream inside this extension crashed the process while an error was
// being raised (strings were fine), so messages carry numbers as text.
std::string text(int64_t v);
std::string text(double v);
std::string text(const c10::SymInt& v);      // "?" where symbolic
std::string text(c10::SymIntArrayRef sizes);

// x (..., in) as a 2-D (rows, in) matrix; works when in == 0 too.
inline at::Tensor as_rows(const at::Tensor& x) {
  const auto sizes = x.sizes();
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < sizes.size(); ++d) rows *= sizes[d];
  return x.reshape({rows, sizes.back()});
}

void check_float_tensor(const char* op, const char* arg, const at::Tensor& t);

// `saved` must match grad_y's shape, dtype and device.
void check_like_grad(const char* op, const at::Tensor& grad_y, const at::Tensor& saved);

// p in [0, 1].
void check_probability(const char* op, double p);

// The dropout seed: a one-element int64 tensor on the CPU (or meta, in the
// meta kernels) holding a 64-bit pattern, made by mlpbench::draw_seed or from
// the caller's int; needed when p > 0 and unread otherwise. seed_value reads
// a checked one.
void check_seed(const char* op, double p, const std::optional<at::Tensor>& seed);
uint64_t seed_value(const at::Tensor& seed);

// p checked, and the mask of (seed, offset) when p > 0.
DropoutMask parse_dropout(const char* op, double p, const std::optional<at::Tensor>& seed,
                          int64_t offset);

// linear_act's arguments after the tensors, parsed and checked once per call:
// the activation, its parameters and the dropout spec. Autograd keeps it for
// backward instead of the strings.
struct LinearActArgs {
  ActSpec spec;
  double dropout_p = 0.0;
  int64_t offset = 0;
  bool dropout() const { return dropout_p > 0.0; }
};

LinearActArgs parse_linear_act_args(const char* op, c10::string_view activation,
                                    double negative_slope, double alpha,
                                    c10::string_view approximate, int64_t pieces,
                                    double dropout_p, int64_t offset);

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

// The output-shape rule of linear_act, written once for the real kernels
// (Int = int64_t) and the meta kernel (Int = c10::SymInt, symbolic shapes):
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

inline at::ScalarType aux_dtype(const ActSpec& spec, at::ScalarType x_dtype) {
  return aux_of(spec) == Aux::Argmax ? at::kByte : x_dtype;
}

// x (..., in), weight (out_rows, in), bias (out_rows) or none.
void check_linear_act_inputs(const char* op, const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec);

// The checked arguments of a linear_act or linear_act_backward call, as every
// backend's kernels need them.
struct LinearActCall {
  LinearActArgs args;
  const ActSpec& spec() const { return args.spec; }
  DropoutMask mask;
  int64_t n = 0;         // rows of x once its leading dimensions are flattened
  int64_t out_rows = 0;  // rows of weight
  int64_t out_cols = 0;  // features of y (out_rows / pieces)
  at::Tensor x2;         // x as (n, in_features), a view where possible
  std::vector<int64_t> y_sizes;  // x's leading dimensions, then out_cols

  bool dropout() const { return args.dropout(); }
  bool saves_pre() const { return aux_of(args.spec) == Aux::Pre; }
  // A tensor of y's shape (grad_y, saved) as a contiguous (n, out_cols) matrix.
  at::Tensor as_y_rows(const at::Tensor& t) const { return t.reshape({n, out_cols}).contiguous(); }
};

// Checks the tensors of an op `op` against parsed arguments; for a backward
// also refuses a non-differentiable activation (step).
LinearActCall linear_act_call(const char* op, bool backward, const at::Tensor& x,
                              const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              const LinearActArgs& args, const std::optional<at::Tensor>& seed);

// Parses, then as above for linear_act or (backward = true) linear_act_backward.
LinearActCall linear_act_call(bool backward, const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::string_view activation,
                              double negative_slope, double alpha, c10::string_view approximate,
                              int64_t pieces, double dropout_p,
                              const std::optional<at::Tensor>& seed, int64_t offset);

// The end of every backward: grad_x = grad_pre @ W and grad_W = grad_pre^T @ x
// where requested (output_mask), empty tensors otherwise.
std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask);

// Allocates a kernel's output. With the debug switch on (tests), the memory
// is first filled with NaN (0xFF bytes for integers), so that an element a
// kernel forgets to write shows up instead of passing as stale memory.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
void set_debug_poison(bool enabled);
bool debug_poison();

// Backward through a non-differentiable activation (step) is refused, as
// torch.heaviside's is.
void check_differentiable(const char* op, const ActSpec& spec);

}  // namespace mlpbench
