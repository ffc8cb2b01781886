// Calls built from another call's arguments, by name (op_call.h).
#include "op_call.h"

namespace mlpbench {

SavedArguments save_arguments(const OpCall& call) {
  SavedArguments saved;
  saved.schema = &call.schema();
  saved.values = call.arguments();
  for (c10::IValue& v : saved.values) {
    if (v.isTensor() || v.isTensorList() || v.isOptionalTensorList()) v = c10::IValue();
  }
  return saved;
}

torch::jit::Stack call_stack(const c10::OperatorHandle& target, NamedValues given,
                             const SavedArguments& from) {
  const auto& args = target.schema().arguments();
  static const std::vector<c10::Argument> kNone;
  const auto& from_args = from.schema ? from.schema->arguments() : kNone;
  torch::jit::Stack stack;
  stack.reserve(args.size());
  for (const c10::Argument& arg : args) {
    const c10::IValue* value = nullptr;
    for (const auto& [name, v] : given) {
      if (arg.name() == name) value = &v;
    }
    for (size_t i = 0; !value && i < from_args.size(); ++i) {
      if (from_args[i].name() == arg.name()) value = &from.values[i];
    }
    TORCH_INTERNAL_ASSERT(value, target.schema().name(), ": no value for argument ", arg.name());
    stack.push_back(*value);
  }
  return stack;
}

}  // namespace mlpbench
