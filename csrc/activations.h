// Every activation of the lecture, written once: a small functor with its
// forward and its derivative, shared by the CPU kernels, the CUDA kernels and
// the C++ functor tests. Compiled by nvcc the members become __host__ __device__.
// T is float or double, or on the CPU the vector simd::VFloatT<W>: the
// functors use only arithmetic, comparisons, m_select and the m_* math
// functions, which simd.h overloads for VFloatT (found by argument-dependent
// lookup).
//
// A functor whose derivative is a function of its OUTPUT sets
// `kFromOutput = true` and its `derivative(y)` takes y = forward(x); the others
// (gelu, silu) take the pre-activation x. Saving the output instead of the
// input is what lets linear_act keep a single tensor per layer for backward.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MLPB_HD __host__ __device__ __forceinline__
#else
#define MLPB_HD inline
#endif

namespace mlpbench {

// The global C math functions exist on host and device, for float and double.
MLPB_HD float m_exp(float x) { return ::expf(x); }
MLPB_HD double m_exp(double x) { return ::exp(x); }
// expm1(min(x, 0)), ELU's negative branch (NaN stays NaN).
MLPB_HD float m_expm1_neg(float x) { return ::expm1f(x > 0.0f ? 0.0f : x); }
MLPB_HD double m_expm1_neg(double x) { return ::expm1(x > 0.0 ? 0.0 : x); }
MLPB_HD float m_tanh(float x) { return ::tanhf(x); }
MLPB_HD double m_tanh(double x) { return ::tanh(x); }
// Phi(x), the standard normal CDF, as 0.5 erfc(-x / sqrt 2): accurate in the
// negative tail, where 0.5 (1 + erf(x / sqrt 2)) cancels.
MLPB_HD float m_normcdf(float x) { return 0.5f * ::erfcf(x * -0.70710678118654752f); }
MLPB_HD double m_normcdf(double x) { return 0.5 * ::erfc(x * -0.70710678118654752440); }
// Phi(x), and the density phi(x) into pdf (the CPU's vector overload shares
// the exponential of the two).
template <typename T> MLPB_HD T m_normcdf_pdf(T x, T& pdf) {
  pdf = m_exp(T(-0.5) * x * x) * T(0.39894228040143267794);
  return m_normcdf(x);
}
// GELU's x Phi(x) (the CPU's vector overload folds the product into Phi's
// last step).
template <typename T> MLPB_HD T m_gelu(T x) { return x * m_normcdf(x); }
// 1 / x for x >= 1 (the denominators of sigmoid and silu); the CPU's vector
// overload replaces the division by Newton steps.
MLPB_HD float m_recip(float x) { return 1.0f / x; }
MLPB_HD double m_recip(double x) { return 1.0 / x; }
// c ? a : b, written as a function so that vector types can overload it.
template <typename T> MLPB_HD T m_select(bool c, T a, T b) { return c ? a : b; }

// Names as strings are mapped in ops.cpp (parse_activation).
enum class Act : int8_t {
  Identity, Sigmoid, Tanh, Relu, LeakyRelu, Elu, Gelu, GeluTanh, Silu, Maxout, Step
};

// Scalar parameters some activations take; the others ignore them.
struct ActParams {
  double negative_slope = 0.01;
  double alpha = 1.0;
};

template <typename T> struct Identity {
  static constexpr bool kFromOutput = true;
  MLPB_HD T forward(T x) const { return x; }
  MLPB_HD T derivative(T) const { return T(1); }
};

template <typename T> struct Sigmoid {
  static constexpr bool kFromOutput = true;
  MLPB_HD T forward(T x) const { return m_recip(T(1) + m_exp(-x)); }
  MLPB_HD T derivative(T y) const { return y * (T(1) - y); }
};

template <typename T> struct Tanh {
  static constexpr bool kFromOutput = true;
  MLPB_HD T forward(T x) const { return m_tanh(x); }
  MLPB_HD T derivative(T y) const { return T(1) - y * y; }
};

// ReLU'(0) = 0, as torch's threshold_backward; relu(NaN) = NaN, as torch's.
template <typename T> struct Relu {
  static constexpr bool kFromOutput = true;
  MLPB_HD T forward(T x) const { return m_select(x < T(0), T(0), x); }
  MLPB_HD T derivative(T y) const { return m_select(y > T(0), T(1), T(0)); }
};

// Needs negative_slope >= 0 so that the sign of y is the sign of x.
template <typename T> struct LeakyRelu {
  static constexpr bool kFromOutput = true;
  T slope;
  MLPB_HD T forward(T x) const { return m_select(x > T(0), x, x * slope); }
  MLPB_HD T derivative(T y) const { return m_select(y > T(0), T(1), slope); }
};

// For x <= 0: y = alpha (e^x - 1), so dy/dx = alpha e^x = y + alpha.
// Needs alpha >= 0 so that y > 0 exactly when x > 0.
template <typename T> struct Elu {
  static constexpr bool kFromOutput = true;
  T alpha;
  MLPB_HD T forward(T x) const { return m_select(x > T(0), x, alpha * m_expm1_neg(x)); }
  MLPB_HD T derivative(T y) const { return m_select(y > T(0), T(1), y + alpha); }
};

// Exact GELU: x * Phi(x), Phi the standard normal CDF.
template <typename T> struct Gelu {
  static constexpr bool kFromOutput = false;
  MLPB_HD T forward(T x) const { return m_gelu(x); }
  MLPB_HD T derivative(T x) const {
    T pdf;
    const T cdf = m_normcdf_pdf(x, pdf);
    return cdf + x * pdf;
  }
};

// GELU with approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T> struct GeluTanh {
  static constexpr bool kFromOutput = false;
  MLPB_HD T forward(T x) const {
    const T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + m_tanh(inner));
  }
  MLPB_HD T derivative(T x) const {
    const T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    const T t = m_tanh(inner);
    const T dinner = T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner;
  }
};

// SiLU (swish): x * sigmoid(x); derivative s (1 + x (1 - s)).
template <typename T> struct Silu {
  static constexpr bool kFromOutput = false;
  MLPB_HD T forward(T x) const { return x * m_recip(T(1) + m_exp(-x)); }
  MLPB_HD T derivative(T x) const {
    const T s = m_recip(T(1) + m_exp(-x));
    return s * (T(1) + x * (T(1) - s));
  }
};

// Heaviside step with step(0) = 0. Forward only: its derivative is zero almost
// everywhere and useless for training, so the backward kernels refuse it.
template <typename T> struct Step {
  static constexpr bool kFromOutput = true;
  MLPB_HD T forward(T x) const { return m_select(x > T(0), T(1), T(0)); }
  MLPB_HD T derivative(T) const { return T(0); }
};

}  // namespace mlpbench
