// dropout (nn.Dropout) and drop_path (timm DropPath): identity outside training,
// kept values scaled by 1/(1-p), the dropped fraction statistically p, masks
// reproducible from the generator (and independent of the thread count),
// drop_path deciding per sample, the backward equal to the mask, and misuse.
#include "support/check.hpp"

using namespace vit;

namespace {
// Dropped fraction of a dropout output; every x_i is non-zero, so out_i == 0 means dropped.
template <class T>
double dropped_fraction(const Tensor<T>& out) {
  int64_t zeros = 0;
  for (int64_t i = 0; i < out.numel(); ++i) zeros += out.data()[i] == T(0);
  return static_cast<double>(zeros) / static_cast<double>(out.numel());
}

// Each element is either 0 or x/(1-p) (to rounding); returns the 0/1 keep pattern.
template <class T>
std::vector<int> require_zero_or_scaled(const Tensor<T>& out, const Tensor<T>& x, double p, double rtol) {
  REQUIRE(out.shape() == x.shape());
  std::vector<int> keep(out.numel());
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double o = out.data()[i], want = static_cast<double>(x.data()[i]) / (1.0 - p);
    keep[i] = o != 0.0;
    if (x.data()[i] == T(0) || (keep[i] && !(std::abs(o - want) <= rtol * std::abs(want)))) {
      FAIL("element " << i << ": x " << x.data()[i] << " out " << o << ", want 0 or " << want);
    }
  }
  return keep;
}

template <class T>
Tensor<T> nonzero_randn(const Shape& s, uint64_t seed) {
  Tensor<T> x = test::randn<T>(s, seed);
  for (int64_t i = 0; i < x.numel(); ++i)
    if (x.data()[i] == T(0)) x.data()[i] = T(1);
  return x;
}
}  // namespace

TEST_CASE("dropout and drop_path are the identity outside training or at p = 0", "[ops][dropout]") {
  const TensorD x = nonzero_randn<double>({4, 5, 6}, 41);
  Generator g(1);
  for (double p : {0.0, 0.5, 0.9}) {
    INFO("p = " << p);
    const TensorD a = dropout(x, p, false, g), b = drop_path(x, p, false, g);
    test::require_close(a, x, 0, 0);
    test::require_close(b, x, 0, 0);
  }
  test::require_close(dropout(x, 0.0, true, g), x, 0, 0);
  test::require_close(drop_path(x, 0.0, true, g), x, 0, 0);
  // The identity draws no random numbers: evaluation does not shift the training stream.
  CHECK(g.offset() == 0);
  // And it is still differentiable (gradient 1) when returned as is.
  TensorD xr = x.clone();
  xr.set_requires_grad(true);
  sum(add(dropout(xr, 0.3, false, g), drop_path(xr, 0.0, true, g))).backward();
  test::require_close(xr.grad(), TensorD::full(x.shape(), 2.0), 0, 0);
}

TEST_CASE("dropout in training zeroes elements and scales the rest by 1/(1-p)", "[ops][dropout]") {
  SECTION("float64") {
    const TensorD x = nonzero_randn<double>({16, 33}, 42);
    Generator g(2);
    const TensorD y = dropout(x, 0.25, true, g);
    const auto keep = require_zero_or_scaled(y, x, 0.25, 1e-15);
    int kept = 0;
    for (int k : keep) kept += k;
    CHECK(kept > 0);
    CHECK(kept < x.numel());
    CHECK(g.offset() > 0);  // the generator advanced
  }
  SECTION("float32") {
    const TensorF x = nonzero_randn<float>({7, 129}, 43);
    Generator g(3);
    require_zero_or_scaled(dropout(x, 0.6, true, g), x, 0.6, 2e-7);
  }
}

TEST_CASE("dropout drops a fraction p of elements", "[ops][dropout]") {
  // n = 2^20: the dropped fraction has std sqrt(p(1-p)/n) <= 4.9e-4; allow 6 std.
  // Large enough for the threaded mask path.
  const int64_t n = int64_t(1) << 20;
  const TensorF x = TensorF::ones({n});
  for (double p : {0.1, 0.5, 0.9}) {
    INFO("p = " << p);
    Generator g(static_cast<uint64_t>(p * 100));
    const double frac = dropped_fraction(dropout(x, p, true, g));
    CHECK(std::abs(frac - p) <= 6 * std::sqrt(p * (1 - p) / static_cast<double>(n)));
  }
}

TEST_CASE("dropout masks follow the generator seed and state", "[ops][dropout]") {
  const TensorD x = nonzero_randn<double>({64, 50}, 44);
  auto mask_of = [&](Generator& g) {
    const TensorD y = dropout(x, 0.5, true, g);
    std::vector<int> m(y.numel());
    for (int64_t i = 0; i < y.numel(); ++i) m[i] = y.data()[i] != 0;
    return m;
  };
  Generator a(7), b(7), c(8);
  const auto ma = mask_of(a), mb = mask_of(b), mc = mask_of(c);
  CHECK(ma == mb);  // same seed -> same mask
  CHECK(ma != mc);  // different seed -> different mask
  CHECK(mask_of(a) != ma);  // the next draw from the same generator is a new mask

  // A restored state replays the mask.
  Generator d(9);
  const uint64_t seed = d.seed(), offset = d.offset();
  const auto m1 = mask_of(d);
  d.set_state(seed, offset);
  CHECK(mask_of(d) == m1);
}

TEST_CASE("dropout masks do not depend on the thread count", "[ops][dropout]") {
  const int saved = num_threads();
  const TensorF x = TensorF::ones({100000});  // above the parallel threshold
  set_num_threads(1);
  Generator g1(10);
  const TensorF one = dropout(x, 0.3, true, g1);
  set_num_threads(4);
  Generator g4(10);
  const TensorF four = dropout(x, 0.3, true, g4);
  set_num_threads(saved);
  test::require_close(one, four, 0, 0);
}

TEST_CASE("drop_path drops whole samples", "[ops][dropout][drop_path]") {
  const int64_t B = 4000, N = 3, C = 5, inner = N * C;
  const TensorD x = nonzero_randn<double>({B, N, C}, 45);
  const double p = 0.3;
  Generator g(11);
  const TensorD y = drop_path(x, p, true, g);
  const auto keep = require_zero_or_scaled(y, x, p, 1e-15);
  int64_t dropped = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 1; i < inner; ++i)
      if (keep[b * inner + i] != keep[b * inner]) FAIL("sample " << b << " is partly dropped at " << i);
    dropped += keep[b * inner] == 0;
  }
  // Fraction of dropped samples: std sqrt(p(1-p)/B) ≈ 7.2e-3; allow 6 std.
  CHECK(std::abs(static_cast<double>(dropped) / B - p) <= 6 * std::sqrt(p * (1 - p) / B));

  // Same seed -> same samples dropped.
  Generator g2(11);
  test::require_close(drop_path(x, p, true, g2), y, 0, 0);

  // A 1-d input is one value per sample.
  const TensorF v = nonzero_randn<float>({50}, 46);
  Generator g3(12);
  require_zero_or_scaled(drop_path(v, 0.5, true, g3), v, 0.5, 2e-7);
}

TEST_CASE("dropout backward is the mask", "[ops][dropout]") {
  const double p = 0.4;
  SECTION("analytic: dx = dout * mask, mask read off the forward output") {
    for (bool per_sample : {false, true}) {
      INFO((per_sample ? "drop_path" : "dropout"));
      TensorD x = nonzero_randn<double>({6, 4, 5}, 47);
      x.set_requires_grad(true);
      Generator g(13);
      const TensorD y = per_sample ? drop_path(x, p, true, g) : dropout(x, p, true, g);
      const TensorD dout = test::randn<double>(x.shape(), 48);
      y.backward(dout);
      const auto keep = require_zero_or_scaled(y.detach(), x.detach(), p, 1e-15);
      TensorD want = TensorD::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i) want.data()[i] = keep[i] ? dout.data()[i] / (1 - p) : 0.0;
      test::require_close(x.grad(), want, 0, 1e-15);
    }
  }
  SECTION("finite differences with the generator re-created per call") {
    test::check_gradients(
        [p](const std::vector<TensorD>& in) {
          Generator g(14);
          return dropout(in[0], p, true, g);
        },
        {nonzero_randn<double>({3, 7}, 49)});
    test::check_gradients(
        [p](const std::vector<TensorD>& in) {
          Generator g(15);
          return drop_path(in[0], p, true, g);
        },
        {nonzero_randn<double>({8, 2, 3}, 50)});
  }
}

TEST_CASE("dropout and drop_path reject p outside 0 <= p < 1", "[ops][dropout][errors]") {
  const TensorF x = TensorF::ones({2, 3});
  Generator g(1);
  for (bool training : {true, false}) {
    REQUIRE_THROWS_WITH(dropout(x, 1.0, training, g), Catch::Contains("dropout: p must be in [0, 1), got 1"));
    REQUIRE_THROWS_WITH(dropout(x, -0.1, training, g),
                        Catch::Contains("dropout: p must be in [0, 1), got -0.1"));
    REQUIRE_THROWS_WITH(dropout(x, std::nan(""), training, g),
                        Catch::Contains("dropout: p must be in [0, 1), got nan"));
    REQUIRE_THROWS_WITH(drop_path(x, 1.5, training, g),
                        Catch::Contains("drop_path: p must be in [0, 1), got 1.5"));
    REQUIRE_THROWS_WITH(drop_path(x, -1.0, training, g),
                        Catch::Contains("drop_path: p must be in [0, 1), got -1"));
  }
  REQUIRE_THROWS_WITH(drop_path(TensorF::ones({}), 0.5, true, g),
                      Catch::Contains("drop_path: need a batch dim, got ()"));
}
