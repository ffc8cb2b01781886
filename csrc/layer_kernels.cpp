// A layer's checked call, and what every backend's layer kernels share
// (layer_kernels.h).
#include "layer_kernels.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>

namespace mlpbench {

LinearActCall layer_call(const at::Tensor& x, const at::Tensor& weight, const LinearActArgs& args,
                         const std::optional<at::Tensor>& seed) {
  LinearActCall call;
  call.args = args;
  call.mask = dropout_mask(args.dropout_p, seed, args.offset);
  call.x2 = as_rows(x);
  const auto shapes = linear_act_shapes<int64_t>(x.sizes(), weight.size(0), args.spec);
  call.n = shapes.n;
  call.out_rows = weight.size(0);
  call.out_cols = shapes.out_cols;
  call.y_sizes = shapes.y;
  return call;
}

void check_saved(const char* op, const std::string& name, const at::Tensor& saved,
                 const ActSpec& spec, const at::Tensor& x) {
  if (act_info(spec.act).saves == Saves::Nothing) return;  // never read
  check_on_device_of(op, name, saved, x);
  const at::ScalarType want = aux_dtype(spec, x.scalar_type());
  TORCH_CHECK_TYPE(saved.scalar_type() == want, op, ": ", name, " must be ", want, " for '",
                   act_info(spec.act).name, "', got ", saved.scalar_type());
}

void check_layer_grads(const char* op, const std::string& layer, const LinearActCall& call,
                       const at::Tensor& x, const at::Tensor* grad_y, const std::string& g,
                       const at::Tensor& saved, const std::string& s) {
  if (grad_y) {
    check_like_x(op, layer + g, *grad_y, x);
    check_shape(op, layer + g, *grad_y, c10::fromIntArrayRefSlow(call.y_sizes), "y");
  }
  check_saved(op, layer + s, saved, call.spec(), x);
  if (act_info(call.spec().act).saves == Saves::Nothing) return;
  TORCH_CHECK_VALUE(saved.numel() == call.n * call.out_cols, op, ": ", layer, s, " must hold ",
                    text(call.n * call.out_cols), " elements (y's), got shape ",
                    text(saved.sym_sizes()));
}

at::Tensor aten_mm(const at::Tensor& a, const at::Tensor& b) { return at::mm(a, b); }

std::pair<at::Tensor, at::Tensor> input_grads(const LinearActCall& call, const at::Tensor& grad_pre,
                                              const at::Tensor& x, const at::Tensor& weight,
                                              std::array<bool, 3> output_mask, Product mm) {
  const at::Tensor none = at::empty({0}, x.options());
  return {output_mask[0] ? LinearActCall::shaped(mm(grad_pre, weight), x.sizes()) : none,
          output_mask[1] ? mm(grad_pre.t(), call.x2) : none};
}

LinearActCall linear_act_op_call(const OpCall& c, bool backward) {
  const char* op = c.op();
  const LinearActArgs args = parse_linear_act_args(c);
  const at::Tensor& x = c.tensor("x");
  const at::Tensor& weight = c.tensor("weight");
  const std::optional<at::Tensor> seed = c.optional_tensor("seed");
  if (backward) check_differentiable(op, args.spec);
  check_linear_act_inputs(op, x, weight, backward ? std::nullopt : c.optional_tensor("bias"),
                          args.spec);
  check_seed(op, args.dropout_p, seed, x);
  LinearActCall call = layer_call(x, weight, args, seed);
  if (backward) check_layer_grads(op, "", call, x, &c.tensor("grad_y"), "grad_y", c.tensor("saved"), "saved");
  return call;
}

}  // namespace mlpbench
