// The tensor checks every backend's kernels and the meta kernels share, so
// that CPU, CUDA and meta reject bad input with the same message
// (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE: ValueError / TypeError in Python),
// each naming the argument; and the dtype policy with its dispatch macros.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>

#include <optional>
#include <string>

#include "activations.h"

namespace mlpbench {

class OpCall;

// The dtype policy: float32, float64 and bfloat16 on every device, float16
// on CUDA only (and under the meta kernels, which stand in for any device).
void check_float_tensor(const char* op, const char* arg, const at::Tensor& t);

// The kernels' dispatch over that policy, one macro per backend.
#define MLPB_DISPATCH_CPU(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, dtype, name, __VA_ARGS__)
#define MLPB_DISPATCH_CUDA(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

// Argument `arg` is on the device of `x` (another argument, named `ref`),
// and for check_like_x has its dtype too.
void check_on_device_of(const char* op, const std::string& arg, const at::Tensor& t,
                        const at::Tensor& x, const char* ref = "x");
void check_like_x(const char* op, const std::string& arg, const at::Tensor& t,
                  const at::Tensor& x, const char* ref = "x");

// Argument `arg` has the shape `want` (another argument's, named `of`).
void check_shape(const char* op, const std::string& arg, const at::Tensor& t,
                 c10::SymIntArrayRef want, const std::string& of);

// One layer's weight and bias against its input (`input`: "x" or
// "layer l", of `in_features` features; x's dtype and device): a 2-D weight
// of in_features columns and rows a multiple of the activation's pieces, a
// 1-D bias of one per row. `layer` prefixes the messages ("" for linear_act,
// "layer l: " for mlp); `w` and `b` name the arguments. Returns the layer's
// output features.
c10::SymInt check_layer(const char* op, const std::string& layer, const at::Tensor& x,
                        const std::string& input, const c10::SymInt& in_features,
                        const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        const ActSpec& spec, const std::string& w, const std::string& b);

// linear_act's x, weight and bias (x at least 1-D).
void check_linear_act_inputs(const char* op, const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec);

// The dropout seed: a one-element int64 tensor holding a 64-bit pattern,
// made by mlpbench::draw_seed or from the caller's int, on the CPU or on x's
// (CUDA) device (or meta, in the meta kernels); needed when p > 0 and unread
// otherwise.
void check_seed(const char* op, double p, const std::optional<at::Tensor>& seed,
                const at::Tensor& x);

// Backward through a non-differentiable activation (step) is refused, as
// torch.heaviside's is.
void check_differentiable(const char* op, const ActSpec& spec);

// The elementwise ops' arguments, parsed and checked as every backend and the
// meta kernels check them: activation's spec (x checked), activation_backward's
// spec (grad_y and saved checked), dropout's p (x and the seed checked).
ActSpec checked_activation_args(const OpCall& c);
ActSpec checked_activation_backward_args(const OpCall& c);
double checked_dropout_args(const OpCall& c);

}  // namespace mlpbench
