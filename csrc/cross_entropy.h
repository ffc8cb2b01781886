// Cross-entropy over class indices, the loss of the lecture's networks:
// loss_i = logsumexp(logits_i) - logits_i[target_i], rows whose target is
// ignore_index left out, reduced by mean (over the rows kept), sum or none,
// as torch.nn.functional.cross_entropy computes it (no class weights, no
// label smoothing). The forward also returns each row's logsumexp (lse), in
// float64 (the backward's softmax near 1 needs more than float's), which the
// backward reads:
// grad_logits_i = g_i (softmax(logits_i) - onehot(target_i)).
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace mlpbench {

class OpCall;

enum class Reduction : int8_t { None, Mean, Sum };

struct CrossEntropyArgs {
  Reduction reduction;
  int64_t ignore_index;
};

// The arguments of cross_entropy, checked as every backend and the meta
// kernel check them: logits (N, C) or (C,), of a float dtype; target of the
// leading shape ((N,) or ()), int64, on logits' device; reduction "mean",
// "sum" or "none". cross_entropy_backward's also checks grad_loss (logits'
// dtype, the loss's shape) and lse.
CrossEntropyArgs checked_cross_entropy_args(const OpCall& c);
CrossEntropyArgs checked_cross_entropy_backward_args(const OpCall& c);

// The loss's shape: the target's for reduction none, else a scalar.
c10::SymIntArrayRef cross_entropy_loss_sizes(const at::Tensor& target, Reduction reduction);

// The error for a target value outside [0, C) that is not ignore_index: an
// IndexError naming the row, as stock's names the value.
[[noreturn]] void bad_target(const char* op, int64_t row, int64_t value, int64_t classes,
                             int64_t ignore_index);

// (loss, lse) through ATen's own ops: autograd differentiates the loss in
// every mode (forward-mode AD, double backward, torch.func), so autograd.cpp
// uses it where the kernels have no derivative. lse is not differentiable.
std::pair<at::Tensor, at::Tensor> cross_entropy_composite(const at::Tensor& logits,
                                                          const at::Tensor& target,
                                                          const CrossEntropyArgs& args);

}  // namespace mlpbench
