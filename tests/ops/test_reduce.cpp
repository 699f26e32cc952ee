// sum and mean, over everything and over one dim (keepdim true/false):
// forward against float64 loops, backward by finite differences, float32
// against float64 at ViT sizes, and the bad-dim error.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
// Reduces dim d of x (sum, or mean when `mean`), the output shape given by keepdim.
TensorD reduce_reference(const TensorD& x, int d, bool keepdim, bool mean) {
  const Shape& s = x.shape();
  Shape os = s;
  if (keepdim) os[d] = 1;
  else os.erase(os.begin() + d);
  TensorD out = TensorD::zeros(os);
  // Walk x; the output element is x's index with dim d dropped.
  std::vector<int64_t> idx(s.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, o = 0;
    for (int k = static_cast<int>(s.size()) - 1; k >= 0; --k) {
      idx[k] = rem % s[k];
      rem /= s[k];
    }
    for (size_t k = 0; k < s.size(); ++k)
      if (static_cast<int>(k) != d) o = o * s[k] + idx[k];
    out.data()[o] += x.data()[i];
  }
  if (mean)
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] /= s[d];
  return out;
}

double total(const TensorD& x) {
  double acc = 0;
  for (int64_t i = 0; i < x.numel(); ++i) acc += x.data()[i];
  return acc;
}
}  // namespace

TEST_CASE("sum and mean over everything match a float64 loop", "[ops][reduce]") {
  const auto x = test::randn<double>({3, 4, 5}, 1);
  const TensorD s = sum(x), m = mean(x);
  REQUIRE(s.shape() == Shape{});
  REQUIRE(m.shape() == Shape{});
  REQUIRE(s.item() == Approx(total(x)).epsilon(1e-14));
  REQUIRE(m.item() == Approx(total(x) / 60).epsilon(1e-14));
  // Hand-checked: 1 + 2 + ... + 6 = 21, mean 3.5
  const auto r = TensorD::from_data({2, 3}, {1, 2, 3, 4, 5, 6});
  REQUIRE(sum(r).item() == 21.0);
  REQUIRE(mean(r).item() == 3.5);
  REQUIRE(mean(to_float(r)).item() == 3.5f);
}

TEST_CASE("sum and mean over one dim match a float64 loop", "[ops][reduce]") {
  const auto x = test::randn<double>({3, 4, 5}, 2);
  for (int dim : {0, 1, 2, -1, -3})
    for (bool keepdim : {false, true})
      for (bool is_mean : {false, true}) {
        INFO((is_mean ? "mean" : "sum") << " dim " << dim << " keepdim " << keepdim);
        const int d = dim < 0 ? dim + 3 : dim;
        const TensorD got = is_mean ? mean(x, dim, keepdim) : sum(x, dim, keepdim);
        const TensorD ref = reduce_reference(x, d, keepdim, is_mean);
        REQUIRE(got.shape() == ref.shape());
        test::require_close(got, ref, 1e-14, 1e-14);
      }
  // Shapes spelled out once: (3,4,5) over dim 1
  REQUIRE(sum(x, 1).shape() == Shape{3, 5});
  REQUIRE(sum(x, 1, true).shape() == Shape{3, 1, 5});
  REQUIRE(mean(x, -1, true).shape() == Shape{3, 4, 1});
}

TEST_CASE("sum and mean backward match finite differences", "[ops][reduce]") {
  using In = const std::vector<TensorD>&;
  const auto x = test::randn<double>({2, 3, 4}, 3);
  SECTION("over everything") {
    test::check_gradients([](In in) { return sum(in[0]); }, {x});
    test::check_gradients([](In in) { return mean(in[0]); }, {x});
  }
  SECTION("over one dim, keepdim false and true") {
    for (int dim : {0, 1, 2, -1})
      for (bool keepdim : {false, true}) {
        INFO("dim " << dim << " keepdim " << keepdim);
        test::check_gradients([=](In in) { return sum(in[0], dim, keepdim); }, {x});
        test::check_gradients([=](In in) { return mean(in[0], dim, keepdim); }, {x});
      }
  }
  SECTION("layer-norm style: x - mean(x, -1, keepdim)") {
    test::check_gradients([](In in) { return sub(in[0], mean(in[0], -1, true)); }, {x});
  }
  SECTION("exact gradient of mean: 1/count everywhere") {
    auto y = x.clone();
    y.set_requires_grad(true);
    mean(y).backward();
    test::require_close(y.grad(), TensorD::full(x.shape(), 1.0 / 24), 0, 0);
  }
}

TEST_CASE("sum and mean in float32 agree with float64 at ViT sizes", "[ops][reduce]") {
  const auto x = test::randn<double>({8, 65, 192}, 4, 2.0);
  const TensorF xf = to_float(x);
  REQUIRE(static_cast<double>(sum(xf).item()) == Approx(total(x)).margin(1e-3));
  REQUIRE(static_cast<double>(mean(xf).item()) == Approx(total(x) / x.numel()).margin(1e-8));
  test::require_close(mean(xf, 1), reduce_reference(x, 1, false, true), 1e-5, 1e-5);
  test::require_close(sum(xf, -1, true), reduce_reference(x, 2, true, false), 1e-4, 1e-5);
  test::require_close(sum(xf, 0), reduce_reference(x, 0, false, false), 1e-5, 1e-5);
}

TEST_CASE("sum and mean reject a dim out of range", "[ops][reduce][errors]") {
  const auto x = test::randn<float>({2, 3}, 5);
  REQUIRE_THROWS_WITH(sum(x, 2), Catch::Contains("sum: dim 2 out of range for rank 2"));
  REQUIRE_THROWS_WITH(mean(x, -3, true), Catch::Contains("mean: dim -3 out of range for rank 2"));
}
