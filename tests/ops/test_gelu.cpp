// gelu: both nn.GELU variants against float64 references written from PyTorch's
// formulas, float32 (Eigen's vectorised erf/tanh) against float64, and the
// backward of both variants by finite differences.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
// nn.GELU(approximate='none'): x·Φ(x). erfc keeps the far negative tail accurate
// (x·0.5·(1+erf(x/√2)) cancels there), so the reference is at least as good as PyTorch's.
double gelu_exact_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

// nn.GELU(approximate='tanh'): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TensorD reference(const TensorD& x, GeluApprox approx) {
  TensorD out = TensorD::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    out.data()[i] = approx == GeluApprox::None ? gelu_exact_ref(x.data()[i]) : gelu_tanh_ref(x.data()[i]);
  return out;
}

// -10 .. 10 in steps of 1/per_unit, with 0 and ±10 exactly on the grid.
template <class T>
Tensor<T> grid(int64_t per_unit) {
  const int64_t half = 10 * per_unit, n = 2 * half + 1;
  Tensor<T> t = Tensor<T>::empty({n});
  for (int64_t i = 0; i < n; ++i)
    t.data()[i] = static_cast<T>(static_cast<double>(i - half) / static_cast<double>(per_unit));
  return t;
}

}  // namespace

TEST_CASE("gelu reference formulas are right", "[ops][gelu]") {
  // Guards the references independently of std::erfc: Φ(x) for x <= 0 is the integral of the
  // normal density over [x-12, x] (the rest is below 1e-32) by Simpson's rule, Φ(x) = 1 − Φ(−x)
  // above; integrating the tail keeps the far negative values accurate to relative 1e-12.
  auto phi_integral = [](double x) {
    const double a = -std::abs(x);
    const int n = 100000;
    const double h = 12.0 / n;
    auto f = [](double t) { return std::exp(-0.5 * t * t) / std::sqrt(2 * M_PI); };
    double s = f(a - 12.0) + f(a);
    for (int i = 1; i < n; ++i) s += (i % 2 ? 4 : 2) * f(a - 12.0 + i * h);
    const double tail = s * h / 3;
    return x <= 0 ? tail : 1 - tail;
  };
  for (double x : {-6.0, -3.0, -1.0, -0.1, 0.5, 2.0, 4.5}) {
    INFO("x = " << x);
    CHECK(gelu_exact_ref(x) == Approx(x * phi_integral(x)).epsilon(1e-12).margin(1e-14));
    // Both variants satisfy gelu(x) − gelu(−x) = x.
    CHECK(gelu_exact_ref(x) - gelu_exact_ref(-x) == Approx(x).epsilon(1e-15));
    CHECK(gelu_tanh_ref(x) - gelu_tanh_ref(-x) == Approx(x).epsilon(1e-15));
  }
}

TEST_CASE("gelu exact (erf) forward matches nn.GELU in float64", "[ops][gelu]") {
  const TensorD x = grid<double>(100);  // 2001 points over [-10, 10], 0 included
  const TensorD y = gelu(x);
  test::require_close(y, reference(x, GeluApprox::None), 1e-15, 1e-14);
  // The exact variant is the default.
  test::require_close(gelu(x, GeluApprox::None), y, 0, 0);
  const int64_t mid = x.numel() / 2;
  REQUIRE(x.data()[mid] == 0.0);
  CHECK(y.data()[mid] == 0.0);
  CHECK(y.data()[x.numel() - 1] == Approx(10.0).epsilon(1e-15));                // Φ(10) = 1 - 8e-24
  CHECK(std::abs(y.data()[0]) < 1e-15);                                         // -10·Φ(-10) ≈ -7.6e-23
  // Shape is kept for a multi-dim input.
  const TensorD x3 = test::randn<double>({2, 3, 5}, 11, 3.0);
  test::require_close(gelu(x3), reference(x3, GeluApprox::None), 1e-15, 1e-14);
}

TEST_CASE("gelu tanh forward matches nn.GELU(approximate='tanh') in float64", "[ops][gelu]") {
  const TensorD x = grid<double>(100);
  const TensorD y = gelu(x, GeluApprox::Tanh);
  test::require_close(y, reference(x, GeluApprox::Tanh), 1e-15, 1e-14);
  CHECK(y.data()[x.numel() / 2] == 0.0);
  CHECK(y.data()[x.numel() - 1] == 10.0);
  CHECK(y.data()[0] == 0.0);
  // The two variants differ measurably (≈1.5e-4 at x=-3), so a mixed-up enum would show.
  const TensorD e = gelu(x);
  double max_diff = 0;
  for (int64_t i = 0; i < x.numel(); ++i) max_diff = std::max(max_diff, std::abs(e.data()[i] - y.data()[i]));
  CHECK(max_diff > 1e-4);
}

TEST_CASE("gelu float32 (vectorised erf/tanh) agrees with float64", "[ops][gelu]") {
  // 40001 points: larger than one 16384-element parallel chunk and not a multiple of 64,
  // so the threaded path and the SIMD tails both run. The reference takes the float input
  // exactly, so only the op's own error is measured.
  const TensorF x = grid<float>(2000);
  const TensorD xd = to_double(x);
  // atol 1.5e-6: without FMA (builds without -march=native) Eigen's float erf is
  // ~3.5 ulp off near -1, which 0.5·|x| turns into ~1.1e-6 at x ≈ -5.5 (PyTorch's
  // float32 GELU errs by up to ~1e-6 on the same grid).
  for (GeluApprox a : {GeluApprox::None, GeluApprox::Tanh}) {
    INFO((a == GeluApprox::None ? "erf" : "tanh"));
    const TensorF y = gelu(x, a);
    test::require_close(y, reference(xd, a), 1.5e-6, 2e-7);
  }
  // Random inputs at a realistic activation size (MLP hidden of a small ViT).
  const TensorF r = test::randn<float>({8, 65, 96}, 12, 2.0);
  test::require_close(gelu(r), reference(to_double(r), GeluApprox::None), 1e-6, 2e-7);
  test::require_close(gelu(r, GeluApprox::Tanh), reference(to_double(r), GeluApprox::Tanh), 1e-6, 2e-7);
}

TEST_CASE("gelu backward matches finite differences", "[ops][gelu]") {
  // Values spread over the curved region and the tails; ±10 included.
  TensorD x = test::randn<double>({3, 7}, 13, 2.0);
  x.data()[0] = 10.0, x.data()[1] = -10.0, x.data()[2] = 0.0, x.data()[3] = -0.75;
  SECTION("erf") {
    test::check_gradients([](const std::vector<TensorD>& in) { return gelu(in[0]); }, {x});
  }
  SECTION("tanh") {
    test::check_gradients([](const std::vector<TensorD>& in) { return gelu(in[0], GeluApprox::Tanh); },
                          {x});
  }
}

namespace {
// max |float32 backward − float64 backward| over the grid is checked against atol.
void check_float_backward_on_grid(GeluApprox a, double atol) {
  TensorF xf = grid<float>(1000);
  xf.set_requires_grad(true);
  sum(gelu(xf, a)).backward();
  TensorD xd = to_double(xf.detach());
  xd.set_requires_grad(true);
  sum(gelu(xd, a)).backward();
  test::require_close(xf.grad(), xd.grad(), atol, 0);
}
}  // namespace

// Tolerance 1.5e-6 abs over [-10, 10]: PyTorch 1.13's own float32 backward on the same grid
// errs by at most 2.2e-7 (erf) and 1.03e-6 (tanh) against its float64 backward.
TEST_CASE("gelu erf backward in float32 agrees with the float64 derivative", "[ops][gelu]") {
  check_float_backward_on_grid(GeluApprox::None, 1.5e-6);
}

TEST_CASE("gelu tanh backward in float32 agrees with float64 where tanh saturates", "[ops][gelu]") {
  // At x = -4.868 the tanh argument is ≈ -7.91, just past ±7.905, where Eigen 3.4's float tanh
  // returns exactly ∓1; the derivative 0.5(1+th) + 0.5·x·(1-th²)·√(2/π)(1+3κx²) then comes out
  // as exactly 0 instead of ≈ -3.54e-6. (PyTorch's float32 backward gives -3.75e-6 there.)
  TensorF x = TensorF::from_data({3}, std::vector<float>{-4.868f, -4.9f, 4.868f});
  x.set_requires_grad(true);
  sum(gelu(x, GeluApprox::Tanh)).backward();
  TensorD xd = to_double(x.detach());
  xd.set_requires_grad(true);
  sum(gelu(xd, GeluApprox::Tanh)).backward();
  REQUIRE(xd.grad().data()[0] < -3e-6);  // the term is not negligible at float32 resolution
  CHECK(x.grad().data()[0] < 0.0f);
  test::require_close(x.grad(), xd.grad(), 5e-7, 0);
  check_float_backward_on_grid(GeluApprox::Tanh, 1.5e-6);
}
