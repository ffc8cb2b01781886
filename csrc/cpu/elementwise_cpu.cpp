// CPU kernels of the standalone elementwise ops: activation (forward and
// backward, the same functors as linear_act) and dropout, vectorised through
// Pack<T> and run with the best instruction set the CPU has (simd_dispatch).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../op_args.h"
#include "vec_loops.h"

namespace mlpbench::cpu {
namespace {

// Elements per parallel chunk, by the pass's cost class (the activation
// table): an exponential per element makes a lecture-sized tensor (100 x 256)
// worth splitting between threads; passes at memory speed gain less from a
// second thread than it costs to start (docs/cpu-tuning.md).
constexpr int64_t kGrainCheap = 32768, kGrainExp = 8192;

int64_t grain(Cost cost) { return cost == Cost::Exp ? kGrainExp : kGrainCheap; }

at::Tensor activation_cpu(const at::Tensor& x, c10::string_view name, double negative_slope,
                          double alpha, c10::string_view approximate) {
  const ActSpec spec = parse_elementwise("activation", name, negative_slope, alpha, approximate);
  check_float_tensor("activation", "x", x);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "activation_cpu", [&] {
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, xc.numel(), grain(act_info(spec.act).forward_cost), [&](int64_t begin, int64_t end) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<scalar_t, decltype(lanes)>;
        with_activation<typename P::V>(spec, [&](auto act) {
          map_unary<P>(in + begin, out + begin, end - begin, [&](auto v) { return act.forward(v); });
        });
      });
    });
  });
  return y;
}

at::Tensor activation_backward_cpu(const at::Tensor& grad_y, const at::Tensor& saved,
                                   c10::string_view name, double negative_slope, double alpha,
                                   c10::string_view approximate) {
  const char* op = "activation_backward";
  const ActSpec spec = parse_elementwise(op, name, negative_slope, alpha, approximate);
  check_differentiable(op, spec);
  check_float_tensor(op, "grad_y", grad_y);
  check_like_grad(op, grad_y, saved);
  const at::Tensor g = grad_y.contiguous(), s = saved.contiguous();
  at::Tensor gx = new_output(g.sizes(), g.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, g.scalar_type(), "activation_backward_cpu", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* sp = s.const_data_ptr<scalar_t>();
    scalar_t* out = gx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), grain(act_info(spec.act).backward_cost), [&](int64_t begin, int64_t end) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<scalar_t, decltype(lanes)>;
        with_activation<typename P::V>(spec, [&](auto act) {
          map_binary<P>(gp + begin, sp + begin, out + begin, end - begin,
                        [&](auto g, auto s) { return g * act.derivative(s); });
        });
      });
    });
  });
  return gx;
}

at::Tensor dropout_cpu(const at::Tensor& x, double p, const std::optional<at::Tensor>& seed,
                       int64_t offset) {
  const DropoutMask mask = parse_dropout("dropout", p, seed, offset);
  check_float_tensor("dropout", "x", x);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "dropout_cpu", [&] {
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, xc.numel(), kGrainCheap, [&](int64_t begin, int64_t end) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<scalar_t, decltype(lanes)>;
        for_each_vector<P>(&mask, begin, end - begin,
                           [&](int64_t e, int64_t m, const uint32_t* words) {
          const int64_t i = begin + e;
          P::store(out + i, P::dropout(words, m, mask, P::load(in + i, m)), m);
        });
      });
    });
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("activation", &activation_cpu);
  m.impl("activation_backward", &activation_backward_cpu);
  m.impl("dropout", &dropout_cpu);
}

}  // namespace mlpbench::cpu
