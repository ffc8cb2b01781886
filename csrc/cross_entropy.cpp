// cross_entropy (cross_entropy.h): its argument checks, its ATen composition,
// and its CUDA kernels, which are that composition (the loss of a small
// network is a sliver of a CUDA step; on the CPU, stock's log_softmax over
// ten classes is not, hence cpu/cross_entropy_cpu.cpp).
#include "cross_entropy.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "checks.h"
#include "op_args.h"
#include "op_call.h"

namespace mlpbench {
namespace {

Reduction parse_reduction(const char* op, std::string_view text) {
  if (text == "mean") return Reduction::Mean;
  if (text == "sum") return Reduction::Sum;
  if (text == "none") return Reduction::None;
  TORCH_CHECK_VALUE(false, op, ": reduction must be 'mean', 'sum' or 'none', got '",
                    std::string(text), "'");
  return Reduction::Mean;
}

}  // namespace

c10::SymIntArrayRef cross_entropy_loss_sizes(const at::Tensor& target, Reduction reduction) {
  return reduction == Reduction::None ? target.sym_sizes() : c10::SymIntArrayRef();
}

CrossEntropyArgs checked_cross_entropy_args(const OpCall& c) {
  const char* op = c.op();
  const at::Tensor& logits = c.tensor("logits");
  const at::Tensor& target = c.tensor("target");
  check_float_tensor(op, "logits", logits);
  TORCH_CHECK_VALUE(logits.dim() == 1 || logits.dim() == 2, op,
                    ": logits must be (N, C) or (C,) (class indices as targets), got shape ",
                    text(logits.sym_sizes()));
  TORCH_CHECK_TYPE(target.scalar_type() == at::kLong, op,
                   ": target must be an int64 tensor of class indices, got ",
                   target.scalar_type());
  check_on_device_of(op, "target", target, logits, "logits");
  check_shape(op, "target", target, logits.sym_sizes().slice(0, logits.dim() - 1),
              "logits' leading dimension");
  return {parse_reduction(op, c.text("reduction")), c.integer("ignore_index")};
}

CrossEntropyArgs checked_cross_entropy_backward_args(const OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_args(c);
  const char* op = c.op();
  const at::Tensor& logits = c.tensor("logits");
  const at::Tensor& target = c.tensor("target");
  const at::Tensor& grad_loss = c.tensor("grad_loss");
  const at::Tensor& lse = c.tensor("lse");
  check_like_x(op, "grad_loss", grad_loss, logits, "logits");
  check_shape(op, "grad_loss", grad_loss, cross_entropy_loss_sizes(target, args.reduction),
              "the loss");
  check_on_device_of(op, "lse", lse, logits, "logits");
  TORCH_CHECK_TYPE(lse.scalar_type() == at::kDouble, op,
                   ": lse must be float64 (what cross_entropy returned), got ", lse.scalar_type());
  check_shape(op, "lse", lse, target.sym_sizes(), "target");
  return args;
}

void bad_target(const char* op, int64_t row, int64_t value, int64_t classes,
                int64_t ignore_index) {
  TORCH_CHECK_INDEX(false, op, ": target must hold class indices in [0, ", classes,
                    ") or ignore_index (", ignore_index, "); row ", row, " holds ", value);
  std::abort();  // unreachable: TORCH_CHECK_INDEX(false, ...) throws
}

std::pair<at::Tensor, at::Tensor> cross_entropy_composite(const at::Tensor& logits,
                                                          const at::Tensor& target,
                                                          const CrossEntropyArgs& args) {
  const int64_t reduction = args.reduction == Reduction::None  ? at::Reduction::None
                            : args.reduction == Reduction::Sum ? at::Reduction::Sum
                                                               : at::Reduction::Mean;
  at::Tensor loss = at::cross_entropy_loss(logits, target, std::nullopt, reduction,
                                           args.ignore_index, 0.0);
  at::Tensor lse = at::logsumexp(logits.detach().to(at::kDouble), {-1});
  return {std::move(loss), std::move(lse)};
}

#ifdef MLPBENCH_WITH_CUDA
namespace {

// The CUDA kernels: ATen's ops, the targets checked first (a clear error
// rather than a device-side assert; it costs a wait for the device).
void check_target_values(const char* op, const at::Tensor& target, int64_t classes,
                         int64_t ignore_index) {
  const at::Tensor bad = at::logical_and(at::logical_or(target < 0, target >= classes),
                                         target != ignore_index).reshape({-1});
  if (!at::any(bad).item<bool>()) return;
  const int64_t row = at::argmax(bad.to(at::kInt)).item<int64_t>();
  bad_target(op, row, target.reshape({-1})[row].item<int64_t>(), classes, ignore_index);
}

void cross_entropy_cuda(OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_args(c);
  const at::Tensor& logits = c.tensor("logits");
  const at::Tensor& target = c.tensor("target");
  check_target_values(c.op(), target, logits.size(-1), args.ignore_index);
  auto [loss, lse] = cross_entropy_composite(logits, target, args);
  c.returns(std::move(loss), std::move(lse));
}

void cross_entropy_backward_cuda(OpCall& c) {
  const CrossEntropyArgs args = checked_cross_entropy_backward_args(c);
  const at::Tensor& logits = c.tensor("logits");
  const at::Tensor& target = c.tensor("target");
  const at::Tensor& grad_loss = c.tensor("grad_loss");
  const at::Tensor keep = target != args.ignore_index;
  at::Tensor g = grad_loss.to(at::toOpMathType(logits.scalar_type()));
  if (args.reduction == Reduction::Mean) g = g / keep.sum();
  g = at::where(keep, g, at::zeros_like(g)).unsqueeze(-1);
  at::Tensor grad = at::softmax(logits, -1, g.scalar_type());
  grad.scatter_add_(-1, at::where(keep, target, 0).unsqueeze(-1),
                    at::where(keep, -1.0, 0.0).to(g.scalar_type()).unsqueeze(-1));
  c.returns((grad * g).to(logits.scalar_type()));
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  m.impl("cross_entropy", boxed<&cross_entropy_cuda>());
  m.impl("cross_entropy_backward", boxed<&cross_entropy_backward_cuda>());
}
#endif

}  // namespace mlpbench
