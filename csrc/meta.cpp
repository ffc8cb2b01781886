// Meta kernels: the ops' output shapes and dtypes without computing anything,
// which torch.compile (fake tensors) and torch.library.opcheck trace with.
// Shapes are SymInts, so that traces with dynamic shapes work; linear_act's
// shape rule is the one its real kernels use (op_args.h: linear_act_shapes).
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "mlp.h"
#include "op_args.h"

namespace mlpbench {
namespace {

std::tuple<at::Tensor, at::Tensor> linear_act_meta(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset) {
  const char* op = "linear_act";
  const LinearActArgs args = parse_linear_act_args(op, activation, negative_slope, alpha,
                                                   approximate, pieces, dropout_p, offset);
  check_seed(op, dropout_p, seed);
  check_linear_act_inputs(op, x, weight, bias, args.spec);
  const auto shapes = linear_act_shapes<c10::SymInt>(x.sym_sizes(), weight.sym_size(0), args.spec);
  return {at::empty_symint(shapes.y, x.options()),
          at::empty_symint(shapes.aux, x.options().dtype(aux_dtype(args.spec, x.scalar_type())))};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_meta(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& /*saved*/, c10::string_view activation, double negative_slope,
    double alpha, c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset, std::array<bool, 3> output_mask) {
  const char* op = "linear_act_backward";
  const LinearActArgs args = parse_linear_act_args(op, activation, negative_slope, alpha,
                                                   approximate, pieces, dropout_p, offset);
  check_differentiable(op, args.spec);
  check_seed(op, dropout_p, seed);
  check_linear_act_inputs(op, x, weight, std::nullopt, args.spec);
  check_float_tensor(op, "grad_y", grad_y);
  const at::Tensor none = at::empty({0}, x.options());
  return {output_mask[0] ? at::empty_symint(x.sym_sizes(), x.options()) : none,
          output_mask[1] ? at::empty_symint(weight.sym_sizes(), weight.options()) : none,
          output_mask[2] ? at::empty_symint({weight.sym_size(0)}, weight.options()) : none};
}

at::Tensor activation_meta(const at::Tensor& x, c10::string_view name, double negative_slope,
                           double alpha, c10::string_view approximate) {
  parse_elementwise("activation", name, negative_slope, alpha, approximate);
  check_float_tensor("activation", "x", x);
  return at::empty_symint(x.sym_sizes(), x.options());
}

at::Tensor activation_backward_meta(const at::Tensor& grad_y, const at::Tensor& saved,
                                    c10::string_view name, double negative_slope, double alpha,
                                    c10::string_view approximate) {
  const char* op = "activation_backward";
  check_differentiable(op, parse_elementwise(op, name, negative_slope, alpha, approximate));
  check_float_tensor(op, "grad_y", grad_y);
  check_like_grad(op, grad_y, saved);
  return at::empty_symint(grad_y.sym_sizes(), grad_y.options());
}

at::Tensor dropout_meta(const at::Tensor& x, double p, const std::optional<at::Tensor>& seed,
                        int64_t /*offset*/) {
  check_probability("dropout", p);
  check_seed("dropout", p, seed);
  check_float_tensor("dropout", "x", x);
  return at::empty_symint(x.sym_sizes(), x.options());
}

MlpOutputs mlp_meta(const at::Tensor& x, at::TensorList weights, at::TensorList biases,
                    c10::string_view activation, double negative_slope, double alpha,
                    c10::string_view approximate, int64_t pieces,
                    c10::string_view output_activation, double dropout_p,
                    const std::optional<at::Tensor>& seed, int64_t offset) {
  const MlpArgs args = parse_mlp_args("mlp", activation, negative_slope, alpha, approximate,
                                      pieces, output_activation, dropout_p, offset);
  check_seed("mlp", dropout_p, seed);
  check_mlp_inputs("mlp", x, weights, biases, args);
  std::vector<at::Tensor> hidden, aux;
  c10::SymIntArrayRef sizes = x.sym_sizes();
  std::vector<c10::SymInt> y_sizes;
  for (size_t l = 0; l < weights.size(); ++l) {
    const ActSpec spec = args.layer(l, weights.size()).spec;
    const auto shapes = linear_act_shapes<c10::SymInt>(sizes, weights[l].sym_size(0), spec);
    aux.push_back(at::empty_symint(shapes.aux, x.options().dtype(aux_dtype(spec, x.scalar_type()))));
    y_sizes = shapes.y;
    sizes = y_sizes;
    if (l + 1 < weights.size()) hidden.push_back(at::empty_symint(y_sizes, x.options()));
  }
  return {at::empty_symint(y_sizes, x.options()), hidden, aux};
}

MlpGrads mlp_backward_meta(const at::Tensor& grad_y, const at::Tensor& x, at::TensorList weights,
                           const at::Tensor& /*y*/, at::TensorList /*hidden*/,
                           at::TensorList /*aux*/, bool has_bias, c10::string_view activation,
                           double negative_slope, double alpha, c10::string_view approximate,
                           int64_t pieces, c10::string_view output_activation, double dropout_p,
                           const std::optional<at::Tensor>& seed, int64_t offset, bool x_grad) {
  const MlpArgs args = parse_mlp_args("mlp_backward", activation, negative_slope, alpha,
                                      approximate, pieces, output_activation, dropout_p, offset);
  check_differentiable("mlp_backward", args.hidden.spec);
  check_differentiable("mlp_backward", args.output);
  check_seed("mlp_backward", dropout_p, seed);
  check_float_tensor("mlp_backward", "grad_y", grad_y);
  std::vector<at::Tensor> grad_weights, grad_biases;
  for (const at::Tensor& w : weights) {
    grad_weights.push_back(at::empty_symint(w.sym_sizes(), w.options()));
    if (has_bias) grad_biases.push_back(at::empty_symint({w.sym_size(0)}, w.options()));
  }
  return {x_grad ? at::empty_symint(x.sym_sizes(), x.options()) : at::empty({0}, x.options()),
          grad_weights, grad_biases};
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, Meta, m) {
  m.impl("linear_act", &linear_act_meta);
  m.impl("linear_act_backward", &linear_act_backward_meta);
  m.impl("activation", &activation_meta);
  m.impl("activation_backward", &activation_backward_meta);
  m.impl("dropout", &dropout_meta);
  m.impl("mlp", &mlp_meta);
  m.impl("mlp_backward", &mlp_backward_meta);
}

}  // namespace mlpbench
