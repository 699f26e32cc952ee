// patch_embed: against a direct float64 Conv2d (stride = kernel = P) followed
// by timm's flatten(2).transpose(1,2), so out[b, py·(W/P)+px, c]; backward of
// x, weight and bias by finite differences; float32 against float64; errors.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
// x (B,ch,H,W), w (C,ch,P,P), b (C) or undefined -> (B, (H/P)·(W/P), C)
TensorD conv_patch_reference(const TensorD& x, const TensorD& w, const TensorD& b) {
  const int64_t B = x.size(0), ch = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t C = w.size(0), P = w.size(2), gh = H / P, gw = W / P;
  TensorD out = TensorD::empty({B, gh * gw, C});
  for (int64_t n = 0; n < B; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oy = 0; oy < gh; ++oy)      // conv output row
        for (int64_t ox = 0; ox < gw; ++ox) {  // conv output column
          double acc = b.defined() ? b(c) : 0.0;
          for (int64_t k = 0; k < ch; ++k)
            for (int64_t ky = 0; ky < P; ++ky)
              for (int64_t kx = 0; kx < P; ++kx)
                acc += w(c, k, ky, kx) * x(n, k, oy * P + ky, ox * P + kx);
          // conv (B,C,gh,gw) -> flatten(2) (B,C,gh·gw) -> transpose(1,2) (B,gh·gw,C)
          out(n, oy * gw + ox, c) = acc;
        }
  return out;
}
}  // namespace

TEST_CASE("patch_embed forward matches a direct float64 convolution", "[ops][patch_embed]") {
  struct Case { int64_t B, ch, H, W, P, C; };
  for (const Case& k : {Case{2, 3, 8, 12, 4, 5}, Case{1, 1, 6, 4, 2, 3}, Case{2, 2, 9, 6, 3, 4},
                        Case{1, 3, 4, 4, 4, 6}, Case{3, 2, 5, 5, 1, 2}}) {
    INFO("B " << k.B << " ch " << k.ch << " H " << k.H << " W " << k.W << " P " << k.P << " C " << k.C);
    const auto x = test::randn<double>({k.B, k.ch, k.H, k.W}, 1);
    const auto w = test::randn<double>({k.C, k.ch, k.P, k.P}, 2);
    const auto b = test::randn<double>({k.C}, 3);
    const TensorD out = patch_embed(x, w, b);
    REQUIRE(out.shape() == Shape{k.B, (k.H / k.P) * (k.W / k.P), k.C});
    test::require_close(out, conv_patch_reference(x, w, b), 1e-12, 1e-12);
    test::require_close(patch_embed(x, w), conv_patch_reference(x, w, {}), 1e-12, 1e-12);
  }
}

TEST_CASE("patch_embed puts patches in row-major order", "[ops][patch_embed]") {
  // One channel, P = 2, an all-ones kernel: each token is the sum of its patch,
  // so token order is visible directly. Image 4x6 = 2x3 patches:
  //   x = 0..23 row-major; patch (py,px) sums rows 2py..2py+1, cols 2px..2px+1.
  const auto x = TensorD::arange(24).view_as_shape({1, 1, 4, 6});
  const TensorD out = patch_embed(x, TensorD::ones({1, 1, 2, 2}));
  REQUIRE(out.shape() == Shape{1, 6, 1});
  // (0+1+6+7), (2+3+8+9), (4+5+10+11), then the second patch row.
  REQUIRE(out.to_vector() == std::vector<double>{14, 22, 30, 62, 70, 78});
}

TEST_CASE("patch_embed backward matches finite differences", "[ops][patch_embed]") {
  using In = const std::vector<TensorD>&;
  SECTION("x, weight and bias; H != W, two channels") {
    test::check_gradients([](In in) { return patch_embed(in[0], in[1], in[2]); },
                          {test::randn<double>({2, 2, 4, 6}, 11), test::randn<double>({3, 2, 2, 2}, 12),
                           test::randn<double>({3}, 13)});
  }
  SECTION("x and weight without bias; three channels") {
    test::check_gradients([](In in) { return patch_embed(in[0], in[1]); },
                          {test::randn<double>({1, 3, 6, 3}, 14), test::randn<double>({2, 3, 3, 3}, 15)});
  }
}

TEST_CASE("patch_embed parameter gradients accumulate, and x may need no gradient",
          "[ops][patch_embed]") {
  const auto x = test::randn<double>({2, 2, 4, 6}, 21);
  auto w = test::randn<double>({3, 2, 2, 2}, 22), b = test::randn<double>({3}, 23);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const auto g = test::randn<double>({2, 6, 3}, 24);
  sum(mul(patch_embed(x, w, b), g)).backward();
  const TensorD gw = w.grad().clone(), gb = b.grad().clone();
  // db[c] = Σ_{b,n} g[b,n,c]
  for (int64_t c = 0; c < 3; ++c) {
    double acc = 0;
    for (int64_t r = 0; r < 12; ++r) acc += g.data()[r * 3 + c];
    REQUIRE(gb(c) == Approx(acc).epsilon(1e-12));
  }
  sum(mul(patch_embed(x, w, b), g)).backward();
  test::require_close(w.grad(), scale(gw, 2.0), 1e-12, 1e-12);
  test::require_close(b.grad(), scale(gb, 2.0), 1e-12, 1e-12);
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("patch_embed in float32 agrees with float64 at ViT sizes", "[ops][patch_embed]") {
  // CIFAR-sized ViT stem: 32x32x3, P = 4, C = 192; then a ragged 24x40, P = 8, C = 70.
  struct Case { int64_t B, ch, H, W, P, C; };
  for (const Case& k : {Case{2, 3, 32, 32, 4, 192}, Case{2, 3, 24, 40, 8, 70}}) {
    INFO("H " << k.H << " W " << k.W << " P " << k.P << " C " << k.C);
    const auto x = test::randn<double>({k.B, k.ch, k.H, k.W}, 31);
    const auto w = test::randn<double>({k.C, k.ch, k.P, k.P}, 32, 0.05);
    const auto b = test::randn<double>({k.C}, 33, 0.1);
    test::require_close(patch_embed(to_float(x), to_float(w), to_float(b)), conv_patch_reference(x, w, b),
                        1e-5, 1e-4);
    // Gradients: float32 autograd against float64 autograd.
    const auto g = test::randn<double>({k.B, (k.H / k.P) * (k.W / k.P), k.C}, 34);
    TensorF xf = to_float(x), wf = to_float(w), bf = to_float(b);
    TensorD xd = x.clone(), wd = w.clone(), bd = b.clone();
    for (auto* t : {&xf, &wf, &bf}) t->set_requires_grad(true);
    for (auto* t : {&xd, &wd, &bd}) t->set_requires_grad(true);
    sum(mul(patch_embed(xf, wf, bf), to_float(g))).backward();
    sum(mul(patch_embed(xd, wd, bd), g)).backward();
    test::require_close(xf.grad(), xd.grad(), 1e-5, 1e-4);
    test::require_close(wf.grad(), wd.grad(), 1e-3, 1e-4);
    test::require_close(bf.grad(), bd.grad(), 1e-3, 1e-4);
  }
}

TEST_CASE("patch_embed rejects bad shapes", "[ops][patch_embed][errors]") {
  const auto w = test::randn<float>({4, 3, 4, 4}, 1);
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({1, 3, 10, 8}, 2), w),
                      Catch::Contains("patch_embed: image 10x8 is not divisible by patch size 4"));
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({1, 3, 8, 6}, 2), w),
                      Catch::Contains("patch_embed: image 8x6 is not divisible by patch size 4"));
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({1, 2, 8, 8}, 3), w),
                      Catch::Contains("patch_embed: x (1,2,8,8) (need B,ch,H,W) vs weight (4,3,4,4)"));
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({3, 8, 8}, 4), w),
                      Catch::Contains("patch_embed: x (3,8,8) (need B,ch,H,W)"));
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({1, 3, 8, 8}, 5), test::randn<float>({4, 3, 4, 2}, 6)),
                      Catch::Contains("vs weight (4,3,4,2) (need C,ch,P,P)"));
  REQUIRE_THROWS_WITH(patch_embed(test::randn<float>({1, 3, 8, 8}, 7), w, test::randn<float>({5}, 8)),
                      Catch::Contains("patch_embed: bias (5) vs weight (4,3,4,4)"));
}
