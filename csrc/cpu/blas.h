// Row-major matrix products through the BLAS that libtorch_cpu links (MKL or
// OpenBLAS export the Fortran symbols sgemm_/dgemm_). Called from inside
// at::parallel_for on one block each, so every thread runs one single-threaded
// product on its own block and applies the epilogue while it is in cache.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>
#include <string>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
}

namespace mlpbench::cpu {

inline int blas_int(int64_t v) {
  TORCH_CHECK(v <= std::numeric_limits<int>::max(), "mlpbench: dimension ", std::to_string(v),
              " is too large for the BLAS (32-bit indices)");
  return static_cast<int>(v);
}

// C (rows x cols, row stride ldc) = A (rows x inner, row-major, contiguous)
//                                   @ B^T (B is cols x inner, row-major, contiguous).
template <typename T>
void gemm_a_bt(int64_t rows, int64_t cols, int64_t inner, const T* a, const T* b, T* c,
               int64_t ldc) {
  // Column-major view: C^T (cols x rows) = B (as inner x cols, transposed) * A^T.
  const int m = blas_int(cols), n = blas_int(rows), k = blas_int(inner);
  const int ld_in = blas_int(inner > 0 ? inner : 1), ld_c = blas_int(ldc);
  const char trans = 'T', notrans = 'N';
  const T one = 1, zero = 0;
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&trans, &notrans, &m, &n, &k, &one, b, &ld_in, a, &ld_in, &zero, c, &ld_c);
  } else {
    dgemm_(&trans, &notrans, &m, &n, &k, &one, b, &ld_in, a, &ld_in, &zero, c, &ld_c);
  }
}

}  // namespace mlpbench::cpu
