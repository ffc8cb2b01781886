// A whole training step of a whole-MLP model on the CPU, for
// nn.cross_entropy_backward(..., optimizer=<fused Adam or AdamW>) through
// ops.mlp_adam_step: the mlp op's forward, cross-entropy and its gradient,
// then mlp_backward with each
// layer's Adam update made as soon as that layer's gradients exist, while
// they and the layer's weights are in cache. The update is ATen's own fused
// Adam kernel (torch.optim.Adam(fused=True)'s), on the optimizer's own state
// tensors, so parameters and state come out bit for bit as optimizer.step()
// leaves them; the layers' order does not matter to an elementwise update.
#include "mlp_adam_step.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/ones_like.h>

#include "checks.h"
#include "mlp.h"
#include "op_call.h"

namespace mlpbench {

MlpStepResult mlp_adam_step(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                            const std::vector<at::Tensor>& biases,
                            const std::vector<at::Tensor>& params, const std::string& activation,
                            const std::string& output_activation, double dropout_p,
                            const at::Tensor& target, int64_t ignore_index,
                            const std::string& reduction, bool float_scores,
                            const AdamState& adam) {
  const char* op = "mlp_adam_step";
  static const c10::OperatorHandle mlp = find_op("mlpbench::mlp"),
                                   ce = find_op("mlpbench::cross_entropy"),
                                   ce_backward = find_op("mlpbench::cross_entropy_backward"),
                                   draw_seed = find_op("mlpbench::draw_seed");
  const size_t layers = weights.size();
  const size_t count = layers + biases.size();
  TORCH_CHECK_VALUE(params.size() == count && adam.exp_avgs.size() == count &&
                        adam.exp_avg_sqs.size() == count && adam.steps.size() == count &&
                        adam.max_exp_avg_sqs.size() == (adam.amsgrad ? count : 0),
                    op, ": params and the optimizer state must hold one tensor per parameter");
  at::NoGradGuard no_grad;
  std::optional<at::Tensor> seed;
  if (dropout_p > 0.0) {
    torch::jit::Stack s{c10::IValue()};
    draw_seed.callBoxed(s);
    seed = s[0].toTensor();
  }
  torch::jit::Stack f{x, weights, biases, activation, output_activation, dropout_p, seed,
                      int64_t{0}};
  mlp.callBoxed(f);
  const at::Tensor logits = f[0].toTensor();
  const bool upcast = float_scores && logits.scalar_type() != at::kDouble;
  const at::Tensor scores = upcast ? logits.to(at::kFloat) : logits;
  torch::jit::Stack l{scores, target, ignore_index, reduction};
  ce.callBoxed(l);
  const at::Tensor loss = l[0].toTensor();
  torch::jit::Stack g{at::ones_like(loss), scores, target, l[1], ignore_index, reduction};
  ce_backward.callBoxed(g);
  const at::Tensor grad_logits =
      upcast ? g[0].toTensor().to(logits.scalar_type()) : g[0].toTensor();

  MlpArgs args;
  args.hidden.spec = parse_activation(op, "activation", activation);
  args.hidden.dropout_p = dropout_p;
  args.output = parse_activation(op, "output_activation", output_activation);
  check_differentiable(op, args.hidden.spec);
  check_differentiable(op, args.output);
  const bool has_bias = !biases.empty();

  // Layer l's parameters are weights[l] and biases[l]: entries l and
  // layers + l of the state lists.
  std::vector<at::Tensor> grad_weights(layers), grad_biases(biases.size());
  auto update = [&](size_t layer, const at::Tensor& gw, const at::Tensor& gb) {
    std::vector<size_t> entries{layer};
    if (has_bias) entries.push_back(layers + layer);
    std::vector<at::Tensor> p, grads, m1, m2, vmax, steps;
    for (size_t i : entries) {
      p.push_back(params[i]);
      at::Tensor& grad = i < layers ? grad_weights[i] : grad_biases[i - layers];
      grad = (i < layers ? gw : gb).to(params[i].scalar_type());  // a no-op outside autocast
      grads.push_back(grad);
      m1.push_back(adam.exp_avgs[i]);
      m2.push_back(adam.exp_avg_sqs[i]);
      if (adam.amsgrad) vmax.push_back(adam.max_exp_avg_sqs[i]);
      steps.push_back(adam.steps[i]);
    }
    at::_foreach_add_(steps, 1);
    if (adam.decoupled) {
      at::_fused_adamw_(p, grads, m1, m2, vmax, steps, adam.lr, adam.beta1, adam.beta2,
                        adam.weight_decay, adam.eps, adam.amsgrad, adam.maximize, std::nullopt,
                        std::nullopt);
    } else {
      at::_fused_adam_(p, grads, m1, m2, vmax, steps, adam.lr, adam.beta1, adam.beta2,
                       adam.weight_decay, adam.eps, adam.amsgrad, adam.maximize, std::nullopt,
                       std::nullopt);
    }
  };
  mlp_backward(kCpuKernels, grad_logits, x, weights, logits, f[1].toTensorVector(),
               f[2].toTensorVector(), has_bias, args, seed, /*x_grad=*/false, update);
  return {loss, logits, std::move(grad_weights), std::move(grad_biases)};
}

}  // namespace mlpbench
