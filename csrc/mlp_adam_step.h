// A whole-MLP training step with Adam inside the backward (mlp_adam_step.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace mlpbench {

// Adam's hyperparameters and state, one tensor per parameter in the order
// weights..., biases... (max_exp_avg_sqs empty without amsgrad); decoupled:
// AdamW's weight decay.
struct AdamState {
  std::vector<at::Tensor> exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
  double lr, beta1, beta2, weight_decay, eps;
  bool amsgrad, maximize, decoupled;
};

struct MlpStepResult {
  at::Tensor loss, logits;
  std::vector<at::Tensor> grad_weights, grad_biases;
};

// Forward, cross-entropy, backward and the Adam update of every layer, for
// CPU tensors; a seed drawn as ops.draw_seed draws it when dropout_p > 0 (0:
// no dropout, as in eval mode). x, weights and biases are what the layers
// compute with; params (weights..., biases...) what Adam updates: the same
// tensors, or under autocast the float32 parameters of bfloat16 copies,
// whose gradients are then widened to the parameters' dtype (the returned
// gradients are those). float_scores: the loss from float32 logits, as
// cross-entropy's autocast kernel computes it.
MlpStepResult mlp_adam_step(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                            const std::vector<at::Tensor>& biases,
                            const std::vector<at::Tensor>& params, const std::string& activation,
                            const std::string& output_activation, double dropout_p,
                            const at::Tensor& target, int64_t ignore_index,
                            const std::string& reduction, bool float_scores,
                            const AdamState& adam);

}  // namespace mlpbench
