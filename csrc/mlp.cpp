// The whole-MLP op (mlp.h): argument checks, the layer loops forward and
// backward, and its CPU and CUDA kernels.
#include "mlp.h"

#include <torch/library.h>

#include <string>

namespace mlpbench {
namespace {

std::string layer_label(size_t l) { return "layer " + std::to_string(l) + ": "; }
std::string indexed(const char* list, size_t l) {
  return std::string(list) + "[" + std::to_string(l) + "]";
}

std::optional<at::Tensor> bias_of(at::TensorList biases, size_t l) {
  return biases.empty() ? std::nullopt : std::optional<at::Tensor>(biases[l]);
}

}  // namespace

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
    width = check_layer(op, layer_label(l), x, l == 0 ? "x" : "layer " + std::to_string(l - 1),
                        width, weights[l], bias_of(biases, l), args.layer(l, layers).spec,
                        indexed("weights", l), indexed("biases", l));
  }
}

void check_mlp_backward_inputs(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                               at::TensorList weights, const at::Tensor& y,
                               at::TensorList hidden, at::TensorList aux, const MlpArgs& args) {
  const size_t layers = weights.size();
  TORCH_CHECK_VALUE(hidden.size() + 1 == layers && aux.size() == layers, op,
                    ": hidden and aux must be what mlp returned for ", text(int64_t(layers)),
                    " layers, got ", text(int64_t(hidden.size())), " and ",
                    text(int64_t(aux.size())));
  check_like_x(op, "grad_y", grad_y, x);
  for (size_t l = 0; l + 1 < layers; ++l) check_like_x(op, indexed("hidden", l), hidden[l], x);
  for (size_t l = 0; l < layers; ++l) {
    const ActSpec spec = args.layer(l, layers).spec;
    if (from_output(spec.act)) continue;  // reads the layer's output, not aux
    check_saved(op, indexed("aux", l), aux[l], spec, x);
  }
  if (from_output(args.output.act)) check_like_x(op, "y", y, x);
}

MlpOutputs mlp_forward(const LayerKernels& kernels, const at::Tensor& x,
                       at::TensorList weights, at::TensorList biases, const MlpArgs& args,
                       const std::optional<at::Tensor>& seed) {
  const size_t layers = weights.size();
  // The leading ReLU layers without dropout, whose product may apply the ReLU
  // once their pre-activations are proved finite: proved from the first
  // layer where the backend finds the proof worth its cost, for as many
  // layers as it holds.
  size_t candidates = 0;
  while (candidates < layers) {
    const LinearActArgs layer = args.layer(candidates, layers);
    if (layer.spec.act != Act::Relu || layer.dropout()) break;
    ++candidates;
  }
  size_t proved_until = 0;
  std::vector<at::Tensor> hidden, aux;
  at::Tensor h = x;
  for (size_t l = 0; l < layers; ++l) {
    const auto bias = bias_of(biases, l);
    if (l >= proved_until && l < candidates && kernels.finite_pre_layers) {
      const size_t chain = candidates - l;
      proved_until = l + kernels.finite_pre_layers(h, weights.slice(l, chain),
                                                   biases.empty() ? biases : biases.slice(l, chain));
    }
    LinearActCall call = layer_call(h, weights[l], args.layer(l, layers), seed);
    call.finite_pre = l < proved_until;
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
                      const std::optional<at::Tensor>& seed, bool x_grad,
                      const LayerGradsDone& done) {
  const char* op = "mlp_backward";
  const size_t layers = weights.size();
  check_mlp_backward_inputs(op, grad_y, x, weights, y, hidden, aux, args);
  // The hidden outputs: x's leading dimensions, then each layer's width.
  std::vector<int64_t> sizes = x.sizes().vec();
  for (size_t l = 0; l + 1 < layers; ++l) {
    sizes.back() = weights[l].size(0) / args.layer(l, layers).spec.pieces;
    check_shape(op, indexed("hidden", l), hidden[l], c10::fromIntArrayRefSlow(sizes),
                "layer " + std::to_string(l) + "'s output");
  }
  std::vector<at::Tensor> grad_weights(layers), grad_biases(has_bias ? layers : 0);
  at::Tensor g = grad_y;
  for (size_t l = layers; l-- > 0;) {
    const LinearActArgs layer_args = args.layer(l, layers);
    const at::Tensor& input = l == 0 ? x : hidden[l - 1];
    const bool last = l + 1 == layers;
    const at::Tensor& output = last ? y : hidden[l];
    const bool from_y = from_output(layer_args.spec.act);
    const at::Tensor& saved = from_y ? output : aux[l];
    LinearActCall call = layer_call(input, weights[l], layer_args, seed);
    call.grad_y_is_scratch = !last;  // g is then the layer above's grad_x, ours alone
    check_layer_grads(op, layer_label(l), call, x, last ? &grad_y : nullptr, "grad_y", saved,
                      from_y ? (last ? std::string("y") : indexed("hidden", l)) : indexed("aux", l));
    auto [gx, gw, gb] = kernels.backward(call, g, input, weights[l], saved,
                                         {l > 0 || x_grad, true, has_bias});
    grad_weights[l] = gw;
    if (has_bias) grad_biases[l] = gb;
    g = gx;
    if (done) done(l, gw, gb);
  }
  return {g, grad_weights, grad_biases};
}

namespace {

// The registered kernels: the arguments parsed and checked, then the loops.
template <const LayerKernels& kKernels>
void mlp_op(OpCall& c) {
  const MlpArgs args = parse_mlp_args(c);
  const at::Tensor& x = c.tensor("x");
  const std::vector<at::Tensor> weights = c.tensors("weights"), biases = c.tensors("biases");
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  check_mlp_inputs(c.op(), x, weights, biases, args);
  check_seed(c.op(), args.hidden.dropout_p, seed, x);
  auto [y, hidden, aux] = mlp_forward(kKernels, x, weights, biases, args, seed);
  c.returns(std::move(y), std::move(hidden), std::move(aux));
}

template <const LayerKernels& kKernels>
void mlp_backward_op(OpCall& c) {
  const MlpArgs args = parse_mlp_args(c);
  const at::Tensor& x = c.tensor("x");
  const std::vector<at::Tensor> weights = c.tensors("weights");
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  check_differentiable(c.op(), args.hidden.spec);
  check_differentiable(c.op(), args.output);
  check_mlp_inputs(c.op(), x, weights, {}, args);
  check_seed(c.op(), args.hidden.dropout_p, seed, x);
  auto [gx, gw, gb] = mlp_backward(kKernels, c.tensor("grad_y"), x, weights, c.tensor("y"),
                                   c.tensors("hidden"), c.tensors("aux"), c.flag("has_bias"),
                                   args, seed, c.flag("x_grad"));
  c.returns(std::move(gx), std::move(gw), std::move(gb));
}

}  // namespace

const LayerKernels kCpuKernels{&cpu::linear_act_forward, &cpu::linear_act_backward,
                               &cpu::finite_pre_layers};

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("mlp", boxed<&mlp_op<kCpuKernels>>());
  m.impl("mlp_backward", boxed<&mlp_backward_op<kCpuKernels>>());
}

#ifdef MLPBENCH_WITH_CUDA
namespace {
constexpr LayerKernels kCudaKernels{&cuda::linear_act_forward, &cuda::linear_act_backward};
}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  m.impl("mlp", boxed<&mlp_op<kCudaKernels>>());
  m.impl("mlp_backward", boxed<&mlp_backward_op<kCudaKernels>>());
}
#endif

}  // namespace mlpbench
