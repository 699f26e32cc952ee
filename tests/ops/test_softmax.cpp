// softmax over the last dim: forward against a float64 loop (log-sum-exp form),
// rows summing to one, stability for large logits, backward by finite
// differences, float32 against float64, and misuse.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
TensorD softmax_reference(const TensorD& x) {
  const int64_t n = x.shape().back(), R = x.numel() / n;
  TensorD out = TensorD::empty(x.shape());
  for (int64_t r = 0; r < R; ++r) {
    const double* z = x.data() + r * n;
    double m = z[0];
    for (int64_t k = 1; k < n; ++k) m = std::max(m, z[k]);
    double s = 0;
    for (int64_t k = 0; k < n; ++k) s += std::exp(z[k] - m);
    for (int64_t k = 0; k < n; ++k) out.data()[r * n + k] = std::exp(z[k] - m) / s;
  }
  return out;
}

template <class T>
void require_rows_sum_to_one(const Tensor<T>& y, double tol) {
  const int64_t n = y.shape().back(), R = y.numel() / n;
  for (int64_t r = 0; r < R; ++r) {
    double s = 0;
    bool negative = false;
    for (int64_t k = 0; k < n; ++k) {
      negative |= y.data()[r * n + k] < 0;
      s += y.data()[r * n + k];
    }
    if (negative || !(std::abs(s - 1.0) <= tol))
      FAIL("row " << r << " sums to " << s << (negative ? " with a negative entry" : ""));
  }
}
}  // namespace

TEST_CASE("softmax forward matches a float64 reference", "[ops][softmax]") {
  SECTION("3-d input, softmax over the last dim only") {
    const TensorD x = test::randn<double>({2, 3, 7}, 21, 3.0);
    const TensorD y = softmax(x);
    test::require_close(y, softmax_reference(x), 1e-15, 1e-13);
    require_rows_sum_to_one(y, 1e-14);
  }
  SECTION("a hand-checked row") {
    // softmax([0, ln 2, ln 5]) = [1, 2, 5] / 8
    const TensorD x = TensorD::from_data({1, 3}, {0.0, std::log(2.0), std::log(5.0)});
    const TensorD y = softmax(x);
    CHECK(y.data()[0] == Approx(0.125).epsilon(1e-15));
    CHECK(y.data()[1] == Approx(0.25).epsilon(1e-15));
    CHECK(y.data()[2] == Approx(0.625).epsilon(1e-15));
  }
  SECTION("1-d input and a single-element last dim") {
    const TensorD x = test::randn<double>({9}, 22);
    test::require_close(softmax(x), softmax_reference(x), 1e-15, 1e-13);
    const TensorD one = test::randn<double>({4, 1}, 23, 50.0);
    test::require_close(softmax(one), TensorD::ones({4, 1}), 0, 0);
  }
  SECTION("rows larger than the parallel threshold") {
    const TensorD x = test::randn<double>({80, 512}, 24, 4.0);  // 40960 elements
    const TensorD y = softmax(x);
    test::require_close(y, softmax_reference(x), 1e-15, 1e-13);
    require_rows_sum_to_one(y, 1e-13);
  }
}

TEST_CASE("softmax is stable for large logits", "[ops][softmax]") {
  SECTION("float64") {
    const TensorD x = TensorD::from_data({3, 2}, {1000.0, 1001.0, -1000.0, -1001.0, 1e300, 0.0});
    const TensorD y = softmax(x);
    const double e = std::exp(-1.0);
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y.data()[i]));
    CHECK(y.data()[0] == Approx(e / (1 + e)).epsilon(1e-14));
    CHECK(y.data()[1] == Approx(1 / (1 + e)).epsilon(1e-14));
    CHECK(y.data()[2] == Approx(1 / (1 + e)).epsilon(1e-14));
    CHECK(y.data()[3] == Approx(e / (1 + e)).epsilon(1e-14));
    CHECK(y.data()[4] == 1.0);
    // exp(-1e300) underflows; Eigen's exp clamps its input near -708 on SSE-only
    // builds and returns ~1e-308 rather than an exact 0. Either is correct.
    CHECK(y.data()[5] < 1e-300);
  }
  SECTION("float32") {
    const TensorF x = TensorF::from_data({2, 3}, {1000.f, 1001.f, 999.f, -1e4f, -1e4f + 1.f, -1e4f});
    const TensorF y = softmax(x);
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y.data()[i]));
    const TensorD ref = softmax_reference(
        TensorD::from_data({2, 3}, {1000.0, 1001.0, 999.0, -1e4, -1e4 + 1.0, -1e4}));
    test::require_close(y, ref, 1e-7, 1e-6);
  }
}

TEST_CASE("softmax backward matches finite differences", "[ops][softmax]") {
  test::check_gradients([](const std::vector<TensorD>& in) { return softmax(in[0]); },
                        {test::randn<double>({2, 3, 5}, 25, 2.0)});
  // Large, peaked logits: gradients are tiny but must still be right.
  TensorD x = test::randn<double>({2, 4}, 26);
  x.data()[1] += 1000.0, x.data()[4] -= 1000.0;
  test::check_gradients([](const std::vector<TensorD>& in) { return softmax(in[0]); }, {x});
}

TEST_CASE("softmax in float32 agrees with float64", "[ops][softmax]") {
  // Attention-sized rows: (B·H·N, N) for B=4, H=3, N=65.
  const TensorD x = test::randn<double>({4 * 3 * 65, 65}, 27, 3.0);
  const TensorF y = softmax(to_float(x));
  test::require_close(y, softmax_reference(x), 1e-7, 1e-5);
  require_rows_sum_to_one(y, 1e-5);

  TensorF xf = to_float(x);
  xf.set_requires_grad(true);
  const TensorD w = test::randn<double>(x.shape(), 28);
  sum(mul(softmax(xf), to_float(w))).backward();
  TensorD xd = x.clone();
  xd.set_requires_grad(true);
  sum(mul(softmax(xd), w)).backward();
  test::require_close(xf.grad(), xd.grad(), 1e-6, 1e-4);
}

TEST_CASE("softmax rejects an empty last dim and a scalar", "[ops][softmax][errors]") {
  REQUIRE_THROWS_WITH(softmax(TensorF::zeros({3, 0})),
                      Catch::Contains("softmax: need a non-empty last dim, got (3,0)"));
  REQUIRE_THROWS_WITH(softmax(TensorF::zeros({})),
                      Catch::Contains("softmax: need a non-empty last dim, got ()"));
}
