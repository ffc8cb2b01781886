// The matrix products of the CPU layer kernels, and which library runs them.
//
// float32: ATen's mm (MKL in torch's x86 builds) or oneDNN's matmul. MKL's
// AVX-512 kernels run on Intel CPUs only; on other CPUs with AVX-512 (an AMD
// EPYC: half MKL's time from batch 32 on, docs/cpu-tuning.md), and where
// torch has no MKL, oneDNN is the faster for all but the smallest products,
// whose fixed cost (about 15 us a call) it loses on. Other dtypes: ATen's mm
// (which itself hands bfloat16 to oneDNN).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace mlpbench::cpu {

// Which library runs the float32 products: "auto" (the rule above), "aten"
// or "onednn" (where torch has it and the user left it on:
// torch.backends.mkldnn.enabled; else ATen's).
enum class Fp32Matmul { Auto, Aten, OneDnn };
void set_fp32_matmul(Fp32Matmul choice);
Fp32Matmul fp32_matmul();

// a @ b for 2-D a (m, k) and b (k, n), either of them possibly transposed
// (strided), as a fresh contiguous (m, n) tensor; a bfloat16 x @ weight.T
// on AMX tiles where bf16_linear runs it there.
at::Tensor mm(const at::Tensor& a, const at::Tensor& b);

// bfloat16 x2 @ weight.T + bias (bias undefined: none), the bias in the
// float32 accumulation and the result rounded once, as addmm rounds it:
// oneDNN's linear (addmm's bits), up to 4 rows dot products of our own
// (within the float32 sums' rounding of those bits), and where
// bf16_linear_on_amx AMX tiles (oneDNN's bits in all but rare elements).
at::Tensor bf16_linear(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias);

// Whether x2 @ weight.T runs on AMX tiles (amx_linear_cpu.cpp), with the
// ReLU in the tile's pass where relu: bfloat16, AVX512-BF16's level (simd.h)
// on a CPU with AMX-BF16, oneDNN left on (torch.backends.mkldnn, as for its
// linear), an even input width, and batches from 5 rows (below:
// small_batch_linear) to those where it beat oneDNN's linear (more rows
// with the ReLU inside, which saves a pass).
bool bf16_linear_on_amx(const at::Tensor& x2, const at::Tensor& weight, bool relu);

// Whether this CPU has AMX-BF16 and this process may use its tiles.
bool amx_bf16_available();

// bf16_linear's product on AMX tiles, and with relu the ReLU in the same
// pass over the float32 sums (a NaN stays NaN, as stock's relu keeps it).
// Only where bf16_linear_on_amx.
at::Tensor bf16_amx_linear(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias,
                           bool relu);

// Whether bf16_relu_linear runs for `rows` rows: where bf16_linear is
// oneDNN's linear (which needs a bias).
bool bf16_linear_takes_relu(int64_t rows, bool has_bias);

// relu(bf16_linear(x2, weight, bias)) in the product itself (oneDNN's ReLU
// post-op, applied to the float32 sums before their rounding: the same
// bits, as ReLU commutes with rounding), except that the post-op maps a NaN
// sum to 0 where stock's relu keeps it: for callers that have proved every
// sum finite (relu_bound_cpu.cpp). Only where bf16_linear_takes_relu.
at::Tensor bf16_relu_linear(const at::Tensor& x2, const at::Tensor& weight,
                            const at::Tensor& bias);

}  // namespace mlpbench::cpu
