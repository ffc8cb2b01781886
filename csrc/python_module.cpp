// The Python extension module. Importing it runs the TORCH_LIBRARY
// registrations of the other sources; it also exposes the activation table,
// the raw Philox generator (tests check it against the published vectors),
// and direct entry points to the ops (see ops_entry_points below).
#include <torch/extension.h>

#include <string>
#include <utility>

#include "op_args.h"
#include "op_handles.h"
#include "philox.h"
#include "cpu/simd.h"

namespace {

std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> philox4x32(
    std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> counter,
    std::tuple<uint32_t, uint32_t> key) {
  const auto [c0, c1, c2, c3] = counter;
  const auto [k0, k1] = key;
  const mlpbench::Philox4 r = mlpbench::philox4x32_10(c0, c1, c2, c3, k0, k1);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
}

// The ops, called through the dispatcher exactly as torch.ops.mlpbench.* calls
// them (autograd, device, fake and Python dispatch keys alike), but without
// torch.ops' Python-side argument boxing (docs/cpu-tuning.md).
// mlpbench/ops.py uses these outside torch.compile, which
// must see torch.ops to put the op in its graph.
void ops_entry_points(pybind11::module_& m) {
  namespace oh = mlpbench::op_handles;
  using Seed = std::optional<at::Tensor>;
  m.def("linear_act", [](const at::Tensor& x, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias, const std::string& activation,
                         double negative_slope, double alpha, const std::string& approximate,
                         int64_t pieces, double dropout_p, const Seed& seed, int64_t offset) {
    return oh::linear_act().call(x, weight, bias, activation, negative_slope, alpha, approximate,
                                 pieces, dropout_p, seed, offset);
  }, pybind11::arg("x"), pybind11::arg("weight"), pybind11::arg("bias"),
        pybind11::arg("activation"), pybind11::arg("negative_slope"), pybind11::arg("alpha"),
        pybind11::arg("approximate"), pybind11::arg("pieces"), pybind11::arg("dropout_p"),
        pybind11::arg("seed"), pybind11::arg("offset"));
  m.def("activation", [](const at::Tensor& x, const std::string& name, double negative_slope,
                         double alpha, const std::string& approximate) {
    return oh::activation().call(x, name, negative_slope, alpha, approximate);
  }, pybind11::arg("x"), pybind11::arg("name"), pybind11::arg("negative_slope"),
        pybind11::arg("alpha"), pybind11::arg("approximate"));
  m.def("dropout", [](const at::Tensor& x, double p, const Seed& seed, int64_t offset) {
    return oh::dropout().call(x, p, seed, offset);
  }, pybind11::arg("x"), pybind11::arg("p"), pybind11::arg("seed"), pybind11::arg("offset"));
  m.def("mlp", [](const at::Tensor& x, const std::vector<at::Tensor>& weights,
                  const std::vector<at::Tensor>& biases, const std::string& activation,
                  double negative_slope, double alpha, const std::string& approximate,
                  int64_t pieces, const std::string& output_activation, double dropout_p,
                  const Seed& seed, int64_t offset) {
    return oh::mlp().call(x, weights, biases, activation, negative_slope, alpha, approximate,
                          pieces, output_activation, dropout_p, seed, offset);
  }, pybind11::arg("x"), pybind11::arg("weights"), pybind11::arg("biases"),
        pybind11::arg("activation"), pybind11::arg("negative_slope"), pybind11::arg("alpha"),
        pybind11::arg("approximate"), pybind11::arg("pieces"), pybind11::arg("output_activation"),
        pybind11::arg("dropout_p"), pybind11::arg("seed"), pybind11::arg("offset"));
  // Through the dispatcher too, so that torch.jit.trace records the draw.
  m.def("draw_seed", [] { return oh::draw_seed().call(); },
        "A fresh dropout seed (one-element int64 tensor) from torch's default generator");
}

// The activation table (activations.h) as Python sees it: one dict per name.
pybind11::list activations() {
  using mlpbench::Saves;
  static const char* const kSaves[] = {"nothing", "input", "output", "argmax"};
  static const std::pair<unsigned, const char*> kParams[] = {
      {mlpbench::kNegativeSlope, "negative_slope"}, {mlpbench::kAlpha, "alpha"},
      {mlpbench::kApproximate, "approximate"}, {mlpbench::kPieces, "pieces"}};
  pybind11::list out;
  for (const mlpbench::ActInfo& row : mlpbench::kActivations) {
    if (row.approximate && std::string(row.approximate) != "none") continue;  // gelu once
    pybind11::list params;
    for (const auto& [bit, name] : kParams) {
      if (row.params & bit) params.append(name);
    }
    pybind11::dict entry;
    entry["name"] = row.name;
    entry["params"] = params;
    entry["saves"] = kSaves[static_cast<int>(row.saves)];
    entry["differentiable"] = row.differentiable;
    entry["elementwise"] = row.elementwise;
    entry["forward_cost"] = row.forward_cost == mlpbench::Cost::Exp ? "exp" : "cheap";
    entry["backward_cost"] = row.backward_cost == mlpbench::Cost::Exp ? "exp" : "cheap";
    out.append(entry);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mlpbench's compiled kernels (ops are under torch.ops.mlpbench)";
  m.def("philox4x32", &philox4x32, "Philox4x32-10 of a 4-word counter and a 2-word key",
        pybind11::arg("counter"), pybind11::arg("key"));
  m.def("set_debug_poison", &mlpbench::set_debug_poison,
        "Fill every kernel output with NaN before the kernel runs (tests)");
  m.def("debug_poison", &mlpbench::debug_poison);
  m.def("new_output_like", [](const at::Tensor& t) {
    return mlpbench::new_output(t.sizes(), t.options());
  }, "A fresh tensor allocated as the kernels allocate their outputs");
  // The instruction set of the CPU kernels, as a name; tests lower it to run
  // the AVX2 and baseline builds of every kernel on an AVX-512 machine.
  static const char* const kLevels[] = {"baseline", "avx2", "avx512", "avx512_bf16"};
  m.def("simd_level", [] { return kLevels[static_cast<int>(mlpbench::simd::level())]; });
  m.def("best_simd_level",
        [] { return kLevels[static_cast<int>(mlpbench::simd::best_level())]; });
  m.def("set_simd_level", [](const std::string& name) {
    for (int i = 0; i < 4; ++i) {
      if (name == kLevels[i]) {
        mlpbench::simd::set_level(static_cast<mlpbench::simd::Level>(i));
        return;
      }
    }
    throw pybind11::value_error("set_simd_level: level must be 'baseline', 'avx2', 'avx512' "
                                "or 'avx512_bf16', got '" + name + "'");
  }, "Run the CPU kernels with at most this instruction set", pybind11::arg("level"));
  m.def("activations", &activations,
        "The activation table: name, parameters, what backward saves, cost class");
  m.def("check_activation", [](const std::string& op, const std::string& name,
                               double negative_slope, double alpha, const std::string& approximate,
                               int64_t pieces) {
    mlpbench::parse_activation(op.c_str(), name, negative_slope, alpha, approximate, pieces);
  }, "Raise ValueError as the ops would for these activation arguments",
        pybind11::arg("op"), pybind11::arg("name"), pybind11::arg("negative_slope"),
        pybind11::arg("alpha"), pybind11::arg("approximate"), pybind11::arg("pieces"));
  ops_entry_points(m);
  m.def("has_cuda", [] {
#ifdef MLPBENCH_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
