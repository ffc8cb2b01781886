// Argument parsing and validation shared by every backend of every op, so that
// the CPU and CUDA kernels reject bad input with the same message. Errors use
// TORCH_CHECK_VALUE / TORCH_CHECK_TYPE, which Python sees as ValueError /
// TypeError.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <array>
#include <optional>
#include <utility>
#include <vector>
#include <string>

#include "activations.h"
#include "philox.h"

namespace mlpbench {

struct ActSpec {
  Act act = Act::Relu;
  ActParams params;
  int64_t pieces = 1;  // rows of weight per output unit (maxout only; else 1)
};

ActSpec parse_activation(const char* op, c10::string_view name, double negative_slope,
                         double alpha, c10::string_view approximate, int64_t pieces);

// x (..., in), weight (out_rows, in), bias (out_rows) or none.
void check_linear_act_inputs(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec);

// Numbers and shapes for error messages, formatted with snprintf rather than
// std::ostream: on the GPU machine's toolchain, formatting a number through
// std::ostream inside this extension crashed the process while an error was
// being raised (strings were fine), so messages carry numbers as text.
std::string text(int64_t v);
std::string text(double v);
std::string text(at::IntArrayRef sizes);

// An activation for the elementwise ops: any but maxout.
ActSpec parse_elementwise(const char* op, c10::string_view name, double negative_slope,
                          double alpha, c10::string_view approximate);

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

// p in [0, 1]; seed and offset are 64-bit patterns carried in int64.
DropoutMask parse_dropout(const char* op, double p, int64_t seed, int64_t offset);

// The checked arguments of a linear_act or linear_act_backward call, as every
// backend's kernels need them.
struct LinearActCall {
  ActSpec spec;
  DropoutMask mask;
  bool dropout = false;  // p > 0: apply the mask
  int64_t n = 0;         // rows of x once its leading dimensions are flattened
  int64_t out_rows = 0;  // rows of weight
  int64_t out_cols = 0;  // features of y (out_rows / pieces)
  at::Tensor x2;         // x as (n, in_features), a view where possible
  std::vector<int64_t> y_sizes;  // x's leading dimensions, then out_cols

  bool saves_pre() const {
    return spec.act == Act::Gelu || spec.act == Act::GeluTanh || spec.act == Act::Silu;
  }
  // A tensor of y's shape (grad_y, saved) as a contiguous (n, out_cols) matrix.
  at::Tensor as_y_rows(const at::Tensor& t) const { return t.reshape({n, out_cols}).contiguous(); }
};

// Parses and checks; for linear_act_backward (backward = true) also refuses step.
LinearActCall linear_act_call(bool backward, const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::string_view activation,
                              double negative_slope, double alpha, c10::string_view approximate,
                              int64_t pieces, double dropout_p, int64_t seed, int64_t offset);

// The end of every backward: grad_x = grad_pre @ W and grad_W = grad_pre^T @ x
// where requested (output_mask), empty tensors otherwise.
std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask);

// Calls f(functor) with the elementwise functor of `spec` for scalar type T.
// Maxout is not elementwise: its "activation" after the max is the identity.
template <typename T, typename F>
void with_activation(const ActSpec& spec, F&& f) {
  switch (spec.act) {
    case Act::Identity:
    case Act::Maxout: f(Identity<T>{}); return;
    case Act::Sigmoid: f(Sigmoid<T>{}); return;
    case Act::Tanh: f(Tanh<T>{}); return;
    case Act::Relu: f(Relu<T>{}); return;
    case Act::LeakyRelu: f(LeakyRelu<T>{static_cast<T>(spec.params.negative_slope)}); return;
    case Act::Elu: f(Elu<T>{static_cast<T>(spec.params.alpha)}); return;
    case Act::Gelu: f(Gelu<T>{}); return;
    case Act::GeluTanh: f(GeluTanh<T>{}); return;
    case Act::Silu: f(Silu<T>{}); return;
    case Act::Step: f(Step<T>{}); return;
  }
}

// Allocates a kernel's output. With the debug switch on (tests), the memory
// is first filled with NaN (0xFF bytes for integers), so that an element a
// kernel forgets to write shows up instead of passing as stale memory.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
void set_debug_poison(bool enabled);
bool debug_poison();

// Backward through step is refused, as torch.heaviside's is.
void check_differentiable(const char* op, const ActSpec& spec);

}  // namespace mlpbench
