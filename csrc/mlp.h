// The whole MLP as one op: layers of Linear + activation (+ dropout after
// each hidden layer), run with the layer kernels of layer_kernels.h one after
// another, under one autograd node. Layer l's dropout mask is that of
// linear_act with (seed, offset + l): the per-layer path, given one seed and
// offsets 0, 1, ..., draws the same masks.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <tuple>
#include <vector>

#include "layer_kernels.h"
#include "op_args.h"

namespace mlpbench {

// The list lengths, shapes, dtypes and devices, each error naming the layer.
void check_mlp_inputs(const char* op, const at::Tensor& x, at::TensorList weights,
                      at::TensorList biases, const MlpArgs& args);

// What mlp_backward reads besides x and the weights: the list lengths, and
// each tensor's device and dtype, each error naming the argument (the shapes
// are mlp_backward's to check).
void check_mlp_backward_inputs(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                               at::TensorList weights, const at::Tensor& y,
                               at::TensorList hidden, at::TensorList aux, const MlpArgs& args);

// (y, hidden outputs (one per layer but the last), aux (one per layer)).
using MlpOutputs = std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;
// (grad_x or empty, grad_weights, grad_biases or none).
using MlpGrads = std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

// The layers' kernels over checked inputs.
MlpOutputs mlp_forward(const LayerKernels& kernels, const at::Tensor& x,
                       at::TensorList weights, at::TensorList biases, const MlpArgs& args,
                       const std::optional<at::Tensor>& seed);

// Called with (layer, grad_weight, grad_bias or undefined) as soon as a
// layer's gradients exist, the last layer first (mlp_adam_step.cpp updates
// the layer's parameters there, while its gradients are in cache).
using LayerGradsDone = std::function<void(size_t, const at::Tensor&, const at::Tensor&)>;

MlpGrads mlp_backward(const LayerKernels& kernels, const at::Tensor& grad_y, const at::Tensor& x,
                      at::TensorList weights, const at::Tensor& y, at::TensorList hidden,
                      at::TensorList aux, bool has_bias, const MlpArgs& args,
                      const std::optional<at::Tensor>& seed, bool x_grad,
                      const LayerGradsDone& done = {});

// The CPU's layer kernels (mlp.cpp).
extern const LayerKernels kCpuKernels;

}  // namespace mlpbench
