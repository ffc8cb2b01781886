// ctest: the functor of every row of the activation table against a reference
// formula and against a central finite difference of its own forward; Philox
// against Random123's known answers. Header-only code: needs no libtorch.
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "../activations.h"
#include "../philox.h"

using namespace mlpbench;

namespace {

int failures = 0;

void expect_near(const std::string& what, double got, double want, double tol) {
  if (!(std::fabs(got - want) <= tol * (1.0 + std::fabs(want)))) {
    std::printf("FAIL %s: got %.17g, want %.17g\n", what.c_str(), got, want);
    ++failures;
  }
}

const double kPoints[] = {-30.0, -5.0, -1.5, -0.3, -1e-3, 1e-3, 0.2, 0.9, 2.5, 7.0, 30.0};

// forward against `reference`, derivative against a finite difference.
template <typename F>
void check(const std::string& name, const F& f, const std::function<double(double)>& reference) {
  for (double x : kPoints) {
    const double y = f.forward(x);
    expect_near(name + " forward at " + std::to_string(x), y, reference(x), 1e-12);
    const double h = 1e-6;
    const double numeric = (f.forward(x + h) - f.forward(x - h)) / (2 * h);
    const double analytic = F::kFromOutput ? f.derivative(y) : f.derivative(x);
    expect_near(name + " derivative at " + std::to_string(x), analytic, numeric, 1e-6);
    // float instantiation agrees with double to float precision.
    expect_near(name + " float forward at " + std::to_string(x),
                decltype(f.forward(x))(f.forward(x)), y, 1e-12);
  }
}

void check_float(const std::string& name, float got, double want) {
  expect_near(name, got, want, 1e-6);
}

}  // namespace

int main() {
  const double pi = 3.14159265358979323846;
  // A reference formula for every row of the activation table (maxout: its
  // elementwise part after the max, the identity), with the parameters below.
  ActParams params;
  params[Param::NegativeSlope] = 0.2;
  params[Param::Alpha] = 1.5;
  const std::pair<Act, std::function<double(double)>> references[] = {
      {Act::Identity, [](double x) { return x; }},
      {Act::Sigmoid, [](double x) { return 0.5 * (1 + std::tanh(x / 2)); }},
      {Act::Tanh, [](double x) { return (std::exp(2 * x) - 1) / (std::exp(2 * x) + 1); }},
      {Act::Relu, [](double x) { return std::max(x, 0.0); }},
      {Act::LeakyRelu, [](double x) { return x > 0 ? x : 0.2 * x; }},
      {Act::Elu, [](double x) { return x > 0 ? x : 1.5 * (std::exp(x) - 1); }},
      {Act::Gelu, [](double x) { return x * 0.5 * std::erfc(-x / std::sqrt(2.0)); }},
      {Act::GeluTanh,
       [pi](double x) {
         return 0.5 * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
       }},
      {Act::Silu, [](double x) { return x / (1 + std::exp(-x)); }},
      {Act::Maxout, [](double x) { return x; }},
      {Act::Step, [](double x) { return x > 0 ? 1.0 : 0.0; }},
  };
  for (const ActInfo& row : kActivations) {
    const std::function<double(double)>* reference = nullptr;
    for (const auto& [act, f] : references) {
      if (act == row.act) reference = &f;
    }
    const std::string name = std::string(row.name) + (row.approximate ? std::string("/") + row.approximate : "");
    if (!reference) {
      std::printf("FAIL %s: no reference formula in this test\n", name.c_str());
      ++failures;
      continue;
    }
    const ActSpec spec{row.act, params, 1};
    with_activation<double>(spec, [&](auto f) { check(name, f, *reference); });
  }

  // float instantiations against the double reference.
  for (double x : kPoints) {
    const float xf = static_cast<float>(x);
    check_float("sigmoid<float>", Sigmoid<float>{}.forward(xf), Sigmoid<double>{}.forward(xf));
    check_float("gelu<float>", Gelu<float>{}.forward(xf) / (1 + std::fabs(xf)),
                Gelu<double>{}.forward(xf) / (1 + std::fabs(xf)));
    check_float("silu<float>", Silu<float>{}.forward(xf) / (1 + std::fabs(xf)),
                Silu<double>{}.forward(xf) / (1 + std::fabs(xf)));
    check_float("elu<float>", Elu<float>{1.0f}.forward(xf) / (1 + std::fabs(xf)),
                Elu<double>{1.0}.forward(xf) / (1 + std::fabs(xf)));
  }

  // Random123 known-answer vectors for philox4x32-10.
  const Philox4 zero = philox4x32_10(0, 0, 0, 0, 0, 0);
  const Philox4 ones = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  const uint32_t want_zero[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  const uint32_t want_ones[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
  for (int i = 0; i < 4; ++i) {
    if (zero.v[i] != want_zero[i] || ones.v[i] != want_ones[i]) {
      std::printf("FAIL philox word %d\n", i);
      ++failures;
    }
  }
  // Dropout thresholds: p = 0 keeps everything, p = 1 nothing.
  // (Draws 0 and 0xFFFF, the extremes, both through keeps_draw's tie path.)
  const DropoutMask none = make_dropout_mask(0.0, 1, 0), all = make_dropout_mask(1.0, 1, 0);
  if (!none.keeps_draw(0u, 5) || all.keeps_draw(0xFFFFu, 5)) {
    std::printf("FAIL dropout threshold edge cases\n");
    ++failures;
  }

  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
