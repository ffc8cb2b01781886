// A boxed call of one of the ops: its arguments on the dispatcher's stack,
// read by their names in the op's schema. The schema (ops.cpp) is the one
// place where an op's argument list is written; every kernel (CPU, CUDA,
// meta, autograd, autocast) is registered boxed and reads what it needs by
// name, and a call made from another op's arguments (autograd calling the
// backward op) takes them by name too (call_stack).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <torch/library.h>

#include <array>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace mlpbench {

class OpCall {
 public:
  OpCall(const c10::OperatorHandle& op, torch::jit::Stack* stack)
      : handle_(&op),
        schema_(&op.schema()),
        stack_(stack),
        first_(stack->size() - op.schema().arguments().size()),
        // "mlpbench::linear_act" -> "linear_act", for error messages.
        op_(op.schema().name().c_str() + op.schema().name().find("::") + 2) {}

  // The op's name without its namespace ("linear_act").
  const char* op() const { return op_; }
  const c10::FunctionSchema& schema() const { return *schema_; }
  const c10::OperatorHandle& handle() const { return *handle_; }
  torch::jit::Stack* stack() const { return stack_; }

  // The argument `name` (which the schema must have).
  const c10::IValue& arg(const char* name) const { return (*stack_)[first_ + index(name)]; }
  const at::Tensor& tensor(const char* name) const { return arg(name).toTensor(); }
  std::optional<at::Tensor> optional_tensor(const char* name) const {
    const c10::IValue& v = arg(name);
    return v.isNone() ? std::nullopt : std::optional<at::Tensor>(v.toTensor());
  }
  std::vector<at::Tensor> tensors(const char* name) const { return arg(name).toTensorVector(); }
  double real(const char* name) const { return arg(name).toDouble(); }
  int64_t integer(const char* name) const { return arg(name).toInt(); }
  bool flag(const char* name) const { return arg(name).toBool(); }
  std::string_view text(const char* name) const { return arg(name).toStringView(); }
  template <size_t N> std::array<bool, N> flags(const char* name) const {
    const auto list = arg(name).toBoolList();
    std::array<bool, N> out{};
    for (size_t i = 0; i < N && i < list.size(); ++i) out[i] = list[i];
    return out;
  }

  // The arguments, as they are (to call another op with them).
  std::vector<c10::IValue> arguments() const {
    return {stack_->begin() + static_cast<std::ptrdiff_t>(first_), stack_->end()};
  }

  // Replaces the arguments on the stack with the outputs.
  template <typename... Outputs> void returns(Outputs&&... outputs) {
    torch::jit::drop(*stack_, stack_->size() - first_);
    torch::jit::push(*stack_, std::forward<Outputs>(outputs)...);
  }

 private:
  // The schema's lists are short (at most 17 arguments) and most names
  // differ in their first letter, so a scan costs a few nanoseconds.
  size_t index(const char* name) const {
    const auto& args = schema_->arguments();
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].name() == name) return i;
    }
    TORCH_INTERNAL_ASSERT(false, op_, " has no argument ", name);
    return 0;
  }

  const c10::OperatorHandle* handle_;
  const c10::FunctionSchema* schema_;
  torch::jit::Stack* stack_;
  size_t first_;
  const char* op_;
};

template <void (*kernel)(OpCall&)>
void run_boxed(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  OpCall call(op, stack);
  kernel(call);
}

// The registration of a boxed kernel, kernel(OpCall&).
template <void (*kernel)(OpCall&)>
torch::CppFunction boxed() {
  return torch::CppFunction::makeFromBoxedFunction<&run_boxed<kernel>>();
}

// The registered op `name` ("mlpbench::linear_act_backward").
inline c10::OperatorHandle find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

// A call's scalar arguments as it was made, with its schema (tensors replaced
// by None: autograd saves those itself).
struct SavedArguments {
  const c10::FunctionSchema* schema = nullptr;
  std::vector<c10::IValue> values;
};

SavedArguments save_arguments(const OpCall& call);

// The stack of a call of `target`: each argument from `given` by name where
// it is there, else `from`'s argument of the same name (autograd's backward
// calls take the forward's activation, dropout_p and offset this way).
using NamedValues = std::initializer_list<std::pair<const char*, c10::IValue>>;
torch::jit::Stack call_stack(const c10::OperatorHandle& target, NamedValues given,
                             const SavedArguments& from = {});

}  // namespace mlpbench
