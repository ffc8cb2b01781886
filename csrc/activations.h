// Every activation of the lecture, written once: a row of the activation
// table (kActivations: name, parameters, what backward saves, cost), and a
// small functor with its forward and its derivative, shared by the CPU
// kernels, the CUDA kernels, the autograd composites (autograd.cpp) and the
// C++ functor tests. Compiled by nvcc the members become __host__ __device__.
// T is float or double, on the CPU the vector simd::VFloatT<W>, or in
// autograd.cpp a tensor expression: the functors use only arithmetic,
// comparisons, m_select and the m_* math functions, which those types
// overload (found by argument-dependent lookup).
//
// A functor whose row saves the OUTPUT has kFromOutput = true and its
// `derivative(y)` takes y = forward(x); the others (gelu, silu) take the
// pre-activation x. Saving the output instead of the input is what lets
// linear_act keep a single tensor per layer for backward.
//
// Adding an activation: a row in kActivations (and its Act), a functor, a
// case in with_activation, and its stock reference in mlpbench/reference.py.
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
// 1 / x and a / b for sigmoid and silu below.
MLPB_HD float m_recip(float x) { return 1.0f / x; }
MLPB_HD double m_recip(double x) { return 1.0 / x; }
MLPB_HD float m_div(float a, float b) { return a / b; }
MLPB_HD double m_div(double a, double b) { return a / b; }
// Sigmoid and SiLU (x * sigmoid(x)), as stock writes them; the CPU's vector
// overloads (simd.h) compute both from exp(-|x|), which cannot overflow, with
// a reciprocal of 1 + exp(-|x|) in [1, 2] instead of a division.
template <typename T> MLPB_HD T m_sigmoid(T x) { return m_recip(T(1) + m_exp(-x)); }
template <typename T> MLPB_HD T m_silu(T x) { return m_div(x, T(1) + m_exp(-x)); }
// c ? a : b, written as a function so that vector types can overload it.
template <typename T> MLPB_HD T m_select(bool c, T a, T b) { return c ? a : b; }

enum class Act : int8_t {
  Identity, Sigmoid, Tanh, Relu, LeakyRelu, Elu, Gelu, GeluTanh, Silu, Maxout, Step,
  kCount  // the number of activations
};

// What backward keeps of the forward to compute the derivative.
enum class Saves : int8_t { Nothing, Input, Output, Argmax };
// How costly a pass is per element: Exp ones evaluate an exponential and are
// worth splitting between threads on smaller tensors than Cheap ones.
enum class Cost : int8_t { Cheap, Exp };

// The scalar parameters activations take, each written once here: its name
// in the ops' activation argument ("leaky_relu(negative_slope=0.1)") and in
// Python, its default and the values it accepts. A Choice parameter selects
// between rows of one name (gelu's `approximate`); the others are numbers
// the functors read (ActParams).
enum class Param : int8_t { NegativeSlope, Alpha, Approximate, Pieces, kCount };
enum class ParamKind : int8_t { Real, Integer, Choice };

struct ParamInfo {
  Param param;
  const char* name;
  ParamKind kind;
  double default_value;    // Real, Integer
  const char* default_choice;  // Choice
  double min, max;         // accepted values (Real, Integer), both included
  const char* rule;        // the accepted values, as an error message says them
};

inline constexpr double kNoLimit = 1e308;
inline constexpr ParamInfo kParams[] = {
    // >= 0 so that y > 0 exactly when x > 0: backward derives the derivative from y.
    {Param::NegativeSlope, "negative_slope", ParamKind::Real, 0.01, nullptr, 0.0, kNoLimit,
     "a finite number >= 0"},
    {Param::Alpha, "alpha", ParamKind::Real, 1.0, nullptr, 0.0, kNoLimit, "a finite number >= 0"},
    {Param::Approximate, "approximate", ParamKind::Choice, 0.0, "none", 0.0, 0.0,
     "'none' or 'tanh'"},
    // The argmax saved for backward is a uint8.
    {Param::Pieces, "pieces", ParamKind::Integer, 2.0, nullptr, 1.0, 255.0,
     "an int in [1, 255]"},
};
inline constexpr int kNumParams = static_cast<int>(Param::kCount);
static_assert(sizeof(kParams) / sizeof(kParams[0]) == kNumParams, "a row for every Param");

constexpr unsigned bit(Param p) { return 1u << static_cast<int>(p); }

// The activation table: one row per Act, in the enum's order. Parsing, what
// autograd saves, the CPU kernels' thread split and the Python side
// (mlpbench._C.activations()) all read it. gelu's two forms share the name
// "gelu"; `approximate` tells them apart.
struct ActInfo {
  Act act;
  const char* name;
  const char* approximate;  // the value of `approximate` this row is, or nullptr
  unsigned params;          // bit(Param) of each parameter it takes
  Saves saves;
  bool differentiable;
  bool elementwise;         // maxout reduces each unit's pieces
  Cost forward_cost, backward_cost;
};

inline constexpr unsigned kGeluParams = bit(Param::Approximate);
inline constexpr ActInfo kActivations[] = {
    {Act::Identity, "identity", nullptr, 0, Saves::Nothing, true, true, Cost::Cheap, Cost::Cheap},
    {Act::Sigmoid, "sigmoid", nullptr, 0, Saves::Output, true, true, Cost::Exp, Cost::Cheap},
    {Act::Tanh, "tanh", nullptr, 0, Saves::Output, true, true, Cost::Exp, Cost::Cheap},
    {Act::Relu, "relu", nullptr, 0, Saves::Output, true, true, Cost::Cheap, Cost::Cheap},
    {Act::LeakyRelu, "leaky_relu", nullptr, bit(Param::NegativeSlope), Saves::Output, true, true, Cost::Cheap, Cost::Cheap},
    {Act::Elu, "elu", nullptr, bit(Param::Alpha), Saves::Output, true, true, Cost::Exp, Cost::Cheap},
    {Act::Gelu, "gelu", "none", kGeluParams, Saves::Input, true, true, Cost::Exp, Cost::Exp},
    {Act::GeluTanh, "gelu", "tanh", kGeluParams, Saves::Input, true, true, Cost::Exp, Cost::Exp},
    {Act::Silu, "silu", nullptr, 0, Saves::Input, true, true, Cost::Exp, Cost::Exp},
    {Act::Maxout, "maxout", nullptr, bit(Param::Pieces), Saves::Argmax, true, false, Cost::Cheap, Cost::Cheap},
    {Act::Step, "step", nullptr, 0, Saves::Nothing, false, true, Cost::Cheap, Cost::Cheap},
};
inline constexpr int kNumActivations = static_cast<int>(Act::kCount);

constexpr const ActInfo& act_info(Act act) { return kActivations[static_cast<int>(act)]; }
constexpr bool rows_in_enum_order() {
  for (int i = 0; i < kNumActivations; ++i) {
    if (static_cast<int>(kActivations[i].act) != i) return false;
  }
  return true;
}
static_assert(sizeof(kActivations) / sizeof(kActivations[0]) == kNumActivations,
              "a row for every Act");
static_assert(rows_in_enum_order(), "kActivations must list every Act in the enum's order");

// Whether Act a's derivative reads the forward's output (else its input).
constexpr bool from_output(Act a) { return act_info(a).saves == Saves::Output; }

// The numeric parameters of a parsed activation (each Param's default where
// the activation does not take it).
struct ActParams {
  double value[kNumParams];
  constexpr ActParams() : value{} {
    for (const ParamInfo& p : kParams) value[static_cast<int>(p.param)] = p.default_value;
  }
  constexpr double operator[](Param p) const { return value[static_cast<int>(p)]; }
  constexpr double& operator[](Param p) { return value[static_cast<int>(p)]; }
};

template <typename T> struct Identity {
  static constexpr bool kFromOutput = from_output(Act::Identity);
  MLPB_HD T forward(T x) const { return x; }
  MLPB_HD T derivative(T) const { return T(1); }
};

template <typename T> struct Sigmoid {
  static constexpr bool kFromOutput = from_output(Act::Sigmoid);
  MLPB_HD T forward(T x) const { return m_sigmoid(x); }
  MLPB_HD T derivative(T y) const { return y * (T(1) - y); }
};

template <typename T> struct Tanh {
  static constexpr bool kFromOutput = from_output(Act::Tanh);
  MLPB_HD T forward(T x) const { return m_tanh(x); }
  MLPB_HD T derivative(T y) const { return T(1) - y * y; }
};

// As torch's relu and threshold_backward: ReLU'(0) = 0, relu(NaN) = NaN,
// and a NaN output passes the gradient on. (Written with <= 0 in both, so
// that the composite's derivative at 0 is the kernels' 0 too.)
template <typename T> struct Relu {
  static constexpr bool kFromOutput = from_output(Act::Relu);
  MLPB_HD T forward(T x) const { return m_select(x <= T(0), T(0), x); }
  MLPB_HD T derivative(T y) const { return m_select(y <= T(0), T(0), T(1)); }
};

// Needs negative_slope >= 0 so that the sign of y is the sign of x.
template <typename T> struct LeakyRelu {
  static constexpr bool kFromOutput = from_output(Act::LeakyRelu);
  T slope;
  MLPB_HD T forward(T x) const { return m_select(x > T(0), x, x * slope); }
  MLPB_HD T derivative(T y) const { return m_select(y > T(0), T(1), slope); }
};

// For x <= 0: y = alpha (e^x - 1), so dy/dx = alpha e^x = y + alpha.
// Needs alpha >= 0 so that y > 0 exactly when x > 0. A NaN output passes the
// gradient on, as torch's elu_backward does.
template <typename T> struct Elu {
  static constexpr bool kFromOutput = from_output(Act::Elu);
  T alpha;
  MLPB_HD T forward(T x) const { return m_select(x > T(0), x, alpha * m_expm1_neg(x)); }
  MLPB_HD T derivative(T y) const { return m_select(y <= T(0), y + alpha, T(1)); }
};

// Exact GELU: x * Phi(x), Phi the standard normal CDF.
template <typename T> struct Gelu {
  static constexpr bool kFromOutput = from_output(Act::Gelu);
  MLPB_HD T forward(T x) const { return m_gelu(x); }
  MLPB_HD T derivative(T x) const {
    T pdf;
    const T cdf = m_normcdf_pdf(x, pdf);
    return cdf + x * pdf;
  }
};

// GELU with approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T> struct GeluTanh {
  static constexpr bool kFromOutput = from_output(Act::GeluTanh);
  MLPB_HD T forward(T x) const {
    const T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + m_tanh(inner));
  }
  // x is capped at +-20, where the derivative is already exactly 1 or 0 in
  // float32: beyond, x^3 would overflow and give 0 * inf = NaN.
  MLPB_HD T derivative(T x) const {
    x = m_select(x > T(20), T(20), m_select(x < T(-20), T(-20), x));
    const T inner = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    const T t = m_tanh(inner);
    const T dinner = T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner;
  }
};

// SiLU (swish): x * sigmoid(x); derivative s (1 + x (1 - s)).
template <typename T> struct Silu {
  static constexpr bool kFromOutput = from_output(Act::Silu);
  MLPB_HD T forward(T x) const { return m_silu(x); }
  MLPB_HD T derivative(T x) const {
    const T s = m_sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
};

// Heaviside step with step(0) = 0. Forward only: its derivative is zero almost
// everywhere and useless for training, so the backward kernels refuse it.
template <typename T> struct Step {
  static constexpr bool kFromOutput = from_output(Act::Step);
  MLPB_HD T forward(T x) const { return m_select(x > T(0), T(1), T(0)); }
  MLPB_HD T derivative(T) const { return T(0); }
};

// The parsed activation of an op call: which one, its scalar parameters, and
// for maxout its pieces (rows of weight per output unit; 1 for the others).
struct ActSpec {
  Act act = Act::Relu;
  ActParams params;
  int64_t pieces = 1;
};

// Calls f(functor) with the elementwise functor of `spec` for scalar type T.
// Maxout is not elementwise: its "activation" after the max is the identity.
template <typename T, typename F>
void with_activation(const ActSpec& spec, F&& f) {
  switch (spec.act) {
    case Act::Identity:
    case Act::Maxout: f(Identity<T>{}); return;
    case Act::Sigmoid: f(Sigmoid<T>{}); return;
    case Act::Tanh: f(Tanh<T>{}); return;
    case Act::Relu: f(Relu<T>{}); return;
    case Act::LeakyRelu: f(LeakyRelu<T>{static_cast<T>(spec.params[Param::NegativeSlope])}); return;
    case Act::Elu: f(Elu<T>{static_cast<T>(spec.params[Param::Alpha])}); return;
    case Act::Gelu: f(Gelu<T>{}); return;
    case Act::GeluTanh: f(GeluTanh<T>{}); return;
    case Act::Silu: f(Silu<T>{}); return;
    case Act::Step: f(Step<T>{}); return;
    case Act::kCount: return;
  }
}

}  // namespace mlpbench
