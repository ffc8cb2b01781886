// The ops' scalar arguments, parsed and checked once per call into the
// structs every layer works with (ActSpec, LinearActArgs, MlpArgs), and the
// activation argument's text form. Errors use TORCH_CHECK_VALUE, which
// Python sees as ValueError.
#pragma once

#include <c10/core/SymInt.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "activations.h"
#include "op_call.h"

namespace mlpbench {

// An activation argument: "name" or "name(param=value, ...)", as in
// "leaky_relu(negative_slope=0.1)", "gelu(approximate='tanh')" or
// "maxout(pieces=3)"; the parameters it leaves out take their defaults
// (kParams). `arg` is the argument's name, for messages.
ActSpec parse_activation(const char* op, const char* arg, std::string_view text);

// The same, for the elementwise ops: any activation but maxout.
ActSpec parse_elementwise(const char* op, const char* arg, std::string_view text);

// Numbers and shapes for error messages, formatted with snprintf rather than
// std::ostream: on the GPU machine's toolchain, formatting a number through
// std::ostream inside this extension crashed the process while an error was
// being raised (strings were fine), so messages carry numbers as text.
std::string text(int64_t v);
std::string text(double v);
std::string text(const c10::SymInt& v);  // "?" where symbolic
std::string text(c10::SymIntArrayRef sizes);

// p in [0, 1], else ValueError.
double checked_probability(const char* op, double p);

// linear_act's scalar arguments: the activation and the dropout spec (the
// seed is a tensor: the kernels read it).
struct LinearActArgs {
  ActSpec spec;
  double dropout_p = 0.0;
  int64_t offset = 0;
  bool dropout() const { return dropout_p > 0.0; }
};

LinearActArgs parse_linear_act_args(const OpCall& call);

// mlp's: the hidden layers' activation and dropout, and the last layer's
// activation.
struct MlpArgs {
  LinearActArgs hidden;  // offset: the first hidden layer's
  ActSpec output;

  // Layer l of `layers`: the hidden activation with dropout at offset + l,
  // or for the last layer the output activation without dropout.
  LinearActArgs layer(size_t l, size_t layers) const;
};

MlpArgs parse_mlp_args(const OpCall& call);

}  // namespace mlpbench
