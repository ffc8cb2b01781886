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
//
// Each kernel parses its op's arguments once (op_args.h), runs the op below
// autograd with the arguments as they came, and keeps the parsed struct and
// the scalar arguments; backward calls the backward op with those scalar
// arguments taken by name (op_call.h: call_stack).
#include <ATen/FuncTorchTLS.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

#include "composite.h"
#include "cross_entropy.h"
#include "mlp.h"
#include "op_args.h"
#include "op_call.h"

namespace mlpbench {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using torch::jit::Stack;

bool defined(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }
c10::IValue optional_value(const at::Tensor& t) { return t.defined() ? c10::IValue(t) : c10::IValue(); }
std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// Whether autograd has anything to record: grad mode on and some input
// requiring grad. When not (inference, no_grad, frozen weights on a plain
// input), the ops skip the autograd node and its saved state altogether.
bool records_grad(std::initializer_list<const at::Tensor*> inputs) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
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

bool needs_composite(std::initializer_list<const at::Tensor*> inputs) {
  for (const at::Tensor* t : inputs) {
    if (t && t->defined() && t->_fw_grad(0).defined()) return true;
  }
  return in_functorch_transform();
}

// The op's own call below autograd, on the stack it came with.
void call_below_autograd(const c10::OperatorHandle& op, Stack* stack) {
  at::AutoDispatchBelowADInplaceOrView guard;
  op.callBoxed(stack);
}

// What a node keeps besides tensors: the parsed arguments, and the forward
// call's scalar arguments for the backward op's call.
template <typename Args>
struct Saved : torch::CustomClassHolder {
  Saved(Args a, SavedArguments c) : args(std::move(a)), call(std::move(c)) {}
  Args args;
  SavedArguments call;
};

template <typename Args>
void keep(AutogradContext* ctx, Args args, const OpCall& call) {
  ctx->saved_data["saved"] =
      at::IValue::make_capsule(c10::make_intrusive<Saved<Args>>(std::move(args), save_arguments(call)));
}

template <typename Args>
const Saved<Args>& kept(AutogradContext* ctx) {
  return *static_cast<Saved<Args>*>(ctx->saved_data.at("saved").toCapsule().get());
}

// create_graph: the gradients of `y` (a differentiable composition) with
// respect to the inputs autograd wants, in their slots of `out`.
void composite_grads(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& grad_y,
                     const std::vector<at::Tensor>& inputs, variable_list& out) {
  std::vector<at::Tensor> wrt;
  std::vector<size_t> slots;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && ctx->needs_input_grad(i)) {
      wrt.push_back(inputs[i]);
      slots.push_back(i);
    }
  }
  const auto got = torch::autograd::grad({y}, wrt, {grad_y}, /*retain_graph=*/true,
                                         /*create_graph=*/true, /*allow_unused=*/true);
  for (size_t k = 0; k < slots.size(); ++k) out[slots[k]] = got[k];
}

struct LinearActFunction : torch::autograd::Function<LinearActFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               const std::optional<at::Tensor>& seed, const OpCall& call,
                               const LinearActArgs& args) {
    keep(ctx, args, call);
    Stack stack = call.arguments();
    call_below_autograd(call.handle(), &stack);
    const at::Tensor y = stack[0].toTensor(), aux = stack[1].toTensor();
    ctx->mark_non_differentiable({aux});
    // aux never has a gradient; by default autograd would hand backward a
    // zero-filled one of its size every call (n x out floats for gelu/silu).
    ctx->set_materialize_grads(false);
    // x and weight for the products, y or aux for the derivative; bias and
    // seed for double backward's recomputation and the mask.
    ctx->save_for_backward({x, weight, from_output(args.spec.act) ? y : aux,
                            defined(bias) ? *bias : at::Tensor(),
                            defined(seed) ? *seed : at::Tensor()});
    return {y, aux};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(6);
    if (!grads[0].defined()) return out;  // y took no part in the loss
    const auto saved = ctx->get_saved_variables();
    const Saved<LinearActArgs>& s = kept<LinearActArgs>(ctx);
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[3], &seed = saved[4];
    if (at::GradMode::is_enabled()) {
      const at::Tensor y =
          linear_act_composite(x, weight, optional_of(bias), s.args, optional_of(seed)).first;
      composite_grads(ctx, y, grads[0], {x, weight, bias}, out);
      return out;
    }
    static const auto op = find_op("mlpbench::linear_act_backward");
    Stack stack = call_stack(
        op,
        {{"grad_y", grads[0]}, {"x", x}, {"weight", weight}, {"saved", saved[2]},
         {"seed", optional_value(seed)},
         {"output_mask", c10::List<bool>({ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                          bias.defined() && ctx->needs_input_grad(2)})}},
        s.call);
    op.callBoxed(stack);
    for (int i = 0; i < 3; ++i) {
      // (needs_input_grad counts the inputs that are tensors: no bias, no slot 2.)
      if ((i < 2 || bias.defined()) && ctx->needs_input_grad(i)) out[i] = stack[i].toTensor();
    }
    return out;
  }
};

void linear_act_autograd(OpCall& c) {
  const at::Tensor& x = c.tensor("x");
  const at::Tensor& weight = c.tensor("weight");
  const std::optional<at::Tensor> bias = c.optional_tensor("bias");
  const at::Tensor* b = bias ? &*bias : nullptr;
  const bool composite = needs_composite({&x, &weight, b});
  if (!composite && !records_grad({&x, &weight, b})) return call_below_autograd(c.handle(), c.stack());
  const LinearActArgs args = parse_linear_act_args(c);
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  if (composite) {
    check_linear_act_inputs(c.op(), x, weight, bias, args.spec);
    check_seed(c.op(), args.dropout_p, seed, x);
    auto [y, aux] = linear_act_composite(x, weight, bias, args, seed);
    return c.returns(std::move(y), std::move(aux));
  }
  auto out = LinearActFunction::apply(x, weight, bias, seed, c, args);
  c.returns(std::move(out[0]), std::move(out[1]));
}

struct ActivationFunction : torch::autograd::Function<ActivationFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const OpCall& call,
                            const ActSpec& spec) {
    keep(ctx, spec, call);
    Stack stack = call.arguments();
    call_below_autograd(call.handle(), &stack);
    at::Tensor y = stack[0].toTensor();
    // Identity and step keep their output: their derivative never reads it.
    ctx->save_for_backward({act_info(spec.act).saves == Saves::Input ? x : y});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Saved<ActSpec>& s = kept<ActSpec>(ctx);
    const at::Tensor saved = ctx->get_saved_variables()[0];
    if (at::GradMode::is_enabled()) {
      // create_graph: act'(saved) through ATen ops; a saved output carries
      // this node in its history, so the product is differentiable in x.
      check_differentiable("activation_backward", s.args);
      return {grads[0].mul(derivative_composite(saved, s.args)), at::Tensor(), at::Tensor()};
    }
    static const auto op = find_op("mlpbench::activation_backward");
    Stack stack = call_stack(op, {{"grad_y", grads[0]}, {"saved", saved}}, s.call);
    op.callBoxed(stack);
    return {stack[0].toTensor(), at::Tensor(), at::Tensor()};
  }
};

void activation_autograd(OpCall& c) {
  const at::Tensor& x = c.tensor("x");
  const bool composite = needs_composite({&x});
  if (!composite && !records_grad({&x})) return call_below_autograd(c.handle(), c.stack());
  const ActSpec spec = parse_elementwise(c.op(), "activation", c.text("activation"));
  if (composite) {
    check_float_tensor(c.op(), "x", x);
    return c.returns(activation_composite(x, spec));
  }
  c.returns(ActivationFunction::apply(x, c, spec));
}

// Dropout's backward is dropout of the gradient with the same (p, seed,
// offset): nothing but those three is kept. Through the dispatcher, so that
// with create_graph it records its own node (dropout is linear).
struct DropoutFunction : torch::autograd::Function<DropoutFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& /*x*/,
                            const std::optional<at::Tensor>& seed, const OpCall& call) {
    keep(ctx, 0, call);
    ctx->save_for_backward({defined(seed) ? *seed : at::Tensor()});
    Stack stack = call.arguments();
    call_below_autograd(call.handle(), &stack);
    return stack[0].toTensor();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op("mlpbench::dropout");
    Stack stack = call_stack(
        op, {{"x", grads[0]}, {"seed", optional_value(ctx->get_saved_variables()[0])}},
        kept<int>(ctx).call);
    op.callBoxed(stack);
    return {stack[0].toTensor(), at::Tensor(), at::Tensor()};
  }
};

void dropout_autograd(OpCall& c) {
  const at::Tensor& x = c.tensor("x");
  const bool composite = needs_composite({&x});
  if (!composite && !records_grad({&x})) return call_below_autograd(c.handle(), c.stack());
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  if (composite) {
    const double p = checked_probability(c.op(), c.real("p"));
    check_seed(c.op(), p, seed, x);
    check_float_tensor(c.op(), "x", x);
    return c.returns(dropout_composite(x, p, seed, c.integer("offset")));
  }
  c.returns(DropoutFunction::apply(x, seed, c));
}

// mlp's parsed arguments and its lists' lengths, kept for backward.
struct MlpKept {
  MlpArgs args;
  size_t layers;
  bool has_bias;
};

// The whole MLP under one node: forward keeps x, the weights, the hidden
// outputs and aux (what the layers' backward reads, nothing more), and y
// where the output activation differentiates from it; backward returns every
// gradient from one mlp_backward call.
struct MlpFunction : torch::autograd::Function<MlpFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList weights,
                               at::TensorList biases, const std::optional<at::Tensor>& seed,
                               const OpCall& call, const MlpArgs& args) {
    keep(ctx, MlpKept{args, weights.size(), !biases.empty()}, call);
    Stack stack = call.arguments();
    call_below_autograd(call.handle(), &stack);
    const at::Tensor y = stack[0].toTensor();
    std::vector<at::Tensor> hidden = stack[1].toTensorVector(), aux = stack[2].toTensorVector();
    ctx->mark_non_differentiable(hidden);
    ctx->mark_non_differentiable(aux);
    ctx->set_materialize_grads(false);
    // x, weights, hidden, aux, y (or undefined), biases (for double backward), seed.
    std::vector<at::Tensor> saved{x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    saved.insert(saved.end(), hidden.begin(), hidden.end());
    saved.insert(saved.end(), aux.begin(), aux.end());
    saved.push_back(from_output(args.output.act) ? y : at::Tensor());
    saved.insert(saved.end(), biases.begin(), biases.end());
    saved.push_back(defined(seed) ? *seed : at::Tensor());
    ctx->save_for_backward(saved);
    variable_list out{y};
    out.insert(out.end(), hidden.begin(), hidden.end());
    out.insert(out.end(), aux.begin(), aux.end());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Saved<MlpKept>& s = kept<MlpKept>(ctx);
    const size_t layers = s.args.layers;
    const bool has_bias = s.args.has_bias;
    const auto saved = ctx->get_saved_variables();
    variable_list out(1 + 2 * layers + 3);
    if (!grads[0].defined()) return out;
    const at::Tensor& x = saved[0];
    const std::vector<at::Tensor> weights(saved.begin() + 1, saved.begin() + 1 + layers);
    const std::vector<at::Tensor> hidden(saved.begin() + 1 + layers, saved.begin() + 2 * layers);
    const std::vector<at::Tensor> aux(saved.begin() + 2 * layers, saved.begin() + 3 * layers);
    const at::Tensor& y = saved[3 * layers];
    const std::vector<at::Tensor> biases(saved.begin() + 3 * layers + 1,
                                         saved.begin() + 3 * layers + 1 + (has_bias ? layers : 0));
    const at::Tensor& seed = saved.back();
    // Gradient slots: x, each weight, each bias (the list inputs' elements).
    if (at::GradMode::is_enabled()) {
      std::vector<at::Tensor> inputs{x};
      inputs.insert(inputs.end(), weights.begin(), weights.end());
      inputs.insert(inputs.end(), biases.begin(), biases.end());
      const at::Tensor yc =
          std::get<0>(mlp_composite(x, weights, biases, s.args.args, optional_of(seed)));
      composite_grads(ctx, yc, grads[0], inputs, out);
      return out;
    }
    static const auto op = find_op("mlpbench::mlp_backward");
    Stack stack = call_stack(op,
                             {{"grad_y", grads[0]}, {"x", x}, {"weights", weights}, {"y", y},
                              {"hidden", hidden}, {"aux", aux}, {"has_bias", has_bias},
                              {"seed", optional_value(seed)},
                              {"x_grad", ctx->needs_input_grad(0)}},
                             s.call);
    op.callBoxed(stack);
    const std::vector<at::Tensor> gw = stack[1].toTensorVector(), gb = stack[2].toTensorVector();
    if (ctx->needs_input_grad(0)) out[0] = stack[0].toTensor();
    for (size_t l = 0; l < layers; ++l) {
      if (ctx->needs_input_grad(1 + l)) out[1 + l] = gw[l];
      if (has_bias && ctx->needs_input_grad(1 + layers + l)) out[1 + layers + l] = gb[l];
    }
    return out;
  }
};

void mlp_autograd(OpCall& c) {
  const at::Tensor& x = c.tensor("x");
  const std::vector<at::Tensor> weights = c.tensors("weights"), biases = c.tensors("biases");
  std::vector<const at::Tensor*> inputs{&x};
  for (const auto* list : {&weights, &biases}) {
    for (const at::Tensor& t : *list) inputs.push_back(&t);
  }
  bool grad = false, composite = in_functorch_transform();
  for (const at::Tensor* t : inputs) {
    grad = grad || t->requires_grad();
    composite = composite || t->_fw_grad(0).defined();
  }
  grad = grad && at::GradMode::is_enabled();
  if (!composite && !grad) return call_below_autograd(c.handle(), c.stack());
  const MlpArgs args = parse_mlp_args(c);
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  if (composite) {
    check_mlp_inputs(c.op(), x, weights, biases, args);
    check_seed(c.op(), args.hidden.dropout_p, seed, x);
    auto [y, hidden, aux] = mlp_composite(x, weights, biases, args, seed);
    return c.returns(std::move(y), std::move(hidden), std::move(aux));
  }
  check_differentiable(c.op(), args.hidden.spec);
  check_differentiable(c.op(), args.output);
  const size_t layers = weights.size();
  const auto out = MlpFunction::apply(x, at::TensorList(weights), at::TensorList(biases), seed, c,
                                      args);
  c.returns(out[0], std::vector<at::Tensor>(out.begin() + 1, out.begin() + layers),
            std::vector<at::Tensor>(out.begin() + layers, out.end()));
}

// Cross-entropy keeps logits, target and each row's logsumexp; backward is
// one cross_entropy_backward call (with create_graph, ATen's cross-entropy
// differentiated again).
struct CrossEntropyFunction : torch::autograd::Function<CrossEntropyFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits,
                               const at::Tensor& target, const OpCall& call,
                               const CrossEntropyArgs& args) {
    keep(ctx, args, call);
    Stack stack = call.arguments();
    call_below_autograd(call.handle(), &stack);
    const at::Tensor loss = stack[0].toTensor(), lse = stack[1].toTensor();
    ctx->mark_non_differentiable({lse});
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({logits, target, lse});
    return {loss, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(4);
    if (!grads[0].defined()) return out;
    const auto saved = ctx->get_saved_variables();
    const Saved<CrossEntropyArgs>& s = kept<CrossEntropyArgs>(ctx);
    if (at::GradMode::is_enabled()) {
      const at::Tensor loss = cross_entropy_composite(saved[0], saved[1], s.args).first;
      composite_grads(ctx, loss, grads[0], {saved[0]}, out);
      return out;
    }
    static const auto op = find_op("mlpbench::cross_entropy_backward");
    Stack stack = call_stack(op,
                             {{"grad_loss", grads[0]}, {"logits", saved[0]},
                              {"target", saved[1]}, {"lse", saved[2]}},
                             s.call);
    op.callBoxed(stack);
    out[0] = stack[0].toTensor();
    return out;
  }
};

void cross_entropy_autograd(OpCall& c) {
  const at::Tensor& logits = c.tensor("logits");
  const bool composite = needs_composite({&logits});
  if (!composite && !records_grad({&logits})) return call_below_autograd(c.handle(), c.stack());
  const CrossEntropyArgs args = checked_cross_entropy_args(c);
  if (composite) {
    auto [loss, lse] = cross_entropy_composite(logits, c.tensor("target"), args);
    return c.returns(std::move(loss), std::move(lse));
  }
  const auto out = CrossEntropyFunction::apply(logits, c.tensor("target"), c, args);
  c.returns(out[0], out[1]);
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, Autograd, m) {
  m.impl("linear_act", boxed<&linear_act_autograd>());
  m.impl("activation", boxed<&activation_autograd>());
  m.impl("dropout", boxed<&dropout_autograd>());
  m.impl("mlp", boxed<&mlp_autograd>());
  m.impl("cross_entropy", boxed<&cross_entropy_autograd>());
}

}  // namespace mlpbench
