// Mixup/CutMix: Gamma and Beta samplers against their moments (fixed seeds, so
// the statistical checks are deterministic), soft targets against hand-written
// rows, Mixup pixels as lam-blends of the reversed batch, CutMix boxes copied
// from the paired image with lam corrected by the box area, the prob and
// switch_prob draws, and misuse.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "vit/data/mixup.hpp"

using namespace vit;
using namespace vit::data;

namespace {
std::vector<float> random_batch(int64_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(g.next_uniform() * 4.0 - 2.0);
  return v;
}

struct MeanVar {
  double mean, var;
};
template <class F>
MeanVar moments(int n, F&& draw) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = draw();
    s += x, s2 += x * x;
  }
  const double m = s / n;
  return {m, s2 / n - m * m};
}

void require_rows_sum_to_one(const std::vector<float>& t, int64_t B, int64_t K) {
  for (int64_t i = 0; i < B; ++i) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      REQUIRE(t[i * K + k] >= 0.0f);
      s += t[i * K + k];
    }
    REQUIRE(s == Approx(1.0).margin(1e-6));
  }
}
}  // namespace

TEST_CASE("Gamma and Beta samplers have the right moments", "[data][mixup]") {
  constexpr int kDraws = 200000;
  Generator g(2024);
  for (double a : {0.2, 0.5, 1.0, 3.0}) {
    INFO("Gamma shape " << a);
    const MeanVar m = moments(kDraws, [&] { return sample_gamma(a, g); });
    // mean a, variance a; the std of the sample mean is sqrt(a / n) < 0.004.
    CHECK(m.mean == Approx(a).margin(0.02));
    CHECK(m.var == Approx(a).epsilon(0.05));
  }
  struct Case {
    double a, b;
  };
  for (Case c : {Case{1.0, 1.0}, Case{0.8, 0.8}, Case{0.2, 0.2}, Case{2.0, 5.0}}) {
    INFO("Beta(" << c.a << ", " << c.b << ")");
    const double s = c.a + c.b;
    const double mean = c.a / s, var = c.a * c.b / (s * s * (s + 1));
    bool in_range = true;
    const MeanVar m = moments(kDraws, [&] {
      const double x = sample_beta(c.a, c.b, g);
      in_range &= x >= 0.0 && x <= 1.0;
      return x;
    });
    CHECK(in_range);
    CHECK(m.mean == Approx(mean).margin(0.005));  // the sample mean's std is < 0.0008
    CHECK(m.var == Approx(var).epsilon(0.05));
  }
  CHECK_THROWS_AS(sample_beta(0.0, 1.0, g), Error);
  CHECK_THROWS_AS(sample_gamma(-1.0, g), Error);
}

TEST_CASE("mixup_targets are lam one-hot(y) + (1-lam) one-hot(reversed y), smoothed",
          "[data][mixup]") {
  // K = 5, smoothing 0.1: off = 0.02, on = 0.92. Pairs: (0,3) (1,2).
  const int32_t labels[4] = {0, 3, 3, 1};
  std::vector<float> t(20);
  mixup_targets(labels, 4, 5, 0.7, 0.1, t.data());
  const std::vector<double> expected = {
      0.7 * 0.92 + 0.3 * 0.02,
      0.7 * 0.02 + 0.3 * 0.92,
      0.02,
      0.02,
      0.02,  // y 0, paired 1
      0.02,
      0.02,
      0.02,
      0.92,
      0.02,  // y 3, paired 3
      0.02,
      0.02,
      0.02,
      0.92,
      0.02,  // y 3, paired 3
      0.7 * 0.02 + 0.3 * 0.92,
      0.7 * 0.92 + 0.3 * 0.02,
      0.02,
      0.02,
      0.02,  // y 1, paired 0
  };
  for (int i = 0; i < 20; ++i) CHECK(t[i] == Approx(expected[i]).margin(1e-6));
  require_rows_sum_to_one(t, 4, 5);

  SECTION("lam 1 without smoothing is one-hot") {
    mixup_targets(labels, 4, 5, 1.0, 0.0, t.data());
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 5; ++k) REQUIRE(t[i * 5 + k] == (k == labels[i] ? 1.0f : 0.0f));
  }
  SECTION("a label out of range is refused") {
    const int32_t bad[2] = {0, 5};
    CHECK_THROWS_AS(mixup_targets(bad, 2, 5, 0.5, 0.1, t.data()), Error);
  }
}

TEST_CASE("Mixup blends each image with its partner in the reversed batch", "[data][mixup]") {
  constexpr int64_t B = 6, C = 3, H = 4, W = 5, K = 10, n = C * H * W;
  const int32_t labels[B] = {1, 4, 4, 7, 9, 0};
  MixupConfig cfg;
  cfg.cutmix_alpha = 0.0;  // Mixup only
  cfg.num_classes = K;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> orig = random_batch(B * n, 100 + seed);
    std::vector<float> x = orig, t(B * K);
    Generator g(seed);
    const MixupParams p = mixup_batch(x.data(), B, C, H, W, labels, cfg, g, t.data());
    REQUIRE_FALSE(p.cutmix);
    REQUIRE(p.lam > 0.0);
    REQUIRE(p.lam < 1.0);
    for (int64_t i = 0; i < B; ++i)
      for (int64_t k = 0; k < n; ++k)
        REQUIRE(
            x[i * n + k] ==
            Approx(p.lam * orig[i * n + k] + (1 - p.lam) * orig[(B - 1 - i) * n + k]).margin(1e-6));
    require_rows_sum_to_one(t, B, K);
    std::vector<float> want(B * K);
    mixup_targets(labels, B, K, p.lam, cfg.label_smoothing, want.data());
    // Not ==: with -march=native the compiler may contract a*b+c into an FMA in
    // one inlined copy of the target arithmetic and not in the other.
    for (size_t e = 0; e < want.size(); ++e) REQUIRE(t[e] == Approx(want[e]).margin(1e-6));
  }
}

TEST_CASE("CutMix copies the box from the paired image and corrects lam by its area",
          "[data][mixup]") {
  constexpr int64_t B = 4, C = 2, H = 8, W = 12, K = 3, n = C * H * W;
  const int32_t labels[B] = {0, 1, 2, 2};
  MixupConfig cfg;
  cfg.mixup_alpha = 0.0;  // CutMix only
  cfg.num_classes = K;
  int non_empty = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const std::vector<float> orig = random_batch(B * n, 200 + seed);
    std::vector<float> x = orig, t(B * K);
    Generator g(seed);
    const MixupParams p = mixup_batch(x.data(), B, C, H, W, labels, cfg, g, t.data());
    REQUIRE(p.cutmix);
    REQUIRE(0 <= p.y0);
    REQUIRE(p.y0 <= p.y1);
    REQUIRE(p.y1 <= H);
    REQUIRE(0 <= p.x0);
    REQUIRE(p.x0 <= p.x1);
    REQUIRE(p.x1 <= W);
    const int64_t area = (p.y1 - p.y0) * (p.x1 - p.x0);
    REQUIRE(p.lam == Approx(1.0 - double(area) / (H * W)).margin(1e-12));
    non_empty += area > 0;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t xx = 0; xx < W; ++xx) {
            const bool inside = y >= p.y0 && y < p.y1 && xx >= p.x0 && xx < p.x1;
            const int64_t from = inside ? B - 1 - i : i, k = (c * H + y) * W + xx;
            REQUIRE(x[i * n + k] == orig[from * n + k]);  // exact copy, no blending
          }
    std::vector<float> want(B * K);
    mixup_targets(labels, B, K, p.lam, cfg.label_smoothing, want.data());
    // Not ==: with -march=native the compiler may contract a*b+c into an FMA in
    // one inlined copy of the target arithmetic and not in the other.
    for (size_t e = 0; e < want.size(); ++e) REQUIRE(t[e] == Approx(want[e]).margin(1e-6));
    require_rows_sum_to_one(t, B, K);
  }
  CHECK(non_empty > 25);

  SECTION("the box follows timm's rand_bbox: sides int(H sqrt(1-lam)), centred, clipped") {
    for (uint64_t seed = 0; seed < 200; ++seed) {
      Generator g(seed);
      const MixupParams p = cutmix_box(0.75, 32, 32, g);  // cut 16: half-sides 8
      REQUIRE(p.y1 - p.y0 <= 16);
      REQUIRE(p.x1 - p.x0 <= 16);
      REQUIRE(p.lam >= 0.75);
      if (p.y0 > 0 && p.y1 < 32) REQUIRE(p.y1 - p.y0 == 16);
    }
  }
}

TEST_CASE("Mixup prob and switch_prob decide what a batch gets", "[data][mixup]") {
  constexpr int64_t B = 2, C = 1, H = 4, W = 4, K = 4, n = C * H * W;
  const int32_t labels[B] = {2, 3};
  SECTION("prob 0: images untouched, targets smoothed one-hot") {
    MixupConfig cfg;
    cfg.prob = 0.0, cfg.num_classes = K;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const std::vector<float> orig = random_batch(B * n, seed);
      std::vector<float> x = orig, t(B * K);
      Generator g(seed);
      const MixupParams p = mixup_batch(x.data(), B, C, H, W, labels, cfg, g, t.data());
      REQUIRE(p.lam == 1.0);
      REQUIRE(x == orig);
      REQUIRE(t[2] == Approx(0.9 + 0.025).margin(1e-7));
      REQUIRE(t[0] == Approx(0.025).margin(1e-7));
    }
  }
  SECTION("both alphas on: CutMix about switch_prob of the time") {
    MixupConfig cfg;
    cfg.num_classes = K;
    int cutmix = 0;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      std::vector<float> x = random_batch(B * n, seed), t(B * K);
      Generator g(seed);
      cutmix += mixup_batch(x.data(), B, C, H, W, labels, cfg, g, t.data()).cutmix;
    }
    CHECK(cutmix > 160);
    CHECK(cutmix < 240);
    cfg.switch_prob = 1.0;
    Generator g(1);
    std::vector<float> x = random_batch(B * n, 1), t(B * K);
    CHECK(mixup_batch(x.data(), B, C, H, W, labels, cfg, g, t.data()).cutmix);
  }
  SECTION("mixup_enabled follows the alphas, as timm's train.py") {
    MixupConfig cfg;
    CHECK(mixup_enabled(cfg));
    cfg.mixup_alpha = 0;
    CHECK(mixup_enabled(cfg));
    cfg.cutmix_alpha = 0;
    CHECK_FALSE(mixup_enabled(cfg));
  }
}

TEST_CASE("Mixup is deterministic, handles an odd batch, and refuses misuse", "[data][mixup]") {
  constexpr int64_t B = 5, C = 1, H = 6, W = 6, K = 3, n = C * H * W;
  const int32_t labels[B] = {0, 1, 2, 1, 0};
  MixupConfig cfg;
  cfg.num_classes = K;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const std::vector<float> orig = random_batch(B * n, 300 + seed);
    std::vector<float> a = orig, b = orig, ta(B * K), tb(B * K);
    Generator ga(seed), gb(seed);
    const MixupParams p = mixup_batch(a.data(), B, C, H, W, labels, cfg, ga, ta.data());
    mixup_batch(b.data(), B, C, H, W, labels, cfg, gb, tb.data());
    REQUIRE(a == b);
    REQUIRE(ta == tb);
    // The middle image pairs with itself: unchanged up to float rounding.
    for (int64_t k = 0; k < n; ++k) REQUIRE(a[2 * n + k] == Approx(orig[2 * n + k]).margin(1e-6));
    if (p.cutmix)
      for (int64_t k = 0; k < n; ++k) REQUIRE(a[2 * n + k] == orig[2 * n + k]);
  }
  std::vector<float> x = random_batch(B * n, 1), t(B * K);
  const std::vector<float> before = x;
  Generator g(0);
  const int32_t bad[B] = {0, 1, 3, 1, 0};
  CHECK_THROWS_AS(mixup_batch(x.data(), B, C, H, W, bad, cfg, g, t.data()), Error);
  CHECK(x == before);  // labels are checked before any pixel moves
  MixupConfig no_k;
  CHECK_THROWS_AS(mixup_batch(x.data(), B, C, H, W, labels, no_k, g, t.data()), Error);
  MixupConfig bad_prob;
  bad_prob.num_classes = K, bad_prob.prob = 1.5;
  CHECK_THROWS_AS(mixup_batch(x.data(), B, C, H, W, labels, bad_prob, g, t.data()), Error);
}
