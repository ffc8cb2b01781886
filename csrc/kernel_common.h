// What the kernels of every backend need besides their arguments: their
// outputs' allocation, and the dropout mask of a checked seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "philox.h"

namespace mlpbench {

// Allocates a kernel's output. With the debug switch on (tests), the memory
// is first filled with NaN (0xFF bytes for integers), so that an element a
// kernel forgets to write shows up instead of passing as stale memory.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);
void set_debug_poison(bool enabled);
bool debug_poison();

// The mask of (p, seed, offset) for a p and seed already checked
// (checks.h: check_seed); p == 0 needs no seed. A CUDA seed stays in device
// memory, for the CUDA kernels to read.
DropoutMask dropout_mask(double p, const std::optional<at::Tensor>& seed, int64_t offset);

// A fresh dropout seed drawn on a CUDA device (draw_seed_cuda.cu), from its
// default CUDA generator's Philox state, so that CUDA graphs advance it on
// every replay.
namespace cuda {
at::Tensor draw_seed(at::Device device);
}  // namespace cuda

}  // namespace mlpbench
