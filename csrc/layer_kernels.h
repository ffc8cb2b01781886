// The kernels of one Linear+activation layer on parsed arguments, per
// backend: the registered linear_act ops run them, and so does the whole-MLP
// op (mlp.cpp), layer after layer, without the dispatcher between.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

#include "op_args.h"

namespace mlpbench {

// (y, aux) of linear_act.
using LayerForward = std::tuple<at::Tensor, at::Tensor>(const LinearActCall& call,
                                                        const at::Tensor& x,
                                                        const at::Tensor& weight,
                                                        const std::optional<at::Tensor>& bias);

// (grad_x, grad_weight, grad_bias) of linear_act, each where output_mask asks,
// else empty; saved is what its autograd keeps (op_args.h: Aux).
using LayerBackward = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const LinearActCall& call, const at::Tensor& grad_y, const at::Tensor& x,
    const at::Tensor& weight, const at::Tensor& saved, std::array<bool, 3> output_mask);

struct LayerKernels {
  LayerForward* forward;
  LayerBackward* backward;
};

namespace cpu {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
}  // namespace cpu

namespace cuda {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
}  // namespace cuda

}  // namespace mlpbench
