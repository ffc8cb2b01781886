// The op schemas (defined once for every backend) and the shared argument
// checks. Kernels live in csrc/cpu/ and csrc/cuda/; autograd and fake (meta)
// kernels are registered from Python in mlpbench/ops.py.
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "op_args.h"

namespace mlpbench {

namespace {

struct NamedAct {
  const char* name;
  Act act;
};
constexpr NamedAct kActivationNames[] = {
    {"identity", Act::Identity}, {"sigmoid", Act::Sigmoid}, {"tanh", Act::Tanh},
    {"relu", Act::Relu},         {"leaky_relu", Act::LeakyRelu}, {"elu", Act::Elu},
    {"gelu", Act::Gelu},         {"silu", Act::Silu},       {"maxout", Act::Maxout},
    {"step", Act::Step},
};

std::string known_names() {
  std::string names;
  for (const auto& entry : kActivationNames) {
    names += names.empty() ? "" : ", ";
    names += "'" + std::string(entry.name) + "'";
  }
  return names;
}

}  // namespace

ActSpec parse_activation(const char* op, c10::string_view name, double negative_slope,
                         double alpha, c10::string_view approximate, int64_t pieces) {
  ActSpec spec;
  bool found = false;
  for (const auto& entry : kActivationNames) {
    if (name == entry.name) {
      spec.act = entry.act;
      found = true;
    }
  }
  TORCH_CHECK_VALUE(found, op, ": unknown activation '", std::string(name), "'; expected one of ",
                    known_names());
  TORCH_CHECK_VALUE(approximate == "none" || approximate == "tanh", op,
                    ": approximate must be 'none' or 'tanh', got '", std::string(approximate), "'");
  if (spec.act == Act::Gelu && approximate == "tanh") spec.act = Act::GeluTanh;
  // Backward derives these from the saved output, which needs y > 0 <=> x > 0.
  TORCH_CHECK_VALUE(std::isfinite(negative_slope) && negative_slope >= 0.0, op,
                    ": negative_slope must be a finite number >= 0, got ", text(negative_slope));
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha >= 0.0, op,
                    ": alpha must be a finite number >= 0, got ", text(alpha));
  spec.params.negative_slope = negative_slope;
  spec.params.alpha = alpha;
  if (spec.act == Act::Maxout) {
    // The argmax saved for backward is a uint8.
    TORCH_CHECK_VALUE(pieces >= 1 && pieces <= 255, op,
                      ": pieces (maxout's k) must be in [1, 255], got ", text(pieces));
    spec.pieces = pieces;
  }
  return spec;
}

ActSpec parse_elementwise(const char* op, c10::string_view name, double negative_slope,
                          double alpha, c10::string_view approximate) {
  const ActSpec spec = parse_activation(op, name, negative_slope, alpha, approximate, 1);
  TORCH_CHECK_VALUE(spec.act != Act::Maxout, op,
                    ": 'maxout' is not elementwise (it takes the max over k pieces); use "
                    "linear_act(..., activation='maxout')");
  return spec;
}

void check_float_tensor(const char* op, const char* arg, const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  const bool ok = dtype == at::kFloat || dtype == at::kDouble ||
                  (t.is_cuda() && (dtype == at::kHalf || dtype == at::kBFloat16));
  TORCH_CHECK_TYPE(ok, op, ": ", arg, " must be a float32 or float64 tensor",
                   t.is_cuda() ? " (or float16/bfloat16 on CUDA)" : "", ", got ", dtype, " on ",
                   t.device());
}

void check_like_grad(const char* op, const at::Tensor& grad_y, const at::Tensor& saved) {
  TORCH_CHECK_VALUE(grad_y.sizes() == saved.sizes() && grad_y.dtype() == saved.dtype() &&
                        grad_y.device() == saved.device(),
                    op, ": grad_y and saved must have the same shape, dtype and device, got ",
                    text(grad_y.sizes()), " ", grad_y.dtype(), " on ", grad_y.device(), " and ",
                    text(saved.sizes()), " ", saved.dtype(), " on ", saved.device());
}

void check_linear_act_inputs(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec) {
  const char* op = "linear_act";
  check_float_tensor(op, "x", x);
  check_float_tensor(op, "weight", weight);
  TORCH_CHECK_TYPE(weight.scalar_type() == x.scalar_type(), op,
                   ": x and weight must have the same dtype, got x ", x.scalar_type(),
                   " and weight ", weight.scalar_type());
  TORCH_CHECK_VALUE(weight.device() == x.device(), op,
                    ": x and weight must be on the same device, got x on ", x.device(),
                    " and weight on ", weight.device());
  TORCH_CHECK_VALUE(weight.dim() == 2, op,
                    ": weight must be 2-D (out_rows, in_features), got shape ", text(weight.sizes()));
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension (..., in_features)");
  TORCH_CHECK_VALUE(x.size(-1) == weight.size(1), op, ": x's last dimension (", text(x.size(-1)),
                    ") must equal weight's in_features (", text(weight.size(1)), "); x shape ",
                    text(x.sizes()), ", weight shape ", text(weight.sizes()));
  if (bias.has_value()) {
    const auto& b = *bias;
    TORCH_CHECK_TYPE(b.scalar_type() == x.scalar_type(), op,
                     ": bias must have x's dtype ", x.scalar_type(), ", got ", b.scalar_type());
    TORCH_CHECK_VALUE(b.device() == x.device(), op, ": bias must be on x's device ", x.device(),
                      ", got ", b.device());
    TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == weight.size(0), op,
                      ": bias must be 1-D with weight.shape[0] = ", text(weight.size(0)),
                      " elements, got shape ", text(b.sizes()));
  }
  if (spec.act == Act::Maxout) {
    TORCH_CHECK_VALUE(weight.size(0) % spec.pieces == 0, op, ": maxout with pieces=",
                      text(spec.pieces), " needs weight rows divisible by pieces, got ",
                      text(weight.size(0)), " rows");
  }
}

LinearActCall linear_act_call(bool backward, const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::string_view activation,
                              double negative_slope, double alpha, c10::string_view approximate,
                              int64_t pieces, double dropout_p, int64_t seed, int64_t offset) {
  const char* op = backward ? "linear_act_backward" : "linear_act";
  LinearActCall call;
  call.spec = parse_activation(op, activation, negative_slope, alpha, approximate, pieces);
  if (backward) check_differentiable(op, call.spec);
  check_linear_act_inputs(x, weight, bias, call.spec);
  call.mask = parse_dropout(op, dropout_p, seed, offset);
  call.dropout = dropout_p > 0.0;
  call.out_rows = weight.size(0);
  call.out_cols = call.out_rows / call.spec.pieces;
  call.x2 = as_rows(x);
  call.n = call.x2.size(0);
  call.y_sizes = x.sizes().vec();
  call.y_sizes.back() = call.out_cols;
  return call;
}

std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask) {
  const at::Tensor none = at::empty({0}, x.options());
  return {output_mask[0] ? at::mm(grad_pre, weight).view(x.sizes()) : none,
          output_mask[1] ? at::mm(grad_pre.t(), call.x2) : none};
}

DropoutMask parse_dropout(const char* op, double p, int64_t seed, int64_t offset) {
  TORCH_CHECK_VALUE(p >= 0.0 && p <= 1.0, op, ": dropout probability p must be in [0, 1], got ",
                    text(p));
  return make_dropout_mask(p, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
}

std::string text(int64_t v) { return std::to_string(v); }

std::string text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string text(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

namespace {
std::atomic<bool> poison_outputs{false};
}  // namespace

void set_debug_poison(bool enabled) { poison_outputs = enabled; }
bool debug_poison() { return poison_outputs; }

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (poison_outputs) {
    if (at::isFloatingType(out.scalar_type())) {
      out.fill_(std::numeric_limits<double>::quiet_NaN());
    } else {
      out.fill_(255);
    }
  }
  return out;
}

void check_differentiable(const char* op, const ActSpec& spec) {
  TORCH_CHECK(spec.act != Act::Step, op,
              ": the 'step' activation has no useful derivative (zero almost everywhere); "
              "backward through it is not implemented, as for torch.heaviside");
}

}  // namespace mlpbench

TORCH_LIBRARY(mlpbench, m) {
  // Returns (y, aux): aux is the pre-activation for gelu/silu, the uint8 argmax
  // of each unit's pieces for maxout, and an empty tensor otherwise.
  m.def(
      "linear_act(Tensor x, Tensor weight, Tensor? bias, str activation, float negative_slope, "
      "float alpha, str approximate, int pieces, float dropout_p, int seed, int offset) "
      "-> (Tensor, Tensor)");
  // saved: y for the output-derivable activations, aux for gelu/silu/maxout,
  // anything (unused) for identity. Unrequested gradients come back empty.
  m.def(
      "linear_act_backward(Tensor grad_y, Tensor x, Tensor weight, Tensor saved, "
      "str activation, float negative_slope, float alpha, str approximate, int pieces, "
      "float dropout_p, int seed, int offset, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def(
      "activation(Tensor x, str name, float negative_slope, float alpha, str approximate) "
      "-> Tensor");
  // saved: the forward's output for the output-derivable activations, its input otherwise.
  m.def(
      "activation_backward(Tensor grad_y, Tensor saved, str name, float negative_slope, "
      "float alpha, str approximate) -> Tensor");
  // Inverted dropout; its backward is the same op applied to the gradient.
  m.def("dropout(Tensor x, float p, int seed, int offset) -> Tensor");
}
