// Autograd for the ops, registered in C++ for every backend at once. Doing it
// here rather than with torch.library.register_autograd keeps Python out of
// every forward and backward call: on the lecture's small layers (256 -> 10,
// batch 100) that per-call overhead costs more than the kernels themselves.
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

#include "op_args.h"
#include "op_handles.h"

namespace mlpbench {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Whether autograd has anything to record: grad mode on and some input
// requiring grad. When not (inference, no_grad, frozen weights on a plain
// input), the ops skip the autograd node and its saved state altogether.
bool records_grad(const at::Tensor& a, const at::Tensor* b = nullptr,
                  const std::optional<at::Tensor>* c = nullptr) {
  return at::GradMode::is_enabled() &&
         (a.requires_grad() || (b && b->requires_grad()) ||
          (c && c->has_value() && (*c)->defined() && (*c)->requires_grad()));
}

// What backward needs besides x and weight: the output y for the
// output-derivable activations, the forward's aux otherwise (pre-activation
// for gelu/silu, argmax for maxout, empty for identity and step).
bool derivative_from_output(Act act) {
  return act == Act::Sigmoid || act == Act::Tanh || act == Act::Relu || act == Act::LeakyRelu ||
         act == Act::Elu;
}

struct LinearActFunction : torch::autograd::Function<LinearActFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               const std::string& activation, double negative_slope,
                               double alpha, const std::string& approximate, int64_t pieces,
                               double dropout_p, int64_t seed, int64_t offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [y, aux] = op_handles::linear_act().call(x, weight, bias, activation, negative_slope,
                                                  alpha, approximate, pieces, dropout_p, seed,
                                                  offset);
    ctx->mark_non_differentiable({aux});
    // aux never has a gradient; by default autograd would hand backward a
    // zero-filled one of its size every call (n x out floats for gelu/silu).
    ctx->set_materialize_grads(false);
    const ActSpec spec = parse_activation("linear_act", activation, negative_slope, alpha,
                                          approximate, pieces);
    ctx->save_for_backward({x, weight, derivative_from_output(spec.act) ? y : aux});
    ctx->saved_data["activation"] = activation;
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["approximate"] = approximate;
    ctx->saved_data["pieces"] = pieces;
    ctx->saved_data["dropout_p"] = dropout_p;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return {y, aux};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(11);
    if (!grads[0].defined()) return out;  // y took no part in the loss
    const auto saved = ctx->get_saved_variables();
    const auto& d = ctx->saved_data;
    const std::array<bool, 3> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                      d.at("has_bias").toBool() && ctx->needs_input_grad(2)};
    auto [gx, gw, gb] = op_handles::linear_act_backward().call(
        grads[0], saved[0], saved[1], saved[2], d.at("activation").toStringRef(),
        d.at("negative_slope").toDouble(), d.at("alpha").toDouble(),
        d.at("approximate").toStringRef(), d.at("pieces").toInt(), d.at("dropout_p").toDouble(),
        d.at("seed").toInt(), d.at("offset").toInt(), mask);
    if (mask[0]) out[0] = gx;
    if (mask[1]) out[1] = gw;
    if (mask[2]) out[2] = gb;
    return out;
  }
};

struct ActivationFunction : torch::autograd::Function<ActivationFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::string& name,
                            double negative_slope, double alpha,
                            const std::string& approximate) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor y = op_handles::activation().call(x, name, negative_slope, alpha, approximate);
    const ActSpec spec = parse_elementwise("activation", name, negative_slope, alpha, approximate);
    // Identity and step pass their output; their derivative never reads it.
    const bool from_input = spec.act == Act::Gelu || spec.act == Act::GeluTanh ||
                            spec.act == Act::Silu;
    ctx->save_for_backward({from_input ? x : y});
    ctx->saved_data["name"] = name;
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["approximate"] = approximate;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& d = ctx->saved_data;
    at::Tensor gx = op_handles::activation_backward().call(
        grads[0], ctx->get_saved_variables()[0], d.at("name").toStringRef(),
        d.at("negative_slope").toDouble(), d.at("alpha").toDouble(),
        d.at("approximate").toStringRef());
    return {gx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Dropout's backward is dropout of the gradient with the same (p, seed,
// offset): nothing but those three numbers is kept.
struct DropoutFunction : torch::autograd::Function<DropoutFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p, int64_t seed,
                            int64_t offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["offset"] = offset;
    return op_handles::dropout().call(x, p, seed, offset);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& d = ctx->saved_data;
    return {op_handles::dropout().call(grads[0], d.at("p").toDouble(), d.at("seed").toInt(),
                                       d.at("offset").toInt()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> linear_act_autograd(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p, int64_t seed,
    int64_t offset) {
  if (!records_grad(x, &weight, &bias)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::linear_act().call(x, weight, bias, activation, negative_slope, alpha,
                                         approximate, pieces, dropout_p, seed, offset);
  }
  auto out = LinearActFunction::apply(x, weight, bias, std::string(activation), negative_slope,
                                      alpha, std::string(approximate), pieces, dropout_p, seed,
                                      offset);
  return {out[0], out[1]};
}

at::Tensor activation_autograd(const at::Tensor& x, c10::string_view name, double negative_slope,
                               double alpha, c10::string_view approximate) {
  if (!records_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::activation().call(x, name, negative_slope, alpha, approximate);
  }
  return ActivationFunction::apply(x, std::string(name), negative_slope, alpha,
                                   std::string(approximate));
}

at::Tensor dropout_autograd(const at::Tensor& x, double p, int64_t seed, int64_t offset) {
  if (!records_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::dropout().call(x, p, seed, offset);
  }
  return DropoutFunction::apply(x, p, seed, offset);
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, Autograd, m) {
  m.impl("linear_act", &linear_act_autograd);
  m.impl("activation", &activation_autograd);
  m.impl("dropout", &dropout_autograd);
}

}  // namespace mlpbench
