// The ops written as ATen compositions, with the kernels' formulas (the
// activation functors through TExpr) and conventions (maxout's ties go to the
// first piece, ReLU'(0) = 0, dropout's mask and scaling): differentiable by
// autograd in every mode. autograd.cpp uses them where the kernels have no
// derivative: forward-mode AD, and backward with create_graph (double
// backward). They are not fast, and need not be.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <utility>

#include "mlp.h"

namespace mlpbench {

// (y, aux) of linear_act, aux as the kernels return it (not differentiable).
std::pair<at::Tensor, at::Tensor> linear_act_composite(const at::Tensor& x, const at::Tensor& weight,
                                                       const std::optional<at::Tensor>& bias,
                                                       const LinearActArgs& args,
                                                       const std::optional<at::Tensor>& seed);

at::Tensor activation_composite(const at::Tensor& x, const ActSpec& spec);

// act'(saved), saved the forward's output or input as the activation's row says.
at::Tensor derivative_composite(const at::Tensor& saved, const ActSpec& spec);

// (y, hidden, aux) of mlp: linear_act_composite layer after layer (hidden and
// aux not differentiable, as the kernels return them).
MlpOutputs mlp_composite(const at::Tensor& x, at::TensorList weights, at::TensorList biases,
                         const MlpArgs& args, const std::optional<at::Tensor>& seed);

at::Tensor dropout_composite(const at::Tensor& x, double p, const std::optional<at::Tensor>& seed,
                             int64_t offset);

}  // namespace mlpbench
