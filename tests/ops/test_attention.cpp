// Fused attention against a float64 reference written the way timm's Attention
// computes it:
//   qkv.reshape(B,N,3,H,D).permute(2,0,3,1,4) -> q,k,v (B,H,N,D)
//   attn = softmax(q @ k.transpose(-2,-1) * D**-0.5, dim=-1)
//   out  = (attn @ v).transpose(1,2).reshape(B,N,C)
// plus backward by finite differences on qkv, float32 against float64 at ViT-Tiny
// size, and misuse. Attention dropout (timm's attn_drop) the same way: the
// reference applies the mask drawn from the generator,
//   attn = attn_drop(attn): attn[b,h,i,j] · (uniform(c0 + ((b·H+h)·N+i)·N+j) >= p) / (1-p),
// identity outside training and at p = 0, finite differences through a fixed
// mask, float32 (AVX2 and ops::gemm paths) against float64, the module and config.
#include <limits>
#include <vector>

#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
/// The attention dropout the reference applies: none when p == 0.
struct RefDrop {
  double p = 0;
  uint64_t seed = 0, c0 = 0;
};

TensorD attention_reference(const TensorD& qkv, int64_t H, const RefDrop& drop = {}) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3, D = C / H;
  // reshape (B,N,3,H,D) + permute(2,0,3,1,4): element [s][b][h][n][d]
  auto at = [&](int64_t s, int64_t b, int64_t h, int64_t n, int64_t d) {
    return qkv.data()[(((b * N + n) * 3 + s) * H + h) * D + d];
  };
  const double scale = std::pow(static_cast<double>(D), -0.5);
  TensorD out = TensorD::empty({B, N, C});
  std::vector<double> attn(N * N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < N; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += at(0, b, h, i, d) * at(1, b, h, j, d);
          attn[i * N + j] = s * scale;
        }
        double m = attn[i * N];
        for (int64_t j = 1; j < N; ++j) m = std::max(m, attn[i * N + j]);
        double z = 0;
        for (int64_t j = 0; j < N; ++j) z += (attn[i * N + j] = std::exp(attn[i * N + j] - m));
        for (int64_t j = 0; j < N; ++j) attn[i * N + j] /= z;
        if (drop.p > 0) {  // nn.Dropout(p) on attn, row (b,h,i)
          const Generator g(drop.seed);
          for (int64_t j = 0; j < N; ++j) {
            const uint64_t c = drop.c0 + static_cast<uint64_t>(((b * H + h) * N + i) * N + j);
            attn[i * N + j] *= g.uniform(c) >= drop.p ? 1.0 / (1.0 - drop.p) : 0.0;
          }
        }
      }
      // (attn @ v) is (B,H,N,D); transpose(1,2) -> (B,N,H,D); reshape -> (B,N,C) with c = h·D + d
      for (int64_t i = 0; i < N; ++i)
        for (int64_t d = 0; d < D; ++d) {
          double s = 0;
          for (int64_t j = 0; j < N; ++j) s += attn[i * N + j] * at(2, b, h, j, d);
          out.data()[(b * N + i) * C + h * D + d] = s;
        }
    }
  return out;
}

struct Case {
  int64_t B, N, C, H;
};
}  // namespace

TEST_CASE("attention forward matches timm's reshape/permute/softmax chain", "[ops][attention]") {
  const Case cases[] = {
      {1, 1, 4, 1},   // one token: output is v itself
      {2, 5, 6, 1},   // one head, D = C
      {2, 4, 6, 6},   // D = 1
      {1, 3, 2, 2},   // smallest multi-head, D = 1
      {3, 7, 12, 3},  // D = 4
      {2, 9, 16, 4},  // N odd, D = 4
      {1, 17, 24, 2}, // D = 12
  };
  for (const Case& c : cases) {
    INFO("B=" << c.B << " N=" << c.N << " C=" << c.C << " H=" << c.H);
    const TensorD qkv = test::randn<double>({c.B, c.N, 3 * c.C}, 31 + c.N, 1.5);
    const TensorD out = attention(qkv, c.H);
    REQUIRE(out.shape() == Shape{c.B, c.N, c.C});
    test::require_close(out, attention_reference(qkv, c.H), 1e-14, 1e-12);
  }
}

TEST_CASE("attention with one token returns v", "[ops][attention]") {
  const TensorD qkv = test::randn<double>({3, 1, 3 * 8}, 32);
  const TensorD out = attention(qkv, 2);
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t c = 0; c < 8; ++c) REQUIRE(out(b, 0, c) == Approx(qkv(b, 0, 16 + c)).epsilon(1e-15));
}

TEST_CASE("attention heads read their own D-wide column blocks", "[ops][attention]") {
  // Perturbing head 1's keys must change head 1's output columns only.
  const int64_t B = 1, N = 5, C = 8, H = 2, D = 4;
  const TensorD qkv = test::randn<double>({B, N, 3 * C}, 33);
  const TensorD base = attention(qkv, H);
  TensorD moved = qkv.clone();
  moved(0, 2, C + D + 1) += 1.0;  // key of token 2, head 1, d = 1 (one token: not a row shift)
  const TensorD out = attention(moved, H);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      INFO("n=" << n << " c=" << c);
      if (c < D) REQUIRE(out(0, n, c) == base(0, n, c));
      else REQUIRE(out(0, n, c) != base(0, n, c));
    }
}

TEST_CASE("attention is stable for large scores", "[ops][attention]") {
  // Scores of order 1e4: a softmax without max-subtraction would overflow.
  const TensorD qkv = test::randn<double>({1, 6, 3 * 4}, 34, 60.0);
  const TensorD out = attention(qkv, 2);
  for (int64_t i = 0; i < out.numel(); ++i) REQUIRE(std::isfinite(out.data()[i]));
  test::require_close(out, attention_reference(qkv, 2), 1e-12, 1e-12);
  const TensorF outf = attention(to_float(qkv), 2);
  for (int64_t i = 0; i < outf.numel(); ++i) REQUIRE(std::isfinite(outf.data()[i]));
}

TEST_CASE("attention backward matches finite differences on qkv", "[ops][attention]") {
  const Case cases[] = {{1, 1, 2, 1}, {2, 3, 4, 1}, {1, 4, 6, 3}, {2, 3, 8, 2}, {1, 5, 3, 3}};
  for (const Case& c : cases) {
    INFO("B=" << c.B << " N=" << c.N << " C=" << c.C << " H=" << c.H);
    const int64_t H = c.H;
    test::check_gradients([H](const std::vector<TensorD>& in) { return attention(in[0], H); },
                          {test::randn<double>({c.B, c.N, 3 * c.C}, 35 + c.C)});
  }
}

TEST_CASE("attention in float32 agrees with float64 at ViT-Tiny size", "[ops][attention]") {
  // B=2, N=65 (64 patches + cls), C=192, H=3 (D=64): the float GEMM path at real shapes.
  const int64_t B = 2, N = 65, C = 192, H = 3;
  const TensorD qkv = test::randn<double>({B, N, 3 * C}, 36, 0.5);
  const TensorD ref = attention_reference(qkv, H);
  TensorF qf = to_float(qkv);
  qf.set_requires_grad(true);
  const TensorF out = attention(qf, H);
  test::require_close(out, ref, 1e-5, 1e-4);

  // Backward in float32 against the (finite-difference-checked) float64 backward.
  const TensorD w = test::randn<double>({B, N, C}, 37);
  sum(mul(out, to_float(w))).backward();
  TensorD qd = qkv.clone();
  qd.set_requires_grad(true);
  sum(mul(attention(qd, H), w)).backward();
  test::require_close(qf.grad(), qd.grad(), 1e-5, 1e-3);
}

TEST_CASE("attention float32 matches float64 across token counts and head dims",
          "[ops][attention]") {
  // On AVX2 hosts these shapes take the register-blocked small-product path
  // (D % 8 == 0, N <= 256 forward, N <= 128 backward); D = 12 and N = 300 take
  // ops::gemm. Either way float must agree with float64, forward and backward.
  struct Shape3 {
    int64_t N, D, H;
  };
  const Shape3 shapes[] = {{1, 16, 2},  {7, 16, 3},  {65, 16, 2}, {197, 16, 1}, {1, 32, 1},
                           {7, 32, 2},  {65, 32, 3}, {197, 32, 2}, {1, 64, 2},  {7, 64, 1},
                           {65, 64, 3}, {197, 64, 2}, {9, 8, 2},   {33, 24, 2}, {13, 12, 2},
                           {128, 32, 1}, {129, 32, 1}, {300, 16, 1}};
  for (const Shape3& sh : shapes) {
    const int64_t B = 2, N = sh.N, H = sh.H, C = sh.D * sh.H;
    INFO("N=" << N << " D=" << sh.D << " H=" << H);
    const TensorD qkv = test::randn<double>({B, N, 3 * C}, 40 + N + sh.D, 0.7);
    TensorF qf = to_float(qkv);
    qf.set_requires_grad(true);
    const TensorF out = attention(qf, H);
    test::require_close(out, attention_reference(qkv, H), 1e-5, 1e-4);

    const TensorD w = test::randn<double>({B, N, C}, 41);
    sum(mul(out, to_float(w))).backward();
    TensorD qd = qkv.clone();
    qd.set_requires_grad(true);
    sum(mul(attention(qd, H), w)).backward();
    test::require_close(qf.grad(), qd.grad(), 1e-5, 1e-3);
  }
}

TEST_CASE("attention float32 stays finite for large scores at head dim 16", "[ops][attention]") {
  // Scores of order 1e4: the fast path's exp clamps its argument instead of
  // overflowing or producing denormals; probabilities still sum to 1.
  const int64_t B = 1, N = 11, C = 32, H = 2;
  const TensorF qkv = to_float(test::randn<double>({B, N, 3 * C}, 44, 30.0));
  std::vector<float> out(B * N * C), probs(B * H * N * N);
  ops::attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H);
  for (float x : out) REQUIRE(std::isfinite(x));
  for (int64_t r = 0; r < B * H * N; ++r) {
    double z = 0;
    for (int64_t j = 0; j < N; ++j) z += probs[r * N + j];
    REQUIRE(z == Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("attention float32 propagates a NaN score to its head's rows", "[ops][attention]") {
  // A diverged model must not have its NaNs hidden by the softmax's exp clamp.
  const int64_t B = 1, N = 9, C = 32, H = 2, D = 16;
  TensorF qkv = to_float(test::randn<double>({B, N, 3 * C}, 45));
  qkv(0, 3, C + 2) = std::numeric_limits<float>::quiet_NaN();  // key of token 3, head 0
  std::vector<float> out(B * N * C), probs(B * H * N * N);
  ops::attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      INFO("n=" << n << " c=" << c);
      if (c < D) REQUIRE(std::isnan(out[n * C + c]));
      else REQUIRE(std::isfinite(out[n * C + c]));
    }
}

TEST_CASE("attention float32 is bitwise reproducible across thread counts", "[ops][attention]") {
  const int64_t B = 3, N = 65, C = 192, H = 3;
  const TensorF qkv = to_float(test::randn<double>({B, N, 3 * C}, 42));
  const TensorF dout = to_float(test::randn<double>({B, N, C}, 43));
  const int saved = num_threads();
  auto run = [&](int threads, std::vector<float>& out, std::vector<float>& probs,
                 std::vector<float>& dqkv) {
    set_num_threads(threads);
    out.assign(B * N * C, 0.0f);
    probs.assign(B * H * N * N, 0.0f);
    dqkv.assign(B * N * 3 * C, 0.0f);
    ops::attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H);
    ops::attention_backward(dout.data(), qkv.data(), probs.data(), dqkv.data(), B, N, C, H);
  };
  std::vector<float> o1, p1, g1, o2, p2, g2, o3, p3, g3;
  run(1, o1, p1, g1);
  run(2, o2, p2, g2);
  run(2, o3, p3, g3);
  set_num_threads(saved);
  REQUIRE(o1 == o2);
  REQUIRE(p1 == p2);
  REQUIRE(g1 == g2);
  REQUIRE(o2 == o3);
  REQUIRE(g2 == g3);
}

TEST_CASE("attention rejects bad shapes", "[ops][attention][errors]") {
  REQUIRE_THROWS_WITH(attention(TensorF::zeros({2, 3, 7}), 1),
                      Catch::Contains("attention: qkv (2,3,7) (need B,N,3C)"));
  REQUIRE_THROWS_WITH(attention(TensorF::zeros({6, 18}), 1),
                      Catch::Contains("attention: qkv (6,18) (need B,N,3C)"));
  REQUIRE_THROWS_WITH(attention(TensorF::zeros({2, 3, 18}), 4),
                      Catch::Contains("attention: dim 6 is not divisible by 4 heads"));
  REQUIRE_THROWS_WITH(attention(TensorF::zeros({2, 3, 18}), 0),
                      Catch::Contains("attention: dim 6 is not divisible by 0 heads"));
}

// ---- attention dropout ----------------------------------------------------------

TEST_CASE("attention dropout is the identity outside training and at p = 0", "[ops][attention][attn_drop]") {
  const int64_t B = 2, N = 9, C = 32, H = 2;
  const TensorD qkv = test::randn<double>({B, N, 3 * C}, 50);
  Generator g(7);
  g.reserve(5);
  for (const auto& [p, training] : {std::pair{0.3, false}, std::pair{0.0, true}, std::pair{0.0, false}}) {
    INFO("p=" << p << " training=" << training);
    // Exactly the op without dropout, in both dtypes, forward and backward, and no draws.
    TensorD qd = qkv.clone(), qd0 = qkv.clone();
    qd.set_requires_grad(true);
    qd0.set_requires_grad(true);
    const TensorD w = test::randn<double>({B, N, C}, 51);
    const TensorD out = attention(qd, H, p, training, g);
    const TensorD ref = attention(qd0, H);
    test::require_close(out, ref, 0, 0);
    sum(mul(out, w)).backward();
    sum(mul(ref, w)).backward();
    test::require_close(qd.grad(), qd0.grad(), 0, 0);
    test::require_close(attention(to_float(qkv), H, p, training, g), attention(to_float(qkv), H), 0, 0);
    REQUIRE(g.offset() == 5);
  }
}

TEST_CASE("attention dropout matches timm's chain with the generator's mask", "[ops][attention][attn_drop]") {
  const Case cases[] = {
      {1, 1, 4, 1},   // one token: out is v kept or dropped whole
      {2, 5, 6, 1},   // one head, D = C
      {3, 7, 12, 3},  // D = 4
      {2, 9, 16, 4},  // N odd
      {1, 17, 24, 2}, // D = 12
  };
  const double p = 0.2;
  for (const Case& c : cases) {
    INFO("B=" << c.B << " N=" << c.N << " C=" << c.C << " H=" << c.H);
    const TensorD qkv = test::randn<double>({c.B, c.N, 3 * c.C}, 52 + c.N, 1.5);
    Generator g(1234);
    g.reserve(11);
    const TensorD out = attention(qkv, c.H, p, true, g);
    const uint64_t draws = static_cast<uint64_t>(c.B * c.H * c.N * c.N);
    REQUIRE(g.offset() == 11 + draws);  // B·H·N·N counters from the current offset
    test::require_close(out, attention_reference(qkv, c.H, {p, 1234, 11}), 1e-14, 1e-12);
    // The next call draws the next counters: another mask.
    const TensorD again = attention(qkv, c.H, p, true, g);
    test::require_close(again, attention_reference(qkv, c.H, {p, 1234, 11 + draws}), 1e-14, 1e-12);
  }
}

TEST_CASE("attention dropout keeps about 1 - p of the probabilities, scaled by 1/(1-p)",
          "[ops][attention][attn_drop]") {
  // q = 0 makes every row of P uniform (1/N); v = 1 then gives out[i] = kept_i / (N·(1-p)).
  const int64_t B = 2, N = 64, C = 32, H = 2;
  TensorD qkv = TensorD::zeros({B, N, 3 * C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) qkv(b, n, 2 * C + c) = 1.0;
  const double p = 0.2;
  Generator g(99);
  const TensorD out = attention(qkv, H, p, true, g);
  const Generator ref(99);
  int64_t kept_total = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        int64_t kept = 0;
        for (int64_t j = 0; j < N; ++j) kept += ref.uniform(static_cast<uint64_t>(((b * H + h) * N + i) * N + j)) >= p;
        kept_total += kept;
        for (int64_t d = 0; d < C / H; ++d)
          REQUIRE(out(b, i, h * (C / H) + d) == Approx(kept / (N * (1 - p))).epsilon(1e-14));
      }
  const double frac = static_cast<double>(kept_total) / static_cast<double>(B * H * N * N);
  CHECK(frac == Approx(1 - p).margin(0.02));  // 16384 draws: 4 sigma is ~0.013
}

TEST_CASE("attention dropout backward matches finite differences on qkv", "[ops][attention][attn_drop]") {
  const Case cases[] = {{1, 1, 2, 1}, {2, 3, 4, 1}, {1, 4, 6, 3}, {2, 5, 8, 2}, {1, 6, 3, 3}};
  for (const Case& c : cases) {
    INFO("B=" << c.B << " N=" << c.N << " C=" << c.C << " H=" << c.H);
    const int64_t H = c.H;
    Generator g;
    // The same mask on every evaluation: the generator restarts at (seed, 0).
    test::check_gradients(
        [H, &g](const std::vector<TensorD>& in) {
          g.set_state(77, 0);
          return attention(in[0], H, 0.3, true, g);
        },
        {test::randn<double>({c.B, c.N, 3 * c.C}, 60 + c.C)});
  }
}

TEST_CASE("attention dropout float32 matches float64 across token counts and head dims",
          "[ops][attention][attn_drop]") {
  // D % 8 == 0 with N <= 128 runs the AVX2 path on AVX2 hosts forward and
  // backward; N = 197 its forward with the ops::gemm backward; D = 12 and
  // N = 300 ops::gemm throughout. All must apply the same mask.
  struct Shape3 {
    int64_t N, D, H;
  };
  const Shape3 shapes[] = {{1, 16, 2}, {7, 16, 3}, {65, 16, 2},  {9, 32, 1},   {65, 32, 3}, {7, 64, 1},
                           {65, 64, 3}, {128, 32, 1}, {197, 64, 1}, {13, 12, 2}, {33, 24, 2}, {300, 16, 1}};
  for (const Shape3& sh : shapes) {
    const int64_t B = 2, N = sh.N, H = sh.H, C = sh.D * sh.H;
    INFO("N=" << N << " D=" << sh.D << " H=" << H);
    const TensorD qkv = test::randn<double>({B, N, 3 * C}, 70 + N + sh.D, 0.7);
    Generator gf(5), gd(5);
    TensorF qf = to_float(qkv);
    qf.set_requires_grad(true);
    const TensorF out = attention(qf, H, 0.2, true, gf);
    test::require_close(out, attention_reference(qkv, H, {0.2, 5, 0}), 1e-5, 1e-4);

    const TensorD w = test::randn<double>({B, N, C}, 71);
    sum(mul(out, to_float(w))).backward();
    TensorD qd = qkv.clone();
    qd.set_requires_grad(true);
    sum(mul(attention(qd, H, 0.2, true, gd), w)).backward();
    test::require_close(qf.grad(), qd.grad(), 1e-5, 1e-3);
  }
}

TEST_CASE("attention dropout float32 is bitwise reproducible across thread counts",
          "[ops][attention][attn_drop]") {
  const int64_t B = 3, N = 65, C = 192, H = 3;
  const TensorF qkv = to_float(test::randn<double>({B, N, 3 * C}, 72));
  const TensorF dout = to_float(test::randn<double>({B, N, C}, 73));
  const ops::AttentionDropout drop{0.25, 31, 1000};
  const int saved = num_threads();
  auto run = [&](int threads, std::vector<float>& out, std::vector<float>& dqkv) {
    set_num_threads(threads);
    out.assign(B * N * C, 0.0f);
    std::vector<float> probs(B * H * N * N);
    dqkv.assign(B * N * 3 * C, 0.0f);
    ops::attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H, drop);
    ops::attention_backward(dout.data(), qkv.data(), probs.data(), dqkv.data(), B, N, C, H, drop);
  };
  std::vector<float> o1, g1, o2, g2;
  run(1, o1, g1);
  run(2, o2, g2);
  set_num_threads(saved);
  REQUIRE(o1 == o2);
  REQUIRE(g1 == g2);
}

TEST_CASE("attention rejects attn_drop outside 0 <= p < 1", "[ops][attention][attn_drop][errors]") {
  Generator g;
  const TensorF qkv = TensorF::zeros({1, 3, 12});
  for (bool training : {true, false}) {
    REQUIRE_THROWS_WITH(attention(qkv, 2, 1.0, training, g),
                        Catch::Contains("attention: attn_drop must be in [0, 1), got 1"));
    REQUIRE_THROWS_WITH(attention(qkv, 2, -0.5, training, g),
                        Catch::Contains("attention: attn_drop must be in [0, 1), got -0.5"));
    REQUIRE_THROWS_WITH(attention(qkv, 2, std::nan(""), training, g),
                        Catch::Contains("attention: attn_drop must be in [0, 1)"));
  }
  // Shape errors come before any draw.
  REQUIRE_THROWS_WITH(attention(TensorF::zeros({2, 3, 18}), 4, 0.1, true, g),
                      Catch::Contains("attention: dim 6 is not divisible by 4 heads"));
  REQUIRE(g.offset() == 0);
}

TEST_CASE("nn::Attention applies attn_drop in training only, VitConfig carries attn_drop_rate",
          "[nn][attention][attn_drop]") {
  Generator init(3);
  nn::Attention<double> with(16, 2, init, true, 0.0, 0.25);
  Generator init2(3);
  nn::Attention<double> without(16, 2, init2, true, 0.0, 0.0);
  const TensorD x = test::randn<double>({2, 5, 16}, 80);
  Generator drops(11);
  with.set_generator(&drops);
  without.set_generator(&drops);

  with.eval();
  without.eval();
  test::require_close(with.forward(x), without.forward(x), 0, 0);
  REQUIRE(drops.offset() == 0);

  with.train();
  without.train();
  test::require_close(without.forward(x), without.forward(x), 0, 0);  // attn_drop 0: no draws
  REQUIRE(drops.offset() == 0);
  const TensorD y = with.forward(x);
  REQUIRE(drops.offset() == 2 * 2 * 5 * 5);
  // Exactly qkv -> attention with the module's generator -> proj.
  Generator replay(11);
  const TensorD ref = with.proj.forward(attention(with.qkv.forward(x), 2, 0.25, true, replay));
  test::require_close(y, ref, 0, 0);
  bool differs = false;
  const TensorD base = without.forward(x);
  for (int64_t i = 0; i < y.numel(); ++i) differs |= y.data()[i] != base.data()[i];
  REQUIRE(differs);

  REQUIRE_THROWS_WITH(nn::Attention<double>(16, 2, init, true, 0.0, 1.0),
                      Catch::Contains("Attention: attn_drop must be in [0, 1), got 1"));

  nn::VitConfig c;
  REQUIRE(c.attn_drop_rate == 0.0);  // timm's default
  c.image_size = 8, c.patch_size = 4, c.dim = 16, c.depth = 2, c.heads = 2, c.mlp_dim = 32, c.num_classes = 3;
  c.attn_drop_rate = 0.1;
  nn::VisionTransformer<double> m(c);
  for (const auto& blk : m.blocks) REQUIRE(blk->attn.attn_drop == 0.1);
  c.attn_drop_rate = 1.0;
  REQUIRE_THROWS_WITH(nn::validate(c), Catch::Contains("attn_drop_rate must be in [0, 1)"));
}
