// The ops as differentiable ATen compositions (composite.h).
#include "composite.h"

#include <ATen/ATen.h>

#include "op_call.h"
#include "tensor_expr.h"

namespace mlpbench {

at::Tensor activation_composite(const at::Tensor& x, const ActSpec& spec) {
  at::Tensor y;
  with_activation<TExpr>(spec, [&](auto act) { y = act.forward(TExpr(x)).t; });
  return y;
}

at::Tensor derivative_composite(const at::Tensor& saved, const ActSpec& spec) {
  at::Tensor d;
  with_activation<TExpr>(spec, [&](auto act) {
    const TExpr got = act.derivative(TExpr(saved));
    d = got.is_tensor() ? got.t : at::full_like(saved, got.s);  // identity's 1
  });
  return d;
}

at::Tensor dropout_composite(const at::Tensor& x, double p, const std::optional<at::Tensor>& seed,
                             int64_t offset) {
  if (p == 0.0) return x.clone();
  if (p == 1.0) return x * 0.0;  // x / 0 in the unselected branch would poison gradients
  // The kernels' mask (below autograd: the op's autograd kernel would come
  // back here), and their scaling.
  at::Tensor keep;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = find_op("mlpbench::dropout");
    torch::jit::Stack stack = call_stack(
        op, {{"x", at::ones_like(x)}, {"p", p}, {"seed", seed}, {"offset", offset}});
    op.callBoxed(stack);
    keep = stack[0].toTensor().ne(0);
  }
  return dropout_value(TMask{keep, x.options()}, TExpr(x), TExpr(1.0 / (1.0 - p))).t;
}

std::pair<at::Tensor, at::Tensor> linear_act_composite(const at::Tensor& x, const at::Tensor& weight,
                                                       const std::optional<at::Tensor>& bias,
                                                       const LinearActArgs& args,
                                                       const std::optional<at::Tensor>& seed) {
  const ActSpec& spec = args.spec;
  const at::Tensor pre = at::linear(x, weight, bias);
  const auto shapes = linear_act_shapes<int64_t>(x.sizes(), weight.size(0), spec);
  at::Tensor y, aux;
  if (aux_of(spec) == Aux::Argmax) {
    // The first best piece, as the kernels choose it (argmax returns the
    // first of equal maxima, and a NaN piece wins).
    const at::Tensor pieces = pre.unflatten(-1, {shapes.out_cols, spec.pieces});
    const at::Tensor arg = pieces.argmax(-1, /*keepdim=*/true);
    y = pieces.gather(-1, arg).squeeze(-1);
    aux = arg.squeeze(-1).reshape(shapes.aux).to(at::kByte);
  } else {
    y = activation_composite(pre, spec);
    aux = aux_of(spec) == Aux::Pre ? pre.detach().reshape(shapes.aux) : at::empty({0}, x.options());
  }
  return {dropout_composite(y, args.dropout_p, seed, args.offset), aux};
}

MlpOutputs mlp_composite(const at::Tensor& x, at::TensorList weights, at::TensorList biases,
                         const MlpArgs& args, const std::optional<at::Tensor>& seed) {
  std::vector<at::Tensor> hidden, aux;
  at::Tensor h = x;
  for (size_t l = 0; l < weights.size(); ++l) {
    const std::optional<at::Tensor> bias =
        biases.empty() ? std::nullopt : std::optional<at::Tensor>(biases[l]);
    auto [y, a] = linear_act_composite(h, weights[l], bias, args.layer(l, weights.size()), seed);
    if (l + 1 < weights.size()) hidden.push_back(y.detach());
    aux.push_back(a);
    h = y;
  }
  return {h, hidden, aux};
}

}  // namespace mlpbench
