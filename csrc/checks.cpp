// The shared tensor checks (checks.h).
#include "checks.h"

#include <c10/util/Exception.h>

#include "op_args.h"

namespace mlpbench {

void check_float_tensor(const char* op, const char* arg, const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  const bool half = t.is_cuda() || t.is_meta();
  const bool ok = dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 ||
                  (half && dtype == at::kHalf);
  TORCH_CHECK_TYPE(ok, op, ": ", arg, " must be a float32, float64 or bfloat16 tensor",
                   t.is_cuda() ? " (or float16 on CUDA)" : " (float16 only on CUDA)", ", got ",
                   dtype, " on ", t.device());
}

void check_on_device_of(const char* op, const std::string& arg, const at::Tensor& t,
                        const at::Tensor& x, const char* ref) {
  TORCH_CHECK_VALUE(t.device() == x.device(), op, ": ", arg, " must be on ", ref, "'s device ",
                    x.device(), ", got ", t.device());
}

void check_like_x(const char* op, const std::string& arg, const at::Tensor& t,
                  const at::Tensor& x, const char* ref) {
  check_on_device_of(op, arg, t, x, ref);
  TORCH_CHECK_TYPE(t.scalar_type() == x.scalar_type(), op, ": ", arg, " must have ", ref,
                   "'s dtype ", x.scalar_type(), ", got ", t.scalar_type());
}

void check_shape(const char* op, const std::string& arg, const at::Tensor& t,
                 c10::SymIntArrayRef want, const std::string& of) {
  TORCH_CHECK_VALUE(t.sym_sizes() == want, op, ": ", arg, " must have ", of, "'s shape ",
                    text(want), ", got ", text(t.sym_sizes()));
}

c10::SymInt check_layer(const char* op, const std::string& layer, const at::Tensor& x,
                        const std::string& input, const c10::SymInt& in_features,
                        const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        const ActSpec& spec, const std::string& w, const std::string& b) {
  // Sizes as SymInts: the meta kernels run these checks on symbolic shapes.
  check_like_x(op, layer + w, weight, x);
  TORCH_CHECK_VALUE(weight.dim() == 2, op, ": ", layer, w,
                    " must be 2-D (out_rows, in_features), got shape ", text(weight.sym_sizes()));
  TORCH_CHECK_VALUE(weight.sym_size(1) == in_features, op, ": ", layer, w, " takes ",
                    text(weight.sym_size(1)), " inputs, but ", input,
                    input == "x" ? " has " + text(in_features) + " features"
                                 : " gives " + text(in_features) + " outputs");
  TORCH_CHECK_VALUE(weight.sym_size(0) % spec.pieces == 0, op, ": ", layer, w, " has ",
                    text(weight.sym_size(0)), " rows, not a multiple of maxout's pieces=",
                    text(spec.pieces));
  if (bias.has_value()) {
    check_like_x(op, layer + b, *bias, x);
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->sym_size(0) == weight.sym_size(0), op, ": ",
                      layer, b, " must be 1-D with ", text(weight.sym_size(0)),
                      " elements (one per row of ", w, "), got shape ", text(bias->sym_sizes()));
  }
  return weight.sym_size(0) / spec.pieces;
}

void check_linear_act_inputs(const char* op, const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec) {
  check_float_tensor(op, "x", x);
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension (..., in_features)");
  check_layer(op, "", x, "x", x.sym_size(-1), weight, bias, spec, "weight", "bias");
}

void check_seed(const char* op, double p, const std::optional<at::Tensor>& seed,
                const at::Tensor& x) {
  const bool given = seed.has_value() && seed->defined();
  TORCH_CHECK_VALUE(given || p == 0.0, op,
                    ": dropout with p > 0 needs a seed (a one-element int64 tensor), got none");
  if (!given) return;
  const bool where = seed->device().is_cpu() || seed->device() == x.device();
  TORCH_CHECK_TYPE(seed->scalar_type() == at::kLong && seed->numel() == 1 && where, op,
                   ": seed must be a one-element int64 tensor on the CPU or on x's device ",
                   x.device(), ", got ", seed->scalar_type(), " of shape ",
                   text(seed->sym_sizes()), " on ", seed->device());
}

void check_differentiable(const char* op, const ActSpec& spec) {
  TORCH_CHECK(act_info(spec.act).differentiable, op, ": the '", act_info(spec.act).name,
              "' activation has no useful derivative (zero almost everywhere); "
              "backward through it is not implemented, as for torch.heaviside");
}

ActSpec checked_activation_args(const OpCall& c) {
  const ActSpec spec = parse_elementwise(c.op(), "activation", c.text("activation"));
  check_float_tensor(c.op(), "x", c.tensor("x"));
  return spec;
}

ActSpec checked_activation_backward_args(const OpCall& c) {
  const char* op = c.op();
  const ActSpec spec = parse_elementwise(op, "activation", c.text("activation"));
  const at::Tensor& grad_y = c.tensor("grad_y");
  const at::Tensor& saved = c.tensor("saved");
  check_differentiable(op, spec);
  check_float_tensor(op, "grad_y", grad_y);
  check_like_x(op, "saved", saved, grad_y, "grad_y");
  check_shape(op, "saved", saved, grad_y.sym_sizes(), "grad_y");
  return spec;
}

double checked_dropout_args(const OpCall& c) {
  const double p = checked_probability(c.op(), c.real("p"));
  const at::Tensor& x = c.tensor("x");
  check_seed(c.op(), p, c.optional_tensor("seed"), x);
  check_float_tensor(c.op(), "x", x);
  return p;
}

}  // namespace mlpbench
