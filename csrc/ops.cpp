// The op schemas (defined once for every backend) and the shared argument
// checks. Kernels live in csrc/cpu/ and csrc/cuda/, meta kernels (shapes
// only, for torch.compile) in csrc/meta.cpp, autograd in csrc/autograd.cpp.
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

std::string known_names() {
  std::string names;
  for (const ActInfo& row : kActivations) {
    if (row.approximate && std::string(row.approximate) != "none") continue;  // gelu once
    names += names.empty() ? "" : ", ";
    names += "'" + std::string(row.name) + "'";
  }
  return names;
}

}  // namespace

ActSpec parse_activation(const char* op, c10::string_view name, double negative_slope,
                         double alpha, c10::string_view approximate, int64_t pieces) {
  TORCH_CHECK_VALUE(approximate == "none" || approximate == "tanh", op,
                    ": approximate must be 'none' or 'tanh', got '", std::string(approximate), "'");
  const ActInfo* found = nullptr;
  for (const ActInfo& row : kActivations) {
    if (name == row.name && (!row.approximate || approximate == row.approximate)) found = &row;
  }
  TORCH_CHECK_VALUE(found, op, ": unknown activation '", std::string(name), "'; expected one of ",
                    known_names());
  ActSpec spec;
  spec.act = found->act;
  // Backward derives these from the saved output, which needs y > 0 <=> x > 0.
  TORCH_CHECK_VALUE(std::isfinite(negative_slope) && negative_slope >= 0.0, op,
                    ": negative_slope must be a finite number >= 0, got ", text(negative_slope));
  TORCH_CHECK_VALUE(std::isfinite(alpha) && alpha >= 0.0, op,
                    ": alpha must be a finite number >= 0, got ", text(alpha));
  spec.params.negative_slope = negative_slope;
  spec.params.alpha = alpha;
  if (found->params & kPieces) {
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
  TORCH_CHECK_VALUE(act_info(spec.act).elementwise, op, ": '", std::string(name),
                    "' is not elementwise (it takes the max over k pieces); use "
                    "linear_act(..., activation='", std::string(name), "')");
  return spec;
}

void check_float_tensor(const char* op, const char* arg, const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  const bool half = t.is_cuda() || t.is_meta();  // meta: the meta kernels, any device
  const bool ok = dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 ||
                  (half && dtype == at::kHalf);
  TORCH_CHECK_TYPE(ok, op, ": ", arg, " must be a float32, float64 or bfloat16 tensor",
                   t.is_cuda() ? " (or float16 on CUDA)" : " (float16 only on CUDA)", ", got ",
                   dtype, " on ", t.device());
}

void check_like_grad(const char* op, const at::Tensor& grad_y, const at::Tensor& saved) {
  TORCH_CHECK_VALUE(grad_y.sym_sizes() == saved.sym_sizes() && grad_y.dtype() == saved.dtype() &&
                        grad_y.device() == saved.device(),
                    op, ": grad_y and saved must have the same shape, dtype and device, got ",
                    text(grad_y.sym_sizes()), " ", grad_y.dtype(), " on ", grad_y.device(), " and ",
                    text(saved.sym_sizes()), " ", saved.dtype(), " on ", saved.device());
}

void check_linear_act_inputs(const char* op, const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const ActSpec& spec) {
  // Sizes as SymInts: the meta kernels run these checks on symbolic shapes.
  check_float_tensor(op, "x", x);
  check_float_tensor(op, "weight", weight);
  TORCH_CHECK_TYPE(weight.scalar_type() == x.scalar_type(), op,
                   ": x and weight must have the same dtype, got x ", x.scalar_type(),
                   " and weight ", weight.scalar_type());
  TORCH_CHECK_VALUE(weight.device() == x.device(), op,
                    ": x and weight must be on the same device, got x on ", x.device(),
                    " and weight on ", weight.device());
  TORCH_CHECK_VALUE(weight.dim() == 2, op, ": weight must be 2-D (out_rows, in_features), got shape ",
                    text(weight.sym_sizes()));
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension (..., in_features)");
  TORCH_CHECK_VALUE(x.sym_size(-1) == weight.sym_size(1), op, ": x's last dimension (",
                    text(x.sym_size(-1)), ") must equal weight's in_features (",
                    text(weight.sym_size(1)), "); x shape ", text(x.sym_sizes()),
                    ", weight shape ", text(weight.sym_sizes()));
  if (bias.has_value()) {
    const auto& b = *bias;
    TORCH_CHECK_TYPE(b.scalar_type() == x.scalar_type(), op,
                     ": bias must have x's dtype ", x.scalar_type(), ", got ", b.scalar_type());
    TORCH_CHECK_VALUE(b.device() == x.device(), op, ": bias must be on x's device ", x.device(),
                      ", got ", b.device());
    TORCH_CHECK_VALUE(b.dim() == 1 && b.sym_size(0) == weight.sym_size(0), op,
                      ": bias must be 1-D with weight.shape[0] = ", text(weight.sym_size(0)),
                      " elements, got shape ", text(b.sym_sizes()));
  }
  TORCH_CHECK_VALUE(weight.sym_size(0) % spec.pieces == 0, op, ": maxout with pieces=",
                    text(spec.pieces), " needs weight rows divisible by pieces, got ",
                    text(weight.sym_size(0)), " rows");
}

LinearActArgs parse_linear_act_args(const char* op, c10::string_view activation,
                                    double negative_slope, double alpha,
                                    c10::string_view approximate, int64_t pieces,
                                    double dropout_p, int64_t offset) {
  LinearActArgs args;
  args.spec = parse_activation(op, activation, negative_slope, alpha, approximate, pieces);
  check_probability(op, dropout_p);
  args.dropout_p = dropout_p;
  args.offset = offset;
  return args;
}

LinearActCall linear_act_call(const char* op, bool backward, const at::Tensor& x,
                              const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              const LinearActArgs& args, const std::optional<at::Tensor>& seed) {
  LinearActCall call;
  call.args = args;
  if (backward) check_differentiable(op, call.spec());
  check_linear_act_inputs(op, x, weight, bias, call.spec());
  call.mask = parse_dropout(op, args.dropout_p, seed, args.offset);
  call.x2 = as_rows(x);
  const auto shapes = linear_act_shapes<int64_t>(x.sizes(), weight.size(0), call.spec());
  call.n = shapes.n;
  call.out_rows = weight.size(0);
  call.out_cols = shapes.out_cols;
  call.y_sizes = shapes.y;
  return call;
}

LinearActCall linear_act_call(bool backward, const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::string_view activation,
                              double negative_slope, double alpha, c10::string_view approximate,
                              int64_t pieces, double dropout_p,
                              const std::optional<at::Tensor>& seed, int64_t offset) {
  const char* op = backward ? "linear_act_backward" : "linear_act";
  return linear_act_call(op, backward, x, weight, bias,
                         parse_linear_act_args(op, activation, negative_slope, alpha, approximate,
                                               pieces, dropout_p, offset),
                         seed);
}

std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask) {
  const at::Tensor none = at::empty({0}, x.options());
  return {output_mask[0] ? at::mm(grad_pre, weight).view(x.sizes()) : none,
          output_mask[1] ? at::mm(grad_pre.t(), call.x2) : none};
}

void check_probability(const char* op, double p) {
  TORCH_CHECK_VALUE(p >= 0.0 && p <= 1.0, op, ": dropout probability p must be in [0, 1], got ",
                    text(p));
}

void check_seed(const char* op, double p, const std::optional<at::Tensor>& seed) {
  const bool given = seed.has_value() && seed->defined();
  TORCH_CHECK_VALUE(given || p == 0.0, op,
                    ": dropout with p > 0 needs a seed (a one-element int64 tensor), got none");
  if (!given) return;
  TORCH_CHECK_TYPE(seed->scalar_type() == at::kLong && seed->numel() == 1 &&
                       (seed->device().is_cpu() || seed->is_meta()),
                   op, ": seed must be a one-element int64 tensor on the CPU, got ",
                   seed->scalar_type(), " of shape ", text(seed->sym_sizes()), " on ",
                   seed->device());
}

uint64_t seed_value(const at::Tensor& seed) {
  // A seed made inside a torch.func transform is a wrapper without storage
  // of its own: item() reads through it.
  if (!seed.has_storage()) return static_cast<uint64_t>(seed.item<int64_t>());
  return static_cast<uint64_t>(*seed.contiguous().const_data_ptr<int64_t>());
}

DropoutMask parse_dropout(const char* op, double p, const std::optional<at::Tensor>& seed,
                          int64_t offset) {
  check_probability(op, p);
  check_seed(op, p, seed);
  if (p == 0.0) return make_dropout_mask(0.0, 0, 0);
  return make_dropout_mask(p, seed_value(*seed), static_cast<uint64_t>(offset));
}

std::string text(int64_t v) { return std::to_string(v); }

std::string text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string text(const c10::SymInt& v) {
  const auto known = v.maybe_as_int();
  return known ? std::to_string(*known) : std::string("?");
}

std::string text(c10::SymIntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + text(sizes[i]);
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
  TORCH_CHECK(act_info(spec.act).differentiable, op, ": the '", act_info(spec.act).name,
              "' activation has no useful derivative (zero almost everywhere); "
              "backward through it is not implemented, as for torch.heaviside");
}

}  // namespace mlpbench

TORCH_LIBRARY(mlpbench, m) {
  // Returns (y, aux): aux is what backward reads besides y (op_args.h: Aux).
  // seed (dropout): see draw_seed; None when dropout_p is 0.
  m.def(
      "linear_act(Tensor x, Tensor weight, Tensor? bias, str activation, float negative_slope, "
      "float alpha, str approximate, int pieces, float dropout_p, Tensor? seed, int offset) "
      "-> (Tensor, Tensor)");
  // saved: y for the activations whose derivative reads the output, aux for
  // the others, anything (unused) for identity. Unrequested gradients come
  // back empty.
  m.def(
      "linear_act_backward(Tensor grad_y, Tensor x, Tensor weight, Tensor saved, "
      "str activation, float negative_slope, float alpha, str approximate, int pieces, "
      "float dropout_p, Tensor? seed, int offset, bool[3] output_mask) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "activation(Tensor x, str name, float negative_slope, float alpha, str approximate) "
      "-> Tensor");
  // saved: the forward's output or input, as the activation's row says.
  m.def(
      "activation_backward(Tensor grad_y, Tensor saved, str name, float negative_slope, "
      "float alpha, str approximate) -> Tensor");
  // The whole MLP (mlp.h): layer l is linear_act of weights[l] (and biases[l],
  // biases empty for none) with the hidden activation and dropout (seed,
  // offset + l), the last layer with output_activation and no dropout.
  // Returns (y, hidden, aux): hidden the outputs of every layer but the last,
  // aux each layer's aux; both only for mlp_backward.
  m.def(
      "mlp(Tensor x, Tensor[] weights, Tensor[] biases, str activation, float negative_slope, "
      "float alpha, str approximate, int pieces, str output_activation, float dropout_p, "
      "Tensor? seed, int offset) -> (Tensor, Tensor[], Tensor[])");
  // Every gradient in one call: (grad_x, or empty unless x_grad; grad_weights;
  // grad_biases, or none without biases).
  m.def(
      "mlp_backward(Tensor grad_y, Tensor x, Tensor[] weights, Tensor y, Tensor[] hidden, "
      "Tensor[] aux, bool has_bias, str activation, float negative_slope, float alpha, "
      "str approximate, int pieces, str output_activation, float dropout_p, Tensor? seed, "
      "int offset, bool x_grad) -> (Tensor, Tensor[], Tensor[])");
  // Inverted dropout; its backward is the same op applied to the gradient.
  m.def("dropout(Tensor x, float p, Tensor? seed, int offset) -> Tensor");
  // A fresh 63-bit dropout seed from torch's default CPU generator, as a
  // one-element int64 tensor: an op, so that torch.compile, torch.export and
  // torch.jit.trace record the draw and draw anew on every call, in the order
  // eager draws. The tag keeps compilers from merging or dropping it; the
  // conservative alias analysis keeps TorchScript from folding it into a
  // constant (it has no inputs).
  m.def(torch::schema("draw_seed() -> Tensor", c10::AliasAnalysisKind::CONSERVATIVE),
        {at::Tag::nondeterministic_seeded});
}
