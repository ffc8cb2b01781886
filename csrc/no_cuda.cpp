// A build without the CUDA kernels (setup.py: MLPBENCH_CUDA) still answers a
// CUDA tensor with a clear error, not the dispatcher's "could not run with
// arguments from the 'CUDA' backend".
#ifndef MLPBENCH_WITH_CUDA
#include <torch/library.h>

#include "op_call.h"

namespace mlpbench {
namespace {

void no_cuda_kernels(OpCall& c) {
  TORCH_CHECK(false, c.op(), ": this build of mlpbench has CPU kernels only (mlpbench._C.has_cuda() "
              "is False), so it cannot run on CUDA tensors; rebuild it with MLPBENCH_CUDA=1 (bash "
              "scripts/setup.sh on a machine with nvcc, or with a GPU visible)");
}

}  // namespace

TORCH_LIBRARY_IMPL(mlpbench, CUDA, m) {
  for (const char* op : {"linear_act", "linear_act_backward", "activation", "activation_backward",
                         "mlp", "mlp_backward", "dropout"}) {
    m.impl(op, boxed<&no_cuda_kernels>());
  }
}

}  // namespace mlpbench
#endif
