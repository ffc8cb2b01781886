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

// The registered linear_act and linear_act_backward kernels of a backend:
// the schema's arguments, parsed, then the backend's layer kernel.
template <LayerForward* kForward>
std::tuple<at::Tensor, at::Tensor> linear_act_op(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset) {
  return kForward(linear_act_call(false, x, weight, bias, activation, negative_slope, alpha,
                                  approximate, pieces, dropout_p, seed, offset),
                  x, weight, bias);
}

template <LayerBackward* kBackward>
std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_op(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& saved, c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset, std::array<bool, 3> output_mask) {
  return kBackward(linear_act_call(true, x, weight, std::nullopt, activation, negative_slope,
                                   alpha, approximate, pieces, dropout_p, seed, offset),
                   grad_y, x, weight, saved, output_mask);
}

namespace cpu {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
}  // namespace cpu

namespace cuda {
LayerForward linear_act_forward;
LayerBackward linear_act_backward;
}  // namespace cuda

}  // namespace mlpbench
