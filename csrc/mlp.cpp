// The whole-MLP op (mlp.h): argument checks, the layer loops forward and
// backward, and its CPU and CUDA kernels.
#include "mlp.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <string>

namespace mlpbench {

LinearActArgs MlpArgs::layer(size_t l, size_t layers) const {
  LinearActArgs args = hidden;
  if (l + 1 == layers) {
    args.spec = output;
    args.dropout_p = 0.0;
  }
  args.offset = hidden.offset + static_cast<int64_t>(l);
  return args;
}

MlpArgs parse_mlp_args(const char* op, c10::string_view activation, double negative_slope,
                       double alpha, c10::string_view approximate, int64_t pieces,
                       c10::string_view output_activation, double dropout_p, int64_t offset) {
  MlpArgs args;
  args.hidden = parse_linear_act_args(op, activation, negative_slope, alpha, approximate, pieces,
                                      dropout_p, offset);
  args.output = parse_activation(op, output_activation, negative_slope, alpha, approximate,
                                 pieces);
  return args;
}

void check_mlp_inputs(const char* op, const at::Tensor& x, at::TensorList weights,
                      at::TensorList biases, const MlpArgs& args) {
  const size_t layers = weights.size();
  TORCH_CHECK_VALUE(layers >= 1, op, ": weights must hold at least one layer's weight, got none");
  TORCH_CHECK_VALUE(biases.empty() || biases.size() == layers, op,
                    ": biases must be empty (no biases) or hold one per layer (",
                    text(static_cast<int64_t>(layers)), "), got ",
                    text(static_cast<int64_t>(biases.size())));
  check_float_tensor(op, "x", x);
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension (..., in_features)");
  c10::SymInt width = x.sym_size(-1);
  for (size_t l = 0; l < layers; ++l) {
    const std::string layer = std::string(op) + ": layer " + std::to_string(l);
    const std::string w = "weights[" + std::to_string(l) + "]";
    const at::Tensor& weight = weights[l];
    TORCH_CHECK_TYPE(weight.scalar_type() == x.scalar_type(), layer, ": ", w, " is ",
                     weight.scalar_type(), " but x is ", x.scalar_type(), "; every layer must "
                     "have x's dtype");
    TORCH_CHECK_VALUE(weight.device() == x.device(), layer, ": ", w, " is on ", weight.device(),
                      " but x is on ", x.device());
    TORCH_CHECK_VALUE(weight.dim() == 2, layer, ": ", w, " must be 2-D (out_rows, in_features), "
                      "got shape ", text(weight.sym_sizes()));
    TORCH_CHECK_VALUE(weight.sym_size(1) == width, layer, ": ", w, " takes ",
                      text(weight.sym_size(1)), " inputs, but ",
                      l == 0 ? std::string("x has ") : "layer " + std::to_string(l - 1) + " gives ",
                      text(width), l == 0 ? " features" : " outputs");
    const ActSpec spec = args.layer(l, layers).spec;
    TORCH_CHECK_VALUE(weight.sym_size(0) % spec.pieces == 0, layer, ": ", w, " has ",
                      text(weight.sym_size(0)), " rows, not a multiple of maxout's pieces=",
                      text(spec.pieces));
    if (!biases.empty()) {
      const at::Tensor& bias = biases[l];
      const std::string b = "biases[" + std::to_string(l) + "]";
      TORCH_CHECK_TYPE(bias.scalar_type() == x.scalar_type(), layer, ": ", b, " is ",
                       bias.scalar_type(), " but x is ", x.scalar_type());
      TORCH_CHECK_VALUE(bias.device() == x.device(), layer, ": ", b, " is on ", bias.device(),
                        " but x is on ", x.device());
      TORCH_CHECK_VALUE(bias.dim() == 1 && bias.sym_size(0) == weight.sym_size(0), layer, ": ",
                        b, " must be 1-D with ", text(weight.sym_size(0)),
                        " elements (weights rows), got shape ", text(bias.sym_sizes()));
    }
    width = weight.sym_size(0) / spec.pieces;
  }
}

namespace {

std::optional<at::Tensor> bias_of(at::TensorList biases, size_t l) {
  return biases.empty() ? std::nullopt : std::optional<at::Tensor>(biases[l]);
}

}  // namespace

MlpOutputs mlp_forward(const LayerKernels& kernels, const at::Tensor& x,
                       at::TensorList weights, at::TensorList biases, const MlpArgs& args,
                       const std::optional<at::Tensor>& seed) {
  const char* op = "mlp";
  check_mlp_inputs(op, x, weights, biases, args);
  const size_t layers = weights.size();
  std::vector<at::Tensor> hidden, aux;
  at::Tensor h = x;
  for (size_t l = 0; l < layers; ++l) {
    const auto bias = bias_of(biases, l);
    const LinearActCall call = linear_act_call(op, false, h, weights[l], bias,
                                               args.layer(l, layers), seed);
    auto [y, a] = kernels.forward(call, h, weights[l], bias);
    if (l + 1 < layers) hidden.push_back(y);
    aux.push_back(a);
    h = y;
  }
  return {h, hidden, aux};
}

MlpGrads mlp_backward(const LayerKernels& kernels, const at::Tensor& grad_y, const at::Tensor& x,
                      at::TensorList weights, const at::Tensor& y, at::TensorList hidden,
                      at::TensorList aux, bool has_bias, const MlpArgs& args,
                      const std::optional<at::Tensor>& seed, bool x_grad) {
  const char* op = "mlp_backward";
  const size_t layers = weights.size();
  TORCH_CHECK_VALUE(hidden.size() + 1 == layers && aux.size() == layers, op,
                    ": hidden and aux must be what mlp returned for ", text(int64_t(layers)),
                    " layers, got ", text(int64_t(hidden.size())), " and ",
                    text(int64_t(aux.size())));
  std::vector<at::Tensor> grad_weights(layers), grad_biases(has_bias ? layers : 0);
  at::Tensor g = grad_y;
  for (size_t l = layers; l-- > 0;) {
    const LinearActArgs layer_args = args.layer(l, layers);
    const at::Tensor& input = l == 0 ? x : hidden[l - 1];
    const at::Tensor& output = l + 1 == layers ? y : hidden[l];
    const at::Tensor& saved = from_output(layer_args.spec.act) ? output : aux[l];
    const LinearActCall call = linear_act_call(op, true, input, weights[l], std::nullopt,
                                               layer_args, seed);
    auto [gx, gw, gb] = kernels.backward(call, g, input, weights[l], saved,
                                         {l > 0 || x_grad, true, has_bias});
    grad_weights[l] = gw;
    if (has_bias) grad_biases[l] = gb;
    g = gx;
  }
  return {g, grad_weights, grad_biases};
}

namespace {

// The registered kernels: the schema's arguments, parsed, then the loops.
template <const LayerKernels& kKernels>
MlpOutputs mlp_op(const at::Tensor& x, at::TensorList weights, at::TensorList biases,
                  c10::string_view activation, double negative_slope, double alpha,
                  c10::string_view approximate, int64_t pieces,
                  c10::string_view output_activation, double dropout_p,
                  const std::optional<at::Tensor>& seed, int64_t offset) {
  const MlpArgs args = parse_mlp_args("mlp", activation, negative_slope, alpha, approximate,
                                      pieces, output_activation, dropout_p, offset);
  return mlp_forward(kKernels, x, weights, biases, args, seed);
}

template <const LayerKernels& kKernels>
MlpGrads mlp_backward_op(const at::Tensor& grad_y, const at::Tensor& x, at::TensorList weights,
                         const at::Tensor& y, at::TensorList hidden, at::TensorList aux,
                         bool has_bias, c10::string_view activation, double negative_slope,
                         double alpha, c10::string_view approximate, int64_t pieces,
                         c10::string_view output_activation, double dropout_p,
                         const std::optional<at::Tensor>& seed, int64_t offset, bool x_grad) {
  const MlpArgs args = parse_mlp_args("mlp_backward", activation, negative_slope, alpha,
                                      approximate, pieces, output_activation, dropout_p, offset);
  return mlp_backward(kKernels, grad_y, x, weights, y, hidden, aux, has_bias, args, seed, x_grad);
}

constexpr LayerKernels kCpuKernels{&cpu::linear_act_forward, &cpu::linear_act_backward};

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("mlp", &mlp_op<kCpuKernels>);
  m.impl("mlp_backward", &mlp_backward_op<kCpuKernels>);
}

#ifdef MLPBENCH_WITH_CUDA
namespace {
constexpr LayerKernels kCudaKernels{&cuda::linear_act_forward, &cuda::linear_act_backward};
}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  m.impl("mlp", &mlp_op<kCudaKernels>);
  m.impl("mlp_backward", &mlp_backward_op<kCudaKernels>);
}
#endif

}  // namespace mlpbench
