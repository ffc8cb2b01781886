// The op schemas: the one place where each op's arguments are listed.
// Every kernel is registered boxed and reads its arguments by these names
// (op_call.h): the CPU and CUDA kernels (csrc/cpu/, csrc/cuda/, mlp.cpp),
// the meta kernels (meta.cpp), autograd (autograd.cpp) and autocast
// (autocast.cpp).
//
// `activation` (and `output_activation`) is an activation with its
// parameters, "name" or "name(param=value, ...)": "relu",
// "leaky_relu(negative_slope=0.1)", "gelu(approximate='tanh')",
// "maxout(pieces=3)" (activations.h lists them; op_args.h parses them).
#include <torch/library.h>

TORCH_LIBRARY(mlpbench, m) {
  // y = dropout(act(x @ weight.T + bias)). Returns (y, aux): aux is what
  // backward reads besides y: the pre-activation (gelu, silu), the winning
  // piece as uint8 (maxout), or an empty tensor. seed: see draw_seed; None
  // when dropout_p is 0. The mask is that of dropout(y, dropout_p, seed, offset).
  m.def(
      "linear_act(Tensor x, Tensor weight, Tensor? bias, str activation, float dropout_p, "
      "Tensor? seed, int offset) -> (Tensor, Tensor)");
  // saved: y where the activation differentiates from its output, aux for
  // the others, anything (unused) for identity. Unrequested gradients come
  // back empty.
  m.def(
      "linear_act_backward(Tensor grad_y, Tensor x, Tensor weight, Tensor saved, "
      "str activation, float dropout_p, Tensor? seed, int offset, bool[3] output_mask) "
      "-> (Tensor, Tensor, Tensor)");
  // An elementwise activation (any but maxout).
  m.def("activation(Tensor x, str activation) -> Tensor");
  // saved: the forward's output or input, as the activation's row says.
  m.def("activation_backward(Tensor grad_y, Tensor saved, str activation) -> Tensor");
  // The whole MLP (mlp.h): layer l is linear_act of weights[l] (and biases[l],
  // biases empty for none) with `activation` and dropout (seed, offset + l),
  // the last layer with output_activation and no dropout. Returns (y, hidden,
  // aux): hidden the outputs of every layer but the last, aux each layer's
  // aux; both only for mlp_backward.
  m.def(
      "mlp(Tensor x, Tensor[] weights, Tensor[] biases, str activation, str output_activation, "
      "float dropout_p, Tensor? seed, int offset) -> (Tensor, Tensor[], Tensor[])");
  // Every gradient in one call: (grad_x, or empty unless x_grad; grad_weights;
  // grad_biases, or none without biases).
  m.def(
      "mlp_backward(Tensor grad_y, Tensor x, Tensor[] weights, Tensor y, Tensor[] hidden, "
      "Tensor[] aux, bool has_bias, str activation, str output_activation, float dropout_p, "
      "Tensor? seed, int offset, bool x_grad) -> (Tensor, Tensor[], Tensor[])");
  // Cross-entropy of logits (N, C) or (C,) against class indices (cross_entropy.h).
  // Returns (loss, lse): lse each row's logsumexp, for cross_entropy_backward.
  m.def(
      "cross_entropy(Tensor logits, Tensor target, int ignore_index, str reduction) "
      "-> (Tensor, Tensor)");
  m.def(
      "cross_entropy_backward(Tensor grad_loss, Tensor logits, Tensor target, Tensor lse, "
      "int ignore_index, str reduction) -> Tensor");
  // Inverted dropout; its backward is the same op applied to the gradient.
  m.def("dropout(Tensor x, float p, Tensor? seed, int offset) -> Tensor");
  // A fresh 63-bit dropout seed from torch's default generator of `device`
  // (the CPU's when None), as a one-element int64 tensor on that device: an
  // op, so that torch.compile, torch.export and torch.jit.trace record the
  // draw and draw anew on every call, in the order eager draws, and so that
  // a CUDA graph draws anew on every replay (draw_seed_cuda.cu). The tag
  // keeps compilers from merging or dropping it; the conservative alias
  // analysis keeps TorchScript from folding it into a constant (it has no
  // tensor inputs).
  m.def(torch::schema("draw_seed(Device? device=None) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        {at::Tag::nondeterministic_seeded});
}
