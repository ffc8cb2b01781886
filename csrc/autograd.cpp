// Autograd for the ops, registered in C++ for every backend at once. Doing it
// here rather than with torch.library.register_autograd keeps Python out of
// every forward and backward call: on the lecture's small layers (256 -> 10,
// batch 100) that per-call overhead costs more than the kernels themselves.
//
// First-order backward runs the backward kernels. Where they have no
// derivative of their own, the ops switch to their ATen compositions
// (composite.h), which autograd differentiates in any mode: when an input
// carries a forward-mode tangent, under torch.func transforms, and in
// backward with create_graph (double backward). No path returns a silent zero.
#include <ATen/FuncTorchTLS.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

#include "composite.h"
#include "mlp.h"
#include "op_args.h"
#include "op_handles.h"

namespace mlpbench {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool defined(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// Whether autograd has anything to record: grad mode on and some input
// requiring grad. When not (inference, no_grad, frozen weights on a plain
// input), the ops skip the autograd node and its saved state altogether.
bool records_grad(const at::Tensor& a, const at::Tensor* b = nullptr,
                  const std::optional<at::Tensor>* c = nullptr) {
  return at::GradMode::is_enabled() &&
         (a.requires_grad() || (b && b->requires_grad()) ||
          (c && defined(*c) && (*c)->requires_grad()));
}

// Whether the composition must stand in for the kernels' Function: an input
// carries a forward-mode AD tangent (torch.autograd.forward_ad, torch.func.jvp
// / jacfwd: the dispatcher sees level 0), or a torch.func transform is active
// (grad, vjp, jacrev, hessian), which cannot trace a C++ autograd Function.
bool in_functorch_transform() {
  const auto& tls = at::functorch::functorchTLSAccessor();
  if (!tls) return false;  // no transform ever ran on this thread
  try {
    tls->checkSupportsCppAutogradFunction();  // the check Function::apply makes
    return false;
  } catch (const c10::Error&) {
    return true;
  }
}

bool needs_composite(const at::Tensor& a, const at::Tensor* b = nullptr,
                     const std::optional<at::Tensor>* c = nullptr) {
  return a._fw_grad(0).defined() || (b && b->_fw_grad(0).defined()) ||
         (c && defined(*c) && (*c)->_fw_grad(0).defined()) || in_functorch_transform();
}

// linear_act's parsed arguments, kept in autograd's saved data as they are.
struct SavedLinearActArgs : torch::CustomClassHolder {
  explicit SavedLinearActArgs(const LinearActArgs& a) : args(a) {}
  LinearActArgs args;
};

// The ops' calls from parsed arguments (names and strings from the table).
std::tuple<at::Tensor, at::Tensor> call_linear_act(const at::Tensor& x, const at::Tensor& weight,
                                                   const std::optional<at::Tensor>& bias,
                                                   const LinearActArgs& a,
                                                   const std::optional<at::Tensor>& seed) {
  return op_handles::linear_act().call(x, weight, bias, act_info(a.spec.act).name,
                                       a.spec.params.negative_slope, a.spec.params.alpha,
                                       approximate_of(a.spec), a.spec.pieces, a.dropout_p, seed,
                                       a.offset);
}

struct LinearActFunction : torch::autograd::Function<LinearActFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               const LinearActArgs& args, const std::optional<at::Tensor>& seed) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [y, aux] = call_linear_act(x, weight, bias, args, seed);
    ctx->mark_non_differentiable({aux});
    // aux never has a gradient; by default autograd would hand backward a
    // zero-filled one of its size every call (n x out floats for gelu/silu).
    ctx->set_materialize_grads(false);
    // x and weight for the products, y or aux for the derivative; bias and
    // seed for double backward's recomputation and the mask.
    ctx->save_for_backward({x, weight, from_output(args.spec.act) ? y : aux,
                            defined(bias) ? *bias : at::Tensor(),
                            defined(seed) ? *seed : at::Tensor()});
    ctx->saved_data["args"] = at::IValue::make_capsule(c10::make_intrusive<SavedLinearActArgs>(args));
    return {y, aux};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(5);
    if (!grads[0].defined()) return out;  // y took no part in the loss
    const auto saved = ctx->get_saved_variables();
    const LinearActArgs& args =
        static_cast<SavedLinearActArgs*>(ctx->saved_data.at("args").toCapsule().get())->args;
    const std::optional<at::Tensor> bias = saved[3].defined() ? std::optional(saved[3]) : std::nullopt;
    const std::optional<at::Tensor> seed = saved[4].defined() ? std::optional(saved[4]) : std::nullopt;
    const std::array<bool, 3> wanted = {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                        bias.has_value() && ctx->needs_input_grad(2)};
    if (at::GradMode::is_enabled()) {
      // create_graph: the gradient of the composition, itself differentiable.
      const at::Tensor y = linear_act_composite(saved[0], saved[1], bias, args, seed).first;
      const at::Tensor inputs[3] = {saved[0], saved[1], bias.value_or(at::Tensor())};
      std::vector<at::Tensor> wrt;
      for (int i = 0; i < 3; ++i) {
        if (wanted[i]) wrt.push_back(inputs[i]);
      }
      const auto got = torch::autograd::grad({y}, wrt, {grads[0]}, /*retain_graph=*/true,
                                             /*create_graph=*/true, /*allow_unused=*/true);
      for (int i = 0, k = 0; i < 3; ++i) {
        if (wanted[i]) out[i] = got[k++];
      }
      return out;
    }
    const ActSpec& spec = args.spec;
    auto [gx, gw, gb] = op_handles::linear_act_backward().call(
        grads[0], saved[0], saved[1], saved[2], act_info(spec.act).name,
        spec.params.negative_slope, spec.params.alpha, approximate_of(spec), spec.pieces,
        args.dropout_p, seed, args.offset, wanted);
    if (wanted[0]) out[0] = gx;
    if (wanted[1]) out[1] = gw;
    if (wanted[2]) out[2] = gb;
    return out;
  }
};

struct ActivationFunction : torch::autograd::Function<ActivationFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const ActSpec& spec) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const ActInfo& info = act_info(spec.act);
    at::Tensor y = op_handles::activation().call(x, info.name, spec.params.negative_slope,
                                                 spec.params.alpha, approximate_of(spec));
    // Identity and step keep their output: their derivative never reads it.
    ctx->save_for_backward({info.saves == Saves::Input ? x : y});
    ctx->saved_data["act"] = static_cast<int64_t>(spec.act);
    ctx->saved_data["negative_slope"] = spec.params.negative_slope;
    ctx->saved_data["alpha"] = spec.params.alpha;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& d = ctx->saved_data;
    ActSpec spec;
    spec.act = static_cast<Act>(d.at("act").toInt());
    spec.params.negative_slope = d.at("negative_slope").toDouble();
    spec.params.alpha = d.at("alpha").toDouble();
    const at::Tensor saved = ctx->get_saved_variables()[0];
    at::Tensor gx;
    if (at::GradMode::is_enabled()) {
      // create_graph: act'(saved) through ATen ops; a saved output carries
      // this node in its history, so the product is differentiable in x.
      check_differentiable("activation_backward", spec);
      gx = grads[0].mul(derivative_composite(saved, spec));
    } else {
      gx = op_handles::activation_backward().call(grads[0], saved, act_info(spec.act).name,
                                                  spec.params.negative_slope, spec.params.alpha,
                                                  approximate_of(spec));
    }
    return {gx, at::Tensor()};
  }
};

// Dropout's backward is dropout of the gradient with the same (p, seed,
// offset): nothing but those three is kept. Through the dispatcher, so that
// with create_graph it records its own node (dropout is linear).
struct DropoutFunction : torch::autograd::Function<DropoutFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p,
                            const std::optional<at::Tensor>& seed, int64_t offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({defined(seed) ? *seed : at::Tensor()});
    ctx->saved_data["p"] = p;
    ctx->saved_data["offset"] = offset;
    return op_handles::dropout().call(x, p, seed, offset);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& d = ctx->saved_data;
    const at::Tensor seed = ctx->get_saved_variables()[0];
    return {op_handles::dropout().call(grads[0], d.at("p").toDouble(),
                                       seed.defined() ? std::optional(seed) : std::nullopt,
                                       d.at("offset").toInt()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// mlp's parsed arguments and list lengths, kept in autograd's saved data.
struct SavedMlpArgs : torch::CustomClassHolder {
  SavedMlpArgs(const MlpArgs& a, int64_t n, bool b) : args(a), layers(n), has_bias(b) {}
  MlpArgs args;
  int64_t layers;
  bool has_bias;
};

// The whole MLP under one node: forward keeps x, the weights, the hidden
// outputs and aux (what the layers' backward reads, nothing more), and y
// where the output activation differentiates from it; backward returns every
// gradient from one mlp_backward call.
struct MlpFunction : torch::autograd::Function<MlpFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               at::TensorList weights, at::TensorList biases, const MlpArgs& args,
                               const std::optional<at::Tensor>& seed) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const ActInfo& hidden = act_info(args.hidden.spec.act);
    const ActInfo& output = act_info(args.output.act);
    auto [y, hidden_out, aux] = op_handles::mlp().call(
        x, weights, biases, hidden.name, args.hidden.spec.params.negative_slope,
        args.hidden.spec.params.alpha, approximate_of(args.hidden.spec), args.hidden.spec.pieces,
        output.name, args.hidden.dropout_p, seed, args.hidden.offset);
    ctx->mark_non_differentiable(hidden_out);
    ctx->mark_non_differentiable(aux);
    ctx->set_materialize_grads(false);
    // x, weights, hidden, aux, y (or undefined), biases (for double backward), seed.
    std::vector<at::Tensor> saved{x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    saved.insert(saved.end(), hidden_out.begin(), hidden_out.end());
    saved.insert(saved.end(), aux.begin(), aux.end());
    saved.push_back(from_output(args.output.act) ? y : at::Tensor());
    saved.insert(saved.end(), biases.begin(), biases.end());
    saved.push_back(defined(seed) ? *seed : at::Tensor());
    ctx->save_for_backward(saved);
    ctx->saved_data["args"] = at::IValue::make_capsule(c10::make_intrusive<SavedMlpArgs>(
        args, static_cast<int64_t>(weights.size()), !biases.empty()));
    variable_list out{y};
    out.insert(out.end(), hidden_out.begin(), hidden_out.end());
    out.insert(out.end(), aux.begin(), aux.end());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* saved_args = static_cast<SavedMlpArgs*>(ctx->saved_data.at("args").toCapsule().get());
    const MlpArgs& args = saved_args->args;
    const size_t layers = saved_args->layers;
    const bool has_bias = saved_args->has_bias;
    variable_list out(1 + layers + (has_bias ? layers : 0) + 2);
    if (!grads[0].defined()) return out;
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::TensorList weights(saved.data() + 1, layers);
    const at::TensorList hidden(saved.data() + 1 + layers, layers - 1);
    const at::TensorList aux(saved.data() + 2 * layers, layers);
    const at::Tensor& y = saved[3 * layers];
    const at::TensorList biases(saved.data() + 3 * layers + 1, has_bias ? layers : 0);
    const at::Tensor& seed_tensor = saved.back();
    const std::optional<at::Tensor> seed =
        seed_tensor.defined() ? std::optional(seed_tensor) : std::nullopt;
    if (at::GradMode::is_enabled()) {
      // create_graph: the gradient of the composition, itself differentiable.
      std::vector<at::Tensor> wrt;
      std::vector<size_t> slots;
      for (size_t i = 0; i < 1 + layers + biases.size(); ++i) {
        if (!ctx->needs_input_grad(i)) continue;
        wrt.push_back(i == 0 ? x : i <= layers ? weights[i - 1] : biases[i - 1 - layers]);
        slots.push_back(i);
      }
      const at::Tensor yc = std::get<0>(mlp_composite(x, weights, biases, args, seed));
      const auto got = torch::autograd::grad({yc}, wrt, {grads[0]}, /*retain_graph=*/true,
                                             /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t k = 0; k < slots.size(); ++k) out[slots[k]] = got[k];
      return out;
    }
    const ActInfo& hidden_act = act_info(args.hidden.spec.act);
    auto [gx, gw, gb] = op_handles::mlp_backward().call(
        grads[0], x, weights, y, hidden, aux, has_bias, hidden_act.name,
        args.hidden.spec.params.negative_slope, args.hidden.spec.params.alpha,
        approximate_of(args.hidden.spec), args.hidden.spec.pieces, act_info(args.output.act).name,
        args.hidden.dropout_p, seed, args.hidden.offset, ctx->needs_input_grad(0));
    if (ctx->needs_input_grad(0)) out[0] = gx;
    for (size_t l = 0; l < layers; ++l) {
      if (ctx->needs_input_grad(1 + l)) out[1 + l] = gw[l];
      if (has_bias && ctx->needs_input_grad(1 + layers + l)) out[1 + layers + l] = gb[l];
    }
    return out;
  }
};

std::tuple<at::Tensor, at::Tensor> linear_act_autograd(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, double dropout_p,
    const std::optional<at::Tensor>& seed, int64_t offset) {
  const bool composite = needs_composite(x, &weight, &bias);
  if (!composite && !records_grad(x, &weight, &bias)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::linear_act().call(x, weight, bias, activation, negative_slope, alpha,
                                         approximate, pieces, dropout_p, seed, offset);
  }
  const LinearActArgs args = parse_linear_act_args("linear_act", activation, negative_slope,
                                                   alpha, approximate, pieces, dropout_p, offset);
  if (composite) {
    check_linear_act_inputs("linear_act", x, weight, bias, args.spec);
    check_seed("linear_act", dropout_p, seed);
    auto [y, aux] = linear_act_composite(x, weight, bias, args, seed);
    return {y, aux};
  }
  auto out = LinearActFunction::apply(x, weight, bias, args, seed);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>> mlp_autograd(
    const at::Tensor& x, at::TensorList weights, at::TensorList biases,
    c10::string_view activation, double negative_slope, double alpha,
    c10::string_view approximate, int64_t pieces, c10::string_view output_activation,
    double dropout_p, const std::optional<at::Tensor>& seed, int64_t offset) {
  bool grad = at::GradMode::is_enabled() && x.requires_grad();
  bool composite = needs_composite(x);
  for (const at::TensorList list : {weights, biases}) {
    for (const at::Tensor& t : list) {
      grad = grad || (at::GradMode::is_enabled() && t.requires_grad());
      composite = composite || t._fw_grad(0).defined();
    }
  }
  if (!composite && !grad) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::mlp().call(x, weights, biases, activation, negative_slope, alpha,
                                  approximate, pieces, output_activation, dropout_p, seed, offset);
  }
  const MlpArgs args = parse_mlp_args("mlp", activation, negative_slope, alpha, approximate,
                                      pieces, output_activation, dropout_p, offset);
  if (!composite) {
    check_differentiable("mlp", args.hidden.spec);
    check_differentiable("mlp", args.output);
  }
  if (composite) {
    check_mlp_inputs("mlp", x, weights, biases, args);
    check_seed("mlp", dropout_p, seed);
    return mlp_composite(x, weights, biases, args, seed);
  }
  const size_t layers = weights.size();
  const auto out = MlpFunction::apply(x, weights, biases, args, seed);
  return {out[0], std::vector<at::Tensor>(out.begin() + 1, out.begin() + layers),
          std::vector<at::Tensor>(out.begin() + layers, out.end())};
}

at::Tensor activation_autograd(const at::Tensor& x, c10::string_view name, double negative_slope,
                               double alpha, c10::string_view approximate) {
  const bool composite = needs_composite(x);
  if (!composite && !records_grad(x)) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op_handles::activation().call(x, name, negative_slope, alpha, approximate);
  }
  const ActSpec spec = parse_elementwise("activation", name, negative_slope, alpha, approximate);
  if (composite) {
    check_float_tensor("activation", "x", x);
    return activation_composite(x, spec);
  }
  return ActivationFunction::apply(x, spec);
}

at::Tensor dropout_autograd(const at::Tensor& x, double p, const std::optional<at::Tensor>& seed,
                            int64_t offset) {
  if (needs_composite(x)) {
    parse_dropout("dropout", p, seed, offset);
    check_float_tensor("dropout", "x", x);
    return dropout_composite(x, p, seed, offset);
  }
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
  m.impl("mlp", &mlp_autograd);
}

}  // namespace mlpbench
