// Meta kernels: the ops' output shapes and dtypes without computing anything,
// which torch.compile (fake tensors) and torch.library.opcheck trace with.
// Shapes are SymInts, so that traces with dynamic shapes work; linear_act's
// shape rule is the one its real kernels use (layer_kernels.h), and the
// checks are theirs (checks.h).
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "cross_entropy.h"
#include "mlp.h"

namespace mlpbench {
namespace {

at::Tensor empty_like_sizes(c10::SymIntArrayRef sizes, const at::Tensor& like) {
  return at::empty_symint(sizes, like.options());
}

void linear_act_meta(OpCall& c) {
  const LinearActArgs args = parse_linear_act_args(c);
  const at::Tensor& x = c.tensor("x");
  const at::Tensor& weight = c.tensor("weight");
  check_linear_act_inputs(c.op(), x, weight, c.optional_tensor("bias"), args.spec);
  check_seed(c.op(), args.dropout_p, c.optional_tensor("seed"), x);
  const auto shapes = linear_act_shapes<c10::SymInt>(x.sym_sizes(), weight.sym_size(0), args.spec);
  c.returns(at::empty_symint(shapes.y, x.options()),
            at::empty_symint(shapes.aux, x.options().dtype(aux_dtype(args.spec, x.scalar_type()))));
}

void linear_act_backward_meta(OpCall& c) {
  const LinearActArgs args = parse_linear_act_args(c);
  const at::Tensor& x = c.tensor("x");
  const at::Tensor& weight = c.tensor("weight");
  const at::Tensor& grad_y = c.tensor("grad_y");
  check_differentiable(c.op(), args.spec);
  check_linear_act_inputs(c.op(), x, weight, std::nullopt, args.spec);
  check_seed(c.op(), args.dropout_p, c.optional_tensor("seed"), x);
  check_like_x(c.op(), "grad_y", grad_y, x);
  check_shape(c.op(), "grad_y", grad_y,
              linear_act_shapes<c10::SymInt>(x.sym_sizes(), weight.sym_size(0), args.spec).y, "y");
  check_saved(c.op(), "saved", c.tensor("saved"), args.spec, x);
  const auto mask = c.flags<3>("output_mask");
  const at::Tensor none = at::empty({0}, x.options());
  c.returns(mask[0] ? empty_like_sizes(x.sym_sizes(), x) : none,
            mask[1] ? empty_like_sizes(weight.sym_sizes(), weight) : none,
            mask[2] ? at::empty_symint({weight.sym_size(0)}, weight.options()) : none);
}

void activation_meta(OpCall& c) {
  checked_activation_args(c);
  const at::Tensor& x = c.tensor("x");
  c.returns(empty_like_sizes(x.sym_sizes(), x));
}

void activation_backward_meta(OpCall& c) {
  checked_activation_backward_args(c);
  const at::Tensor& grad_y = c.tensor("grad_y");
  c.returns(empty_like_sizes(grad_y.sym_sizes(), grad_y));
}

void dropout_meta(OpCall& c) {
  checked_dropout_args(c);
  const at::Tensor& x = c.tensor("x");
  c.returns(empty_like_sizes(x.sym_sizes(), x));
}

void mlp_meta(OpCall& c) {
  const MlpArgs args = parse_mlp_args(c);
  const at::Tensor& x = c.tensor("x");
  const std::vector<at::Tensor> weights = c.tensors("weights");
  check_mlp_inputs(c.op(), x, weights, c.tensors("biases"), args);
  check_seed(c.op(), args.hidden.dropout_p, c.optional_tensor("seed"), x);
  std::vector<at::Tensor> hidden, aux;
  std::vector<c10::SymInt> sizes(x.sym_sizes().begin(), x.sym_sizes().end());
  for (size_t l = 0; l < weights.size(); ++l) {
    const ActSpec spec = args.layer(l, weights.size()).spec;
    const auto shapes = linear_act_shapes<c10::SymInt>(sizes, weights[l].sym_size(0), spec);
    aux.push_back(at::empty_symint(shapes.aux, x.options().dtype(aux_dtype(spec, x.scalar_type()))));
    sizes = shapes.y;
    if (l + 1 < weights.size()) hidden.push_back(at::empty_symint(sizes, x.options()));
  }
  c.returns(at::empty_symint(sizes, x.options()), std::move(hidden), std::move(aux));
}

void mlp_backward_meta(OpCall& c) {
  const MlpArgs args = parse_mlp_args(c);
  const at::Tensor& x = c.tensor("x");
  const std::vector<at::Tensor> weights = c.tensors("weights");
  check_differentiable(c.op(), args.hidden.spec);
  check_differentiable(c.op(), args.output);
  check_mlp_inputs(c.op(), x, weights, {}, args);
  check_seed(c.op(), args.hidden.dropout_p, c.optional_tensor("seed"), x);
  check_mlp_backward_inputs(c.op(), c.tensor("grad_y"), x, weights, c.tensor("y"),
                            c.tensors("hidden"), c.tensors("aux"), args);
  const bool has_bias = c.flag("has_bias");
  std::vector<at::Tensor> grad_weights, grad_biases;
  for (const at::Tensor& w : weights) {
    grad_weights.push_back(empty_like_sizes(w.sym_sizes(), w));
    if (has_bias) grad_biases.push_back(at::empty_symint({w.sym_size(0)}, w.options()));
  }
  c.returns(c.flag("x_grad") ? empty_like_sizes(x.sym_sizes(), x) : at::empty({0}, x.options()),
            std::move(grad_weights), std::move(grad_biases));
}

void cross_entropy_meta(OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_args(c);
  const at::Tensor& logits = c.tensor("logits");
  const at::Tensor& target = c.tensor("target");
  c.returns(at::empty_symint(cross_entropy_loss_sizes(target, args.reduction), logits.options()),
            at::empty_symint(target.sym_sizes(),
                             logits.options().dtype(at::kDouble)));
}

void cross_entropy_backward_meta(OpCall& c) {
  checked_cross_entropy_backward_args(c);
  const at::Tensor& logits = c.tensor("logits");
  c.returns(empty_like_sizes(logits.sym_sizes(), logits));
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, Meta, m) {
  m.impl("linear_act", boxed<&linear_act_meta>());
  m.impl("linear_act_backward", boxed<&linear_act_backward_meta>());
  m.impl("activation", boxed<&activation_meta>());
  m.impl("activation_backward", boxed<&activation_backward_meta>());
  m.impl("dropout", boxed<&dropout_meta>());
  m.impl("mlp", boxed<&mlp_meta>());
  m.impl("mlp_backward", boxed<&mlp_backward_meta>());
  m.impl("cross_entropy", boxed<&cross_entropy_meta>());
  m.impl("cross_entropy_backward", boxed<&cross_entropy_backward_meta>());
}

}  // namespace mlpbench
