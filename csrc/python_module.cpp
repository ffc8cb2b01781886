// The Python extension module. Importing it runs the TORCH_LIBRARY
// registrations of the other sources; it also exposes the activation and
// parameter tables, the raw Philox generator (tests check it against the
// published vectors), and direct entry points to the ops (entry below).
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/jit/python/pybind_utils.h>
#include <torch/extension.h>

#include <string>
#include <utility>

#include "cpu/products_cpu.h"
#include "cpu/simd.h"
#include "kernel_common.h"
#include "mlp_adam_step.h"
#include "op_args.h"
#include "op_call.h"
#include "philox.h"

namespace {

namespace py = pybind11;

std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> philox4x32(
    std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> counter,
    std::tuple<uint32_t, uint32_t> key) {
  const auto [c0, c1, c2, c3] = counter;
  const auto [k0, k1] = key;
  const mlpbench::Philox4 r = mlpbench::philox4x32_10(c0, c1, c2, c3, k0, k1);
  return {r.v[0], r.v[1], r.v[2], r.v[3]};
}

// The dropout keep bits of groups [group, group + groups) of 64 elements at
// probability p, at the current instruction set (tests: every level's
// generator against the definition in philox.h, also where the block counter
// carries into its high word and where draws tie).
std::vector<uint64_t> dropout_keeps(uint64_t seed, uint64_t offset, double p, uint64_t group,
                                    int64_t groups) {
  TORCH_CHECK_VALUE(groups >= 0 && groups <= (int64_t{1} << 14),
                    "dropout_keeps: groups must be in [0, 2^14], got ", groups);
  TORCH_CHECK_VALUE(p >= 0.0 && p <= 1.0, "dropout_keeps: p must be in [0, 1], got ", p);
  std::vector<uint64_t> bits(static_cast<size_t>(groups));
  mlpbench::simd::dropout_keeps(mlpbench::make_dropout_mask(p, seed, offset), group, groups,
                                bits.data());
  return bits;
}

// One positional argument as the schema's type wants it. The kinds the ops
// take are converted here directly (torch::jit::toIValue, the general path,
// cost several times more per call); anything else goes through toIValue.
c10::IValue to_ivalue(py::handle obj, const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      if (THPVariable_Check(obj.ptr())) return THPVariable_Unpack(obj.ptr());
      break;
    case c10::TypeKind::OptionalType:
      if (obj.is_none()) return c10::IValue();
      return to_ivalue(obj, type->castRaw<c10::OptionalType>()->getElementType());
    case c10::TypeKind::StringType:
      if (PyUnicode_Check(obj.ptr())) {
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
        if (data) return c10::IValue(std::string(data, static_cast<size_t>(size)));
        throw py::error_already_set();
      }
      break;
    case c10::TypeKind::FloatType:
      if (PyFloat_CheckExact(obj.ptr())) return PyFloat_AS_DOUBLE(obj.ptr());
      break;
    case c10::TypeKind::IntType:
      if (PyLong_CheckExact(obj.ptr())) {
        const int64_t v = PyLong_AsLongLong(obj.ptr());
        if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
        return v;
      }
      break;
    case c10::TypeKind::BoolType:
      if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
      break;
    default:
      break;
  }
  return torch::jit::toIValue(obj, type);
}

// A direct entry point to op `name`: the positional arguments converted by
// the op's schema, then one boxed dispatcher call, exactly the call
// torch.ops.mlpbench.<name> makes (autograd, device, fake and Python dispatch
// keys alike) without torch.ops' Python-side argument handling
// (docs/cpu-tuning.md). mlpbench/ops.py uses these outside torch.compile,
// which must see torch.ops to put the op in its graph. A plain CPython
// function (vectorcall) rather than a pybind11 one, whose argument
// machinery costs more than the conversions themselves.
PyObject* call_entry(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  const auto* op = static_cast<const c10::OperatorHandle*>(PyCapsule_GetPointer(self, nullptr));
  const auto& schema = op->schema().arguments();
  TORCH_CHECK_TYPE(static_cast<size_t>(nargs) == schema.size(), op->schema().name(), " takes ",
                   schema.size(), " arguments, got ", nargs);
  torch::jit::Stack stack;
  stack.reserve(schema.size());
  for (size_t i = 0; i < schema.size(); ++i) stack.push_back(to_ivalue(args[i], schema[i].real_type()));
  op->callBoxed(stack);
  return torch::jit::createPyObjectForStack(std::move(stack)).release().ptr();
  END_HANDLE_TH_ERRORS
}

py::object entry(const std::string& name) {
  static PyMethodDef def = {"entry", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&call_entry)),
                            METH_FASTCALL, "An op's direct entry point"};
  auto* op = new c10::OperatorHandle(mlpbench::find_op(("mlpbench::" + name).c_str()));
  PyObject* capsule = PyCapsule_New(op, nullptr, [](PyObject* c) {
    delete static_cast<c10::OperatorHandle*>(PyCapsule_GetPointer(c, nullptr));
  });
  if (!capsule) throw py::error_already_set();
  PyObject* fn = PyCFunction_New(&def, capsule);
  Py_DECREF(capsule);
  if (!fn) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

// The parameter table (activations.h), one dict per parameter.
py::list activation_params() {
  using mlpbench::ParamKind;
  static const char* const kKinds[] = {"real", "int", "choice"};
  py::list out;
  for (const mlpbench::ParamInfo& p : mlpbench::kParams) {
    py::dict entry;
    entry["name"] = p.name;
    entry["kind"] = kKinds[static_cast<int>(p.kind)];
    if (p.kind == ParamKind::Choice) {
      entry["default"] = p.default_choice;
    } else if (p.kind == ParamKind::Integer) {
      entry["default"] = static_cast<int64_t>(p.default_value);
    } else {
      entry["default"] = p.default_value;
    }
    out.append(entry);
  }
  return out;
}

// The activation table (activations.h) as Python sees it: one dict per name.
py::list activations() {
  static const char* const kSaves[] = {"nothing", "input", "output", "argmax"};
  py::list out;
  for (const mlpbench::ActInfo& row : mlpbench::kActivations) {
    if (row.approximate && std::string(row.approximate) != "none") continue;  // gelu once
    py::list params;
    for (const mlpbench::ParamInfo& p : mlpbench::kParams) {
      if (row.params & mlpbench::bit(p.param)) params.append(p.name);
    }
    py::dict entry;
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

// The position of `name` in a table of names (an enum's values in order), or -1.
template <size_t N>
int index_of(const char* const (&names)[N], const std::string& name) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mlpbench's compiled kernels (ops are under torch.ops.mlpbench)";
  m.def("philox4x32", &philox4x32, "Philox4x32-10 of a 4-word counter and a 2-word key",
        py::arg("counter"), py::arg("key"));
  m.def("dropout_keeps", &dropout_keeps, py::arg("seed"), py::arg("offset"), py::arg("p"),
        py::arg("group"), py::arg("groups"));
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
    if (const int i = index_of(kLevels, name); i >= 0) {
      return mlpbench::simd::set_level(static_cast<mlpbench::simd::Level>(i));
    }
    throw py::value_error("set_simd_level: level must be 'baseline', 'avx2', 'avx512' "
                          "or 'avx512_bf16', got '" + name + "'");
  }, "Run the CPU kernels with at most this instruction set", py::arg("level"));
  // Whether the bf16 forward products can run on AMX tiles (at the
  // avx512_bf16 level, products_cpu.h); tests skip their AMX cases without.
  m.def("has_amx_bf16", &mlpbench::cpu::amx_bf16_available,
        "Whether this CPU has AMX-BF16 and this process may use its tiles");
  // Which library runs the CPU kernels' float32 products (products_cpu.h);
  // tests and benchmarks set it, cpu_mm times the products as the kernels
  // run them (the benchmarks' floor).
  static const char* const kMatmuls[] = {"auto", "aten", "onednn"};
  m.def("fp32_matmul", [] { return kMatmuls[static_cast<int>(mlpbench::cpu::fp32_matmul())]; });
  m.def("set_fp32_matmul", [](const std::string& name) {
    if (const int i = index_of(kMatmuls, name); i >= 0) {
      return mlpbench::cpu::set_fp32_matmul(static_cast<mlpbench::cpu::Fp32Matmul>(i));
    }
    throw py::value_error("set_fp32_matmul: name must be 'auto', 'aten' or 'onednn', got '" +
                          name + "'");
  }, "Run the CPU kernels' float32 products with this library", py::arg("name"));
  m.def("cpu_mm", [](const at::Tensor& a, const at::Tensor& b) {
    TORCH_CHECK_VALUE(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
                      "cpu_mm: a and b must be matrices (m, k) and (k, n), got shapes ",
                      a.sizes(), " and ", b.sizes());
    TORCH_CHECK_VALUE(a.device().is_cpu() && b.device().is_cpu(),
                      "cpu_mm: a and b must be on the CPU, got ", a.device(), " and ", b.device());
    TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), "cpu_mm: a and b must have one dtype, got ",
                     a.scalar_type(), " and ", b.scalar_type());
    return mlpbench::cpu::mm(a, b);
  }, "a @ b as the CPU kernels compute their products", py::arg("a"), py::arg("b"));
  m.def("activations", &activations,
        "The activation table: name, parameters, what backward saves, cost class");
  m.def("activation_params", &activation_params,
        "The activations' parameters: name, kind ('real', 'int', 'choice') and default");
  m.def("check_activation", [](const std::string& op, const std::string& text) {
    mlpbench::parse_activation(op.c_str(), "activation", text);
  }, "Raise ValueError as the ops would for this activation argument",
        py::arg("op"), py::arg("activation"));
  m.def("entry", &entry, "A direct entry point to the op torch.ops.mlpbench.<name>",
        py::arg("name"));
  // nn.cross_entropy_backward's training step with a fused Adam or AdamW
  // (mlp_adam_step.h); the state lists in the order weights..., biases....
  m.def("mlp_adam_step", [](const at::Tensor& x, const std::vector<at::Tensor>& weights,
                            const std::vector<at::Tensor>& biases,
                            const std::vector<at::Tensor>& params, const std::string& activation,
                            const std::string& output_activation, double dropout_p,
                            const at::Tensor& target, int64_t ignore_index,
                            const std::string& reduction, bool float_scores,
                            std::vector<at::Tensor> exp_avgs,
                            std::vector<at::Tensor> exp_avg_sqs,
                            std::vector<at::Tensor> max_exp_avg_sqs, std::vector<at::Tensor> steps,
                            double lr, double beta1, double beta2, double weight_decay, double eps,
                            bool amsgrad, bool maximize, bool decoupled) {
    const mlpbench::AdamState adam{std::move(exp_avgs), std::move(exp_avg_sqs),
                                   std::move(max_exp_avg_sqs), std::move(steps), lr, beta1, beta2,
                                   weight_decay, eps, amsgrad, maximize, decoupled};
    auto r = mlpbench::mlp_adam_step(x, weights, biases, params, activation, output_activation,
                                     dropout_p, target, ignore_index, reduction, float_scores,
                                     adam);
    return py::make_tuple(r.loss, r.logits, r.grad_weights, r.grad_biases);
  }, "A whole-MLP training step with Adam inside the backward (nn.cross_entropy_backward)");
  m.def("has_cuda", [] {
#ifdef MLPBENCH_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
