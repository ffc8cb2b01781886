// CPU kernels of the standalone elementwise ops: activation (forward and
// backward, the same functors as linear_act) and dropout, vectorised through
// Pack<T> and run with the best instruction set the CPU has (simd_dispatch).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "../checks.h"
#include "../kernel_common.h"
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

void activation_cpu(OpCall& c) {
  const ActSpec spec = checked_activation_args(c);
  const at::Tensor& x = c.tensor("x");
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  MLPB_DISPATCH_CPU(x.scalar_type(), "activation_cpu", [&] {
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
  c.returns(std::move(y));
}

void activation_backward_cpu(OpCall& c) {
  const ActSpec spec = checked_activation_backward_args(c);
  const at::Tensor g = c.tensor("grad_y").contiguous(), s = c.tensor("saved").contiguous();
  at::Tensor gx = new_output(g.sizes(), g.options());
  MLPB_DISPATCH_CPU(g.scalar_type(), "activation_backward_cpu", [&] {
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
  c.returns(std::move(gx));
}

void dropout_cpu(OpCall& c) {
  const double p = checked_dropout_args(c);
  const at::Tensor& x = c.tensor("x");
  const DropoutMask mask = dropout_mask(p, c.optional_tensor("seed"), c.integer("offset"));
  const at::Tensor xc = x.contiguous();
  at::Tensor y = new_output(xc.sizes(), xc.options());
  MLPB_DISPATCH_CPU(x.scalar_type(), "dropout_cpu", [&] {
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, xc.numel(), kGrainCheap, [&](int64_t begin, int64_t end) {
      simd::simd_dispatch([&](auto lanes) {
        using P = Pack<scalar_t, decltype(lanes)>;
        for_each_vector<P>(&mask, begin, end - begin,
                           [&](int64_t e, int64_t m, Keeps keeps) {
          const int64_t i = begin + e;
          prefetch_ahead(in + i);
          prefetch_ahead<true>(out + i);
          P::store(out + i, P::dropout(keeps, mask, P::load(in + i, m)), m);
        });
      });
    });
  });
  c.returns(std::move(y));
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CPU, m) {
  m.impl("activation", boxed<&activation_cpu>());
  m.impl("activation_backward", boxed<&activation_backward_cpu>());
  m.impl("dropout", boxed<&dropout_cpu>());
}

}  // namespace mlpbench::cpu
