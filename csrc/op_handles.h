// Typed handles of the registered ops, for the C++ code that calls them
// through the dispatcher: the autograd kernels (autograd.cpp, composite.cpp)
// and the Python entry points (python_module.cpp), which skip torch.ops'
// Python-side boxing.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <array>
#include <optional>
#include <tuple>
#include <vector>

namespace mlpbench::op_handles {

using Seed = const std::optional<at::Tensor>&;
using LinearActSig = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::string_view,
    double, double, c10::string_view, int64_t, double, Seed, int64_t);
using LinearActBackwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view,
    double, double, c10::string_view, int64_t, double, Seed, int64_t, std::array<bool, 3>);
using ActivationSig = at::Tensor(const at::Tensor&, c10::string_view, double, double,
                                 c10::string_view);
using ActivationBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                         double, double, c10::string_view);
using DropoutSig = at::Tensor(const at::Tensor&, double, Seed, int64_t);
using DrawSeedSig = at::Tensor();
using MlpSig = std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>(
    const at::Tensor&, at::TensorList, at::TensorList, c10::string_view, double, double,
    c10::string_view, int64_t, c10::string_view, double, Seed, int64_t);
using MlpBackwardSig = std::tuple<at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>(
    const at::Tensor&, const at::Tensor&, at::TensorList, const at::Tensor&, at::TensorList,
    at::TensorList, bool, c10::string_view, double, double, c10::string_view, int64_t,
    c10::string_view, double, Seed, int64_t, bool);

template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// Looked up once, on first use (after the TORCH_LIBRARY registrations).
inline const c10::TypedOperatorHandle<LinearActSig>& linear_act() {
  static const auto op = find_op<LinearActSig>("mlpbench::linear_act");
  return op;
}
inline const c10::TypedOperatorHandle<LinearActBackwardSig>& linear_act_backward() {
  static const auto op = find_op<LinearActBackwardSig>("mlpbench::linear_act_backward");
  return op;
}
inline const c10::TypedOperatorHandle<ActivationSig>& activation() {
  static const auto op = find_op<ActivationSig>("mlpbench::activation");
  return op;
}
inline const c10::TypedOperatorHandle<ActivationBackwardSig>& activation_backward() {
  static const auto op = find_op<ActivationBackwardSig>("mlpbench::activation_backward");
  return op;
}
inline const c10::TypedOperatorHandle<DropoutSig>& dropout() {
  static const auto op = find_op<DropoutSig>("mlpbench::dropout");
  return op;
}
inline const c10::TypedOperatorHandle<DrawSeedSig>& draw_seed() {
  static const auto op = find_op<DrawSeedSig>("mlpbench::draw_seed");
  return op;
}
inline const c10::TypedOperatorHandle<MlpSig>& mlp() {
  static const auto op = find_op<MlpSig>("mlpbench::mlp");
  return op;
}
inline const c10::TypedOperatorHandle<MlpBackwardSig>& mlp_backward() {
  static const auto op = find_op<MlpBackwardSig>("mlpbench::mlp_backward");
  return op;
}

}  // namespace mlpbench::op_handles
