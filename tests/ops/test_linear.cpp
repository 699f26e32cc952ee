// linear and matmul: forward against float64 loops, backward by finite
// differences, float32 (our AVX2 sgemm where the host has it) against float64
// at ViT sizes, parameter-gradient accumulation, and shape errors.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
// x (...,Cin), w (Cout,Cin), b (Cout) or undefined -> (...,Cout)
TensorD linear_reference(const TensorD& x, const TensorD& w, const TensorD& b) {
  const int64_t Cout = w.shape()[0], Cin = w.shape()[1], R = x.numel() / Cin;
  Shape s = x.shape();
  s.back() = Cout;
  TensorD out = TensorD::empty(s);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < Cout; ++o) {
      double acc = b.defined() ? b.data()[o] : 0.0;
      for (int64_t i = 0; i < Cin; ++i) acc += x.data()[r * Cin + i] * w.data()[o * Cin + i];
      out.data()[r * Cout + o] = acc;
    }
  return out;
}

// a (...,M,K) @ b (...,K,N) with equal batch dims, or b (K,N) shared by every batch
TensorD matmul_reference(const TensorD& a, const TensorD& b) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const int64_t batch = a.numel() / (M * K);
  const bool shared = b.dim() == 2;
  Shape s = a.shape();
  s.back() = N;
  TensorD out = TensorD::empty(s);
  for (int64_t t = 0; t < batch; ++t)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += a.data()[(t * M + m) * K + k] * b.data()[(shared ? 0 : t * K * N) + k * N + n];
        out.data()[(t * M + m) * N + n] = acc;
      }
  return out;
}

/// Loss sum(f ⊙ g) for a fixed g; its gradients are the ones backward produces.
TensorD weighted_sum(const TensorD& out, uint64_t seed) {
  return sum(mul(out, test::randn<double>(out.shape(), seed)));
}
}  // namespace

TEST_CASE("linear forward matches a float64 reference", "[ops][linear]") {
  const auto w = test::randn<double>({5, 7}, 2), b = test::randn<double>({5}, 3);
  SECTION("rank 2 with bias") {
    const auto x = test::randn<double>({4, 7}, 1);
    const TensorD out = linear(x, w, b);
    REQUIRE(out.shape() == Shape{4, 5});
    test::require_close(out, linear_reference(x, w, b), 1e-12, 1e-12);
  }
  SECTION("rank 3 with bias") {
    const auto x = test::randn<double>({2, 3, 7}, 4);
    const TensorD out = linear(x, w, b);
    REQUIRE(out.shape() == Shape{2, 3, 5});
    test::require_close(out, linear_reference(x, w, b), 1e-12, 1e-12);
  }
  SECTION("rank 2 without bias") {
    const auto x = test::randn<double>({4, 7}, 5);
    test::require_close(linear(x, w), linear_reference(x, w, {}), 1e-12, 1e-12);
  }
  SECTION("rank 3 without bias") {
    const auto x = test::randn<double>({2, 3, 7}, 6);
    const TensorD out = linear(x, w);
    REQUIRE(out.shape() == Shape{2, 3, 5});
    test::require_close(out, linear_reference(x, w, {}), 1e-12, 1e-12);
  }
  SECTION("a hand-computed value") {
    // [1,2] · [[1,0],[3,-1]]ᵀ + [10,20] = [11, 21]
    const auto x = TensorD::from_data({1, 2}, {1.0, 2.0});
    const auto w2 = TensorD::from_data({2, 2}, {1.0, 0.0, 3.0, -1.0});
    const auto b2 = TensorD::from_data({2}, {10.0, 20.0});
    const TensorD out = linear(x, w2, b2);
    REQUIRE(out(0, 0) == 11.0);
    REQUIRE(out(0, 1) == 21.0);
  }
}

TEST_CASE("linear backward matches finite differences", "[ops][linear]") {
  SECTION("rank 3 with bias: x, weight, bias") {
    test::check_gradients([](const std::vector<TensorD>& in) { return linear(in[0], in[1], in[2]); },
                          {test::randn<double>({2, 3, 4}, 11), test::randn<double>({5, 4}, 12),
                           test::randn<double>({5}, 13)});
  }
  SECTION("rank 2 without bias: x, weight") {
    test::check_gradients([](const std::vector<TensorD>& in) { return linear(in[0], in[1]); },
                          {test::randn<double>({3, 4}, 14), test::randn<double>({6, 4}, 15)});
  }
}

TEST_CASE("linear in float32 agrees with float64 at ViT sizes", "[ops][linear]") {
  // (B,N,C) = (2,65,192) -> qkv 576; then odd sizes that leave ragged GEMM tails.
  struct Case { Shape x; int64_t cout; };
  for (const Case& c : {Case{{2, 65, 192}, 576}, Case{{3, 37, 190}, 77}}) {
    const int64_t cin = c.x.back();
    INFO("x " << to_string(c.x) << " cout " << c.cout);
    const auto x = test::randn<double>(c.x, 21);
    const auto w = test::randn<double>({c.cout, cin}, 22, 0.05);
    const auto b = test::randn<double>({c.cout}, 23);
    const auto g = test::randn<double>(linear_reference(x, w, b).shape(), 24);
    test::require_close(linear(to_float(x), to_float(w), to_float(b)), linear_reference(x, w, b),
                        2e-5, 2e-5);

    // Gradients: float32 autograd against float64 autograd (itself checked above).
    TensorF xf = to_float(x), wf = to_float(w), bf = to_float(b);
    TensorD xd = x.clone(), wd = w.clone(), bd = b.clone();
    for (auto* t : {&xf, &wf, &bf}) t->set_requires_grad(true);
    for (auto* t : {&xd, &wd, &bd}) t->set_requires_grad(true);
    sum(mul(linear(xf, wf, bf), to_float(g))).backward();
    sum(mul(linear(xd, wd, bd), g)).backward();
    // dx sums over cout terms of size |w|·|g| ~ 0.05; dw, db over B·N rows.
    test::require_close(xf.grad(), xd.grad(), 2e-5, 1e-4);
    test::require_close(wf.grad(), wd.grad(), 1e-3, 1e-4);
    test::require_close(bf.grad(), bd.grad(), 1e-3, 1e-4);
  }
}

TEST_CASE("linear in float32 with and without bias, tiny to tiled shapes", "[ops][linear]") {
  // The bias is added inside the GEMM as each output tile is first written:
  // check the plain-loop size, edge tiles, a K deep enough for several slices,
  // and the no-bias path, against float64.
  struct Case {
    Shape x;
    int64_t cout;
  };
  for (const Case& c : {Case{{1, 1}, 1}, Case{{2, 3}, 5}, Case{{7, 13}, 17}, Case{{65, 64}, 65},
                        Case{{2, 33, 900}, 40}, Case{{130, 48}, 200}}) {
    const int64_t cin = c.x.back();
    INFO("x " << to_string(c.x) << " cout " << c.cout);
    const auto x = test::randn<double>(c.x, 81);
    const auto w = test::randn<double>({c.cout, cin}, 82, 0.1);
    const auto b = test::randn<double>({c.cout}, 83);
    test::require_close(linear(to_float(x), to_float(w), to_float(b)), linear_reference(x, w, b),
                        2e-5, 2e-5);
    test::require_close(linear(to_float(x), to_float(w)), linear_reference(x, w, {}), 2e-5, 2e-5);
  }
}

TEST_CASE("gemm adds bias rows and the row sums of op(A) in float and double", "[ops][linear]") {
  // ops::gemm's optional outputs on both back ends (AVX2 SGEMM for float where
  // the host has it, Eigen for double): C = A·B + bias, sums += op(A)·1.
  auto check = [](auto zero) {
    using T = decltype(zero);
    const int64_t M = 7, N = 5, K = 300;
    for (bool ta : {false, true}) {
      std::vector<T> a(M * K), b(K * N), c(M * N), bias(N), sums(M, T(2));
      for (size_t i = 0; i < a.size(); ++i) a[i] = T(0.01) * T(i % 23) - T(0.1);
      for (size_t i = 0; i < b.size(); ++i) b[i] = T(0.02) * T(i % 7) - T(0.05);
      for (size_t i = 0; i < bias.size(); ++i) bias[i] = T(i) - T(2);
      ops::gemm<T>(ta, false, M, N, K, T(1), a.data(), ta ? M : K, b.data(), N, T(0), c.data(), N,
                   bias.data(), sums.data());
      for (int64_t i = 0; i < M; ++i) {
        double s = 2;
        for (int64_t k = 0; k < K; ++k) s += ta ? a[k * M + i] : a[i * K + k];
        CHECK(sums[i] == Approx(s).epsilon(1e-5));
        for (int64_t j = 0; j < N; ++j) {
          double r = bias[j];
          for (int64_t k = 0; k < K; ++k) r += (ta ? a[k * M + i] : a[i * K + k]) * b[k * N + j];
          CHECK(c[i * N + j] == Approx(r).margin(1e-5));
        }
      }
    }
  };
  check(0.0f);
  check(0.0);
}

TEST_CASE("linear parameter gradients accumulate across backward calls", "[ops][linear]") {
  // DESIGN: parameter gradients accumulate (+=); two identical backward passes
  // leave exactly twice the gradient of one.
  auto run = [](auto x, auto w, auto b, auto g) {
    for (auto* t : {&x, &w, &b}) t->set_requires_grad(true);
    sum(mul(linear(x, w, b), g)).backward();
    const auto gx1 = x.grad().clone(), gw1 = w.grad().clone(), gb1 = b.grad().clone();
    sum(mul(linear(x, w, b), g)).backward();
    // 2·v is exact in floating point, and v + v is what accumulation computes.
    test::require_close(w.grad(), scale(gw1, 2.0), 0, 1e-6);
    test::require_close(b.grad(), scale(gb1, 2.0), 0, 1e-6);
    test::require_close(x.grad(), scale(gx1, 2.0), 0, 1e-6);
    // And one more zero_grad + backward is back to a single gradient.
    for (auto* t : {&x, &w, &b}) t->zero_grad();
    sum(mul(linear(x, w, b), g)).backward();
    test::require_close(w.grad(), gw1, 0, 1e-6);
    test::require_close(b.grad(), gb1, 0, 1e-6);
  };
  SECTION("float64") {
    run(test::randn<double>({2, 3, 4}, 31), test::randn<double>({5, 4}, 32),
        test::randn<double>({5}, 33), test::randn<double>({2, 3, 5}, 34));
  }
  SECTION("float32 at a size the packed GEMM tiles") {
    run(test::randn<float>({2, 40, 48}, 35), test::randn<float>({72, 48}, 36),
        test::randn<float>({72}, 37), test::randn<float>({2, 40, 72}, 38));
  }
}

TEST_CASE("linear weight gradient accumulates when x needs no gradient", "[ops][linear]") {
  const auto x = test::randn<double>({3, 4}, 41);
  auto w = test::randn<double>({2, 4}, 42);
  w.set_requires_grad(true);
  weighted_sum(linear(x, w), 43).backward();
  const TensorD g1 = w.grad().clone();
  // dw = gᵀ·x by hand
  const auto g = test::randn<double>({3, 2}, 43);
  TensorD expect = TensorD::zeros({2, 4});
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t o = 0; o < 2; ++o)
      for (int64_t i = 0; i < 4; ++i) expect(o, i) += g(r, o) * x(r, i);
  test::require_close(g1, expect, 1e-12, 1e-12);
  weighted_sum(linear(x, w), 43).backward();
  test::require_close(w.grad(), scale(expect, 2.0), 1e-12, 1e-12);
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("matmul forward matches a float64 reference", "[ops][linear]") {
  SECTION("batched, equal batch dims (rank 4)") {
    const auto a = test::randn<double>({2, 3, 4, 5}, 51), b = test::randn<double>({2, 3, 5, 6}, 52);
    const TensorD out = matmul(a, b);
    REQUIRE(out.shape() == Shape{2, 3, 4, 6});
    test::require_close(out, matmul_reference(a, b), 1e-12, 1e-12);
  }
  SECTION("batched rank 3") {
    const auto a = test::randn<double>({3, 2, 7}, 53), b = test::randn<double>({3, 7, 4}, 54);
    test::require_close(matmul(a, b), matmul_reference(a, b), 1e-12, 1e-12);
  }
  SECTION("rank-2 right operand shared by every batch") {
    const auto a = test::randn<double>({2, 4, 5}, 55), b = test::randn<double>({5, 3}, 56);
    const TensorD out = matmul(a, b);
    REQUIRE(out.shape() == Shape{2, 4, 3});
    test::require_close(out, matmul_reference(a, b), 1e-12, 1e-12);
  }
  SECTION("rank 2 @ rank 2") {
    const auto a = test::randn<double>({4, 5}, 57), b = test::randn<double>({5, 3}, 58);
    test::require_close(matmul(a, b), matmul_reference(a, b), 1e-12, 1e-12);
  }
}

TEST_CASE("matmul backward matches finite differences", "[ops][linear]") {
  auto f = [](const std::vector<TensorD>& in) { return matmul(in[0], in[1]); };
  SECTION("batched") {
    test::check_gradients(f, {test::randn<double>({2, 2, 3, 4}, 61), test::randn<double>({2, 2, 4, 3}, 62)});
  }
  SECTION("rank-2 right operand") {
    test::check_gradients(f, {test::randn<double>({2, 3, 4}, 63), test::randn<double>({4, 5}, 64)});
  }
}

TEST_CASE("matmul in float32 agrees with float64 at attention sizes", "[ops][linear]") {
  // q·kᵀ per head: (B,H,N,D) @ (B,H,D,N), and a shared right operand.
  const auto q = test::randn<double>({2, 3, 65, 64}, 71), kt = test::randn<double>({2, 3, 64, 65}, 72);
  test::require_close(matmul(to_float(q), to_float(kt)), matmul_reference(q, kt), 1e-4, 1e-4);
  const auto a = test::randn<double>({3, 50, 70}, 73), b = test::randn<double>({70, 33}, 74);
  test::require_close(matmul(to_float(a), to_float(b)), matmul_reference(a, b), 1e-4, 1e-4);
}

TEST_CASE("linear and matmul reject mismatched shapes", "[ops][linear][errors]") {
  const auto x = test::randn<float>({2, 3, 5}, 1);
  REQUIRE_THROWS_WITH(linear(x, TensorF::ones({4, 6})), Catch::Contains("linear: x (2,3,5) vs weight (4,6)"));
  REQUIRE_THROWS_WITH(linear(x, TensorF::ones({4, 5}), TensorF::zeros({3})),
                      Catch::Contains("linear: bias (3) vs weight (4,5)"));
  REQUIRE_THROWS_WITH(linear(x, TensorF::ones({5})), Catch::Contains("linear: x (2,3,5) vs weight (5)"));
  REQUIRE_THROWS_AS(linear(x, TensorF::ones({4, 6})), vit::Error);

  REQUIRE_THROWS_WITH(matmul(test::randn<float>({2, 3, 4}, 2), test::randn<float>({2, 5, 6}, 3)),
                      Catch::Contains("matmul: inner dimensions differ: (2,3,4) @ (2,5,6)"));
  REQUIRE_THROWS_WITH(matmul(test::randn<float>({3, 4}, 2), test::randn<float>({5, 6}, 3)),
                      Catch::Contains("matmul: inner dimensions differ: (3,4) @ (5,6)"));
  REQUIRE_THROWS_WITH(matmul(test::randn<float>({2, 3, 4}, 2), test::randn<float>({3, 4, 6}, 3)),
                      Catch::Contains("matmul: batch dimensions differ: (2,3,4) @ (3,4,6)"));
  REQUIRE_THROWS_WITH(matmul(test::randn<float>({4}, 2), test::randn<float>({4, 6}, 3)),
                      Catch::Contains("matmul: need rank >= 2, got (4) @ (4,6)"));
}
