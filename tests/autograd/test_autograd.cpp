// Autograd: leaf accumulation, zero_grad, detach, NoGradGuard, backward's
// errors, tensors used more than once, gradient aliasing through residual adds,
// and the graph being freed (saved tensors released) after backward.
#include <cmath>
#include <string>
#include <vector>

#include "support/check.hpp"

using namespace vit;
using Catch::Contains;

namespace {
TensorD leaf(const Shape& s, uint64_t seed, double std = 1.0) {
  TensorD t = test::randn<double>(s, seed, std);
  t.set_requires_grad(true);
  return t;
}
TensorD leaf_values(const Shape& s, std::vector<double> v) {
  TensorD t = TensorD::from_data(s, v);
  t.set_requires_grad(true);
  return t;
}
std::vector<double> values(const TensorD& t) {
  REQUIRE(t.defined());
  return t.to_vector();
}
}  // namespace

TEST_CASE("leaf gradients accumulate across backward calls", "[autograd]") {
  TensorD x = leaf_values({3}, {1, 2, 3});
  const TensorD w = TensorD::from_data({3}, std::vector<double>{0.5, -1, 4});
  sum(mul(x, w)).backward();
  CHECK(values(x.grad()) == std::vector<double>{0.5, -1, 4});
  sum(mul(x, w)).backward();
  CHECK(values(x.grad()) == std::vector<double>{1, -2, 8});
  sum(scale(x, 3.0)).backward();
  CHECK(values(x.grad()) == std::vector<double>{4, 1, 11});
  CHECK(x.is_leaf());
  CHECK_FALSE(w.grad().defined());  // w does not require grad
  // A leaf as the root of backward accumulates its output gradient too.
  x.backward(TensorD::full({3}, 0.5));
  CHECK(values(x.grad()) == std::vector<double>{4.5, 1.5, 11.5});
  TensorD y = leaf_values({2}, {7, 8});
  y.backward(TensorD::full({2}, 2.0));
  y.backward(TensorD::full({2}, 3.0));
  CHECK(values(y.grad()) == std::vector<double>{5, 5});
}

TEST_CASE("two leaves fed by one add keep separate gradients across backward calls",
          "[autograd][aliasing]") {
  // add's backward hands the same gradient to both inputs; the leaves must not
  // end up sharing one buffer that the next backward then adds into twice.
  TensorD a = leaf_values({3}, {1, 2, 3}), b = leaf_values({3}, {4, 5, 6});
  sum(add(a, b)).backward();
  CHECK(values(a.grad()) == std::vector<double>{1, 1, 1});
  CHECK(values(b.grad()) == std::vector<double>{1, 1, 1});
  sum(add(a, b)).backward();
  CHECK(values(a.grad()) == std::vector<double>{2, 2, 2});
  CHECK(values(b.grad()) == std::vector<double>{2, 2, 2});
  // Zeroing or updating one parameter's gradient must not touch the other's.
  a.zero_grad();
  CHECK(values(b.grad()) == std::vector<double>{2, 2, 2});
}

TEST_CASE("zero_grad zeroes in place, keeping the buffer", "[autograd]") {
  TensorF x = TensorF::from_data({2, 2}, std::vector<float>{1, 2, 3, 4});
  x.set_requires_grad(true);
  x.zero_grad();  // no gradient yet: a no-op
  CHECK_FALSE(x.grad().defined());
  sum(mul(x, x)).backward();
  const float* buffer = x.grad().data();
  CHECK(x.grad().to_vector() == std::vector<float>{2, 4, 6, 8});
  x.zero_grad();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().data() == buffer);
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 0, 0});
  // The next backward accumulates into that same buffer.
  sum(mul(x, x)).backward();
  CHECK(x.grad().data() == buffer);
  CHECK(x.grad().to_vector() == std::vector<float>{2, 4, 6, 8});
}

TEST_CASE("detach shares storage and stops the gradient", "[autograd]") {
  TensorD x = leaf_values({3}, {1, 2, 3});
  const TensorD y = mul(x, x);
  const TensorD d = y.detach();
  CHECK(d.shares_storage(y));
  CHECK(d.data() == y.data());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(d.is_leaf());
  // z = x * detach(x*x): only the direct path contributes, dz/dx = x^2.
  sum(mul(x, d)).backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 4, 9});
  // A detached leaf can be written and the original sees it.
  d.data()[0] = 100;
  CHECK(y.data()[0] == 100);
}

TEST_CASE("NoGradGuard records nothing and restores the mode, also nested", "[autograd]") {
  TensorD x = leaf_values({2}, {1, 2});
  REQUIRE(GradMode::is_enabled());
  {
    NoGradGuard outer;
    CHECK_FALSE(GradMode::is_enabled());
    const TensorD y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK(x.storage_use_count() == 1);  // nothing saved x for a backward
    {
      NoGradGuard inner;
      CHECK_FALSE(GradMode::is_enabled());
    }
    CHECK_FALSE(GradMode::is_enabled());  // the inner guard restores "off", not "on"
    CHECK_FALSE(add(x, x).requires_grad());
    CHECK_THROWS_WITH(sum(y).backward(), Contains("does not require grad"));
  }
  CHECK(GradMode::is_enabled());
  const TensorD z = mul(x, x);
  CHECK(z.requires_grad());
  REQUIRE(z.grad_fn() != nullptr);
  CHECK(std::string(z.grad_fn()->name()) == "mul");
  // An exception unwinding through the guard restores the mode too.
  try {
    NoGradGuard g;
    throw Error("boom");
  } catch (const Error&) {
  }
  CHECK(GradMode::is_enabled());
}

TEST_CASE("backward errors", "[autograd][errors]") {
  TensorD x = leaf({2, 3}, 1);
  SECTION("backward twice on the same loss") {
    const TensorD loss = sum(mul(x, x));
    loss.backward();
    CHECK_THROWS_WITH(loss.backward(), Contains("already freed"));
    CHECK_THROWS_AS(loss.backward(), Error);
  }
  SECTION("non-scalar output without an output gradient") {
    const TensorD y = mul(x, x);
    CHECK_THROWS_WITH(y.backward(), Contains("not a scalar"));
    CHECK_THROWS_WITH(y.backward(), Contains("(2,3)"));
  }
  SECTION("explicit output gradient of the wrong shape") {
    const TensorD y = mul(x, x);
    CHECK_THROWS_WITH(y.backward(TensorD::ones({3, 2})),
                      Contains("output gradient (3,2) does not match output (2,3)"));
    CHECK_THROWS_AS(y.backward(TensorD::ones({6})), Error);
    // The failed calls left the graph intact: a correct call still works.
    y.backward(TensorD::ones({2, 3}));
    REQUIRE(x.grad().defined());
    for (int64_t i = 0; i < 6; ++i) CHECK(x.grad().data()[i] == 2 * x.data()[i]);
  }
  SECTION("a tensor that does not require grad") {
    const TensorD c = TensorD::ones({1});
    CHECK_THROWS_WITH(c.backward(), Contains("does not require grad"));
    const TensorD d = sum(mul(c, c));
    CHECK_FALSE(d.requires_grad());
    CHECK_THROWS_WITH(d.backward(), Contains("does not require grad"));
  }
  SECTION("set_requires_grad only on leaves") {
    TensorD y = mul(x, x);
    CHECK_THROWS_WITH(y.set_requires_grad(false), Contains("only leaf tensors"));
  }
}

TEST_CASE("backward with an explicit output gradient", "[autograd]") {
  // y = x*x*w (elementwise), dL/dx = G * 2 x w, dL/dw = G * x^2.
  TensorD x = leaf_values({2, 2}, {1, -2, 3, 0.5});
  TensorD w = leaf_values({2, 2}, {2, 3, -1, 4});
  const TensorD G = TensorD::from_data({2, 2}, std::vector<double>{1, 0.5, -2, 3});
  const std::vector<double> G_before = G.to_vector();
  mul(mul(x, x), w).backward(G);
  const std::vector<double> gx = values(x.grad()), gw = values(w.grad());
  for (int i = 0; i < 4; ++i) {
    const double xi = x.data()[i], wi = w.data()[i], Gi = G.data()[i];
    CHECK(gx[i] == Approx(Gi * 2 * xi * wi).epsilon(1e-14));
    CHECK(gw[i] == Approx(Gi * xi * xi).epsilon(1e-14));
  }
  CHECK(G.to_vector() == G_before);  // the caller's gradient is read, not consumed
}

TEST_CASE("backward does not alias the caller's output gradient", "[autograd][aliasing]") {
  // y = x + b: add passes the seed straight through. If the leaves' gradients
  // are the caller's tensor, zeroing them (every training step does) wipes it.
  TensorD x = leaf_values({3}, {1, 2, 3}), b = leaf_values({3}, {0, 0, 0});
  const TensorD G = TensorD::from_data({3}, std::vector<double>{1, 2, 3});
  add(x, b).backward(G);
  CHECK(values(x.grad()) == std::vector<double>{1, 2, 3});
  x.zero_grad();
  b.zero_grad();
  CHECK(G.to_vector() == std::vector<double>{1, 2, 3});
  // A leaf as the root: its gradient must not be the caller's tensor either.
  TensorD r = leaf_values({3}, {0, 0, 0});
  r.backward(G);
  r.backward(G);
  CHECK(values(r.grad()) == std::vector<double>{2, 4, 6});
  CHECK(G.to_vector() == std::vector<double>{1, 2, 3});
}

TEST_CASE("a tensor used twice gets the summed gradient", "[autograd]") {
  SECTION("x * x") {
    TensorD x = leaf_values({3}, {1, -2, 0.5});
    sum(mul(x, x)).backward();
    CHECK(values(x.grad()) == std::vector<double>{2, -4, 1});
  }
  SECTION("x + x") {
    TensorD x = leaf_values({3}, {1, -2, 0.5});
    sum(add(x, x)).backward();
    CHECK(values(x.grad()) == std::vector<double>{2, 2, 2});
  }
  SECTION("x - x") {
    TensorD x = leaf_values({2}, {3, 4});
    sum(sub(x, x)).backward();
    CHECK(values(x.grad()) == std::vector<double>{0, 0});
  }
  SECTION("diamond: y = tanh(x); z = y*y + tanh(y)") {
    TensorD x = leaf_values({4}, {-1.5, -0.2, 0.3, 2.0});
    const TensorD y = tanh(x);
    sum(add(mul(y, y), tanh(y))).backward();
    const std::vector<double> g = values(x.grad());
    for (int i = 0; i < 4; ++i) {
      const double yi = std::tanh(x.data()[i]), ty = std::tanh(yi);
      const double expected = (2 * yi + (1 - ty * ty)) * (1 - yi * yi);
      CHECK(g[i] == Approx(expected).epsilon(1e-13));
    }
    // The same function by finite differences.
    test::check_gradients(
        [](const std::vector<TensorD>& in) {
          const TensorD y2 = tanh(in[0]);
          return add(mul(y2, y2), tanh(y2));
        },
        {test::randn<double>({3, 4}, 21)});
  }
  SECTION("diamond with broadcasting: y = x*w; z = y + y*b (b broadcast over rows)") {
    test::check_gradients(
        [](const std::vector<TensorD>& in) {
          const TensorD y = mul(in[0], in[1]);
          return sub(mul(y, in[2]), scale(y, 0.5));
        },
        {test::randn<double>({3, 4}, 22), test::randn<double>({3, 4}, 23),
         test::randn<double>({4}, 24)});
  }
}

TEST_CASE("residual x + f(x): the aliased add gradient does not corrupt gradients",
          "[autograd][aliasing]") {
  // add hands one gradient buffer to both of its inputs; f's backward then reads
  // that buffer while gradients are being accumulated into x.
  SECTION("x + tanh(layer_norm(x, w, b))") {
    test::check_gradients(
        [](const std::vector<TensorD>& in) {
          return add(in[0], tanh(layer_norm(in[0], in[1], in[2], 1e-6)));
        },
        {test::randn<double>({3, 5}, 31), test::randn<double>({5}, 32),
         test::randn<double>({5}, 33)});
  }
  SECTION("pre-norm block: h = x + linear(ln(x)); out = h + gelu(linear(ln(h)))") {
    test::check_gradients(
        [](const std::vector<TensorD>& in) {
          const TensorD h = add(in[0], linear(layer_norm(in[0], in[1], in[2], 1e-6), in[3], in[4]));
          return add(h, gelu(linear(layer_norm(h, in[1], in[2], 1e-6), in[3])));
        },
        {test::randn<double>({2, 3, 4}, 41), test::randn<double>({4}, 42),
         test::randn<double>({4}, 43), test::randn<double>({4, 4}, 44, 0.5),
         test::randn<double>({4}, 45)});
  }
  SECTION("x + x * w") {
    test::check_gradients(
        [](const std::vector<TensorD>& in) { return add(in[0], mul(in[0], in[1])); },
        {test::randn<double>({2, 3}, 51), test::randn<double>({2, 3}, 52)});
  }
  SECTION("matmul(x, W) + x") {
    test::check_gradients(
        [](const std::vector<TensorD>& in) { return add(matmul(in[0], in[1]), in[0]); },
        {test::randn<double>({3, 3}, 53), test::randn<double>({3, 3}, 54)});
  }
  SECTION("hand-derived: x + x*w at x = 2, w = 3") {
    TensorD x = leaf_values({1}, {2}), w = leaf_values({1}, {3});
    sum(add(x, mul(x, w))).backward();
    CHECK(values(x.grad()) == std::vector<double>{4});  // 1 + w
    CHECK(values(w.grad()) == std::vector<double>{2});  // x
  }
}

TEST_CASE("backward frees the graph and releases saved tensors", "[autograd]") {
  TensorD x = leaf({4, 5}, 61);
  const TensorD w = test::randn<double>({4, 5}, 62);
  CHECK(x.storage_use_count() == 1);
  TensorD y = mul(x, w);  // saves detached handles of x and w
  CHECK(x.storage_use_count() == 2);
  CHECK(w.storage_use_count() == 2);
  TensorD t = tanh(y);  // saves its output
  CHECK(t.storage_use_count() == 2);
  const TensorD loss = sum(t);
  REQUIRE(y.grad_fn() != nullptr);
  loss.backward();
  CHECK(x.storage_use_count() == 1);
  CHECK(w.storage_use_count() == 1);
  CHECK(t.storage_use_count() == 1);
  CHECK(y.grad_fn() == nullptr);
  CHECK(loss.grad_fn() == nullptr);
  CHECK_FALSE(y.is_leaf());  // an op output whose graph is gone is not a leaf
  CHECK_FALSE(y.grad().defined());  // intermediate gradients are released too
  CHECK(x.grad().defined());
}

TEST_CASE("backward through an intermediate whose graph was already freed is an error",
          "[autograd][errors]") {
  // PyTorch: "Trying to backward through the graph a second time". Silently
  // treating y as a leaf would leave x without the second loss's gradient.
  TensorD x = leaf_values({2}, {1, 2});
  const TensorD y = mul(x, x);
  sum(y).backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 4});
  const TensorD z = sum(scale(y, 2.0));
  CHECK_THROWS_WITH(z.backward(), Contains("already freed"));
}

TEST_CASE("a training step is allocation-free and leak-free in steady state",
          "[autograd][allocator]") {
  Generator g(5);
  TensorF W = TensorF::normal({16, 8}, 0, 0.3, g), b = TensorF::zeros({16});
  TensorF lw = TensorF::ones({16}), lb = TensorF::zeros({16});
  for (TensorF* p : {&W, &b, &lw, &lb}) p->set_requires_grad(true);
  const TensorF x = TensorF::normal({4, 8}, 0, 1, g);
  auto step = [&] {
    const TensorF h = gelu(layer_norm(linear(x, W, b), lw, lb));
    const TensorF loss = mean(mul(h, h));
    loss.backward();
    NoGradGuard ng;
    for (TensorF* p : {&W, &b, &lw, &lb}) {
      const TensorF gr = p->grad();
      for (int64_t i = 0; i < p->numel(); ++i) p->data()[i] -= 0.01f * gr.data()[i];
      p->zero_grad();
    }
    return loss.item();
  };
  const float l0 = step();
  (void)step();
  auto& alloc = CpuCachingAllocator::instance();
  const AllocatorStats before = alloc.stats();
  float l = 0;
  for (int i = 0; i < 5; ++i) l = step();
  const AllocatorStats after = alloc.stats();
  CHECK(l < l0);  // the steps did something
  CHECK(after.system_allocs == before.system_allocs);
  CHECK(after.bytes_in_use == before.bytes_in_use);  // no graph kept alive by a cycle
}
