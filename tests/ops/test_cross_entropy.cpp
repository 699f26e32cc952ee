// cross_entropy (hard labels with label smoothing, and soft targets) against
// PyTorch's definition in float64, one value computed by torch itself,
// stability for large logits, the gradient (softmax − q)/B analytically and by
// finite differences, float32 against float64, and misuse.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
// log p_{b,k} = z_{b,k} − logsumexp(z_b), computed with the max subtracted.
std::vector<double> log_softmax_row(const double* z, int64_t K) {
  double m = z[0];
  for (int64_t k = 1; k < K; ++k) m = std::max(m, z[k]);
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += std::exp(z[k] - m);
  std::vector<double> lp(K);
  for (int64_t k = 0; k < K; ++k) lp[k] = z[k] - m - std::log(s);
  return lp;
}

// PyTorch's F.cross_entropy(z, y, label_smoothing=ε), reduction='mean':
//   loss = mean_b [ (1−ε)·(−log p_{b,y_b}) + ε·mean_k(−log p_{b,k}) ]
double ce_reference(const TensorD& z, const std::vector<int64_t>& y, double eps) {
  const int64_t B = z.shape()[0], K = z.shape()[1];
  double total = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto lp = log_softmax_row(z.data() + b * K, K);
    double smooth = 0;
    for (int64_t k = 0; k < K; ++k) smooth += -lp[k];
    total += (1 - eps) * -lp[y[b]] + eps * smooth / K;
  }
  return total / B;
}

// Soft targets: loss = mean_b Σ_k −q_{b,k} log p_{b,k}.
double ce_soft_reference(const TensorD& z, const TensorD& q) {
  const int64_t B = z.shape()[0], K = z.shape()[1];
  double total = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto lp = log_softmax_row(z.data() + b * K, K);
    for (int64_t k = 0; k < K; ++k) total += -q.data()[b * K + k] * lp[k];
  }
  return total / B;
}

// q = (1−ε)·onehot(y) + ε/K as a (B,K) tensor.
TensorD smoothed_targets(int64_t B, int64_t K, const std::vector<int64_t>& y, double eps) {
  TensorD q = TensorD::full({B, K}, eps / K);
  for (int64_t b = 0; b < B; ++b) q.data()[b * K + y[b]] += 1 - eps;
  return q;
}

TensorD softmax_rows(const TensorD& z) {
  const int64_t B = z.shape()[0], K = z.shape()[1];
  TensorD p = TensorD::empty(z.shape());
  for (int64_t b = 0; b < B; ++b) {
    const auto lp = log_softmax_row(z.data() + b * K, K);
    for (int64_t k = 0; k < K; ++k) p.data()[b * K + k] = std::exp(lp[k]);
  }
  return p;
}

// A random row-stochastic (B,K) tensor.
TensorD random_distribution(int64_t B, int64_t K, uint64_t seed) {
  Generator g(seed);
  TensorD q = TensorD::uniform({B, K}, 0.0, 1.0, g);
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += q.data()[b * K + k];
    for (int64_t k = 0; k < K; ++k) q.data()[b * K + k] /= s;
  }
  return q;
}

const std::vector<int64_t> kTargets = {3, 0, 4, 4, 1, 2};
}  // namespace

TEST_CASE("cross_entropy matches PyTorch's definition", "[ops][cross_entropy]") {
  const TensorD z = test::randn<double>({6, 5}, 51, 2.0);
  for (double eps : {0.0, 0.1, 1.0}) {
    INFO("label_smoothing = " << eps);
    const TensorD loss = cross_entropy(z, kTargets, eps);
    REQUIRE(loss.shape() == Shape{});
    CHECK(loss.item() == Approx(ce_reference(z, kTargets, eps)).epsilon(1e-13));
  }
  // Default ε is 0.
  CHECK(cross_entropy(z, kTargets).item() == cross_entropy(z, kTargets, 0.0).item());
  // ε = 1 ignores the labels: uniform target.
  CHECK(cross_entropy(z, kTargets, 1.0).item() ==
        Approx(cross_entropy(z, std::vector<int64_t>{0, 0, 0, 0, 0, 0}, 1.0).item()).epsilon(1e-14));
  // Uniform logits give log K whatever the label and ε.
  CHECK(cross_entropy(TensorD::zeros({2, 7}), {6, 0}, 0.3).item() == Approx(std::log(7.0)).epsilon(1e-15));
}

TEST_CASE("cross_entropy matches a value computed by torch", "[ops][cross_entropy]") {
  // The one literal oracle. Produced with Debian's torch 1.13:
  //   /usr/bin/python3 -c "import torch, torch.nn.functional as F;
  //     z = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 0.25, -1.5, 2.0], [4.0, 1.0, -0.5, 0.0]],
  //                      dtype=torch.float64);
  //     print(repr(F.cross_entropy(z, torch.tensor([3, 1, 0]), label_smoothing=0.1).item()));
  //     print(repr(F.cross_entropy(z, torch.tensor([3, 1, 0])).item()))"
  // -> 0.9506287811022411 and 0.7735454477689078
  const std::vector<double> v = {1.0, -2.0, 0.5, 3.0, 0.0, 0.25, -1.5, 2.0, 4.0, 1.0, -0.5, 0.0};
  const TensorD z = TensorD::from_data({3, 4}, v);
  const std::vector<int64_t> y = {3, 1, 0};
  CHECK(cross_entropy(z, y, 0.1).item() == Approx(0.9506287811022411).epsilon(1e-14));
  CHECK(cross_entropy(z, y).item() == Approx(0.7735454477689078).epsilon(1e-14));
  std::vector<float> vf(v.begin(), v.end());
  CHECK(cross_entropy(TensorF::from_data({3, 4}, vf), y, 0.1).item() ==
        Approx(0.9506287811022411).epsilon(1e-6));
}

TEST_CASE("cross_entropy with soft targets matches Σ −q·log p", "[ops][cross_entropy]") {
  const TensorD z = test::randn<double>({6, 5}, 52, 2.0);
  const TensorD q = random_distribution(6, 5, 53);
  CHECK(cross_entropy(z, q).item() == Approx(ce_soft_reference(z, q)).epsilon(1e-13));
  // Smoothed one-hot targets reproduce the label overload.
  for (double eps : {0.0, 0.1, 1.0})
    CHECK(cross_entropy(z, smoothed_targets(6, 5, kTargets, eps)).item() ==
          Approx(cross_entropy(z, kTargets, eps).item()).epsilon(1e-14));
}

TEST_CASE("cross_entropy is stable for large logits", "[ops][cross_entropy]") {
  SECTION("float64") {
    const TensorD z = TensorD::from_data({3, 3}, {1000.0, 1001.0, 999.0,     // moderate gaps
                                                  -1000.0, 0.0, 1000.0,     // p_0 = e^-2000
                                                  1e4, 1e4, 1e4});
    const std::vector<int64_t> y = {0, 0, 2};
    for (double eps : {0.0, 0.1, 1.0}) {
      INFO("label_smoothing = " << eps);
      const double loss = cross_entropy(z, y, eps).item();
      REQUIRE(std::isfinite(loss));
      CHECK(loss == Approx(ce_reference(z, y, eps)).epsilon(1e-13));
    }
    // Row 1 with label 0 costs exactly 2000 nats (up to e^-1000 terms).
    const TensorD row = TensorD::from_data({1, 3}, {-1000.0, 0.0, 1000.0});
    CHECK(cross_entropy(row, std::vector<int64_t>{0}).item() == Approx(2000.0).epsilon(1e-15));
    CHECK(cross_entropy(row, std::vector<int64_t>{2}).item() == 0.0);
  }
  SECTION("float32") {
    const TensorD zd = TensorD::from_data({2, 3}, {1000.0, 1001.0, 999.0, -80.0, 0.0, 80.0});
    const TensorF zf = to_float(zd);
    for (double eps : {0.0, 0.1}) {
      const double loss = cross_entropy(zf, {1, 0}, eps).item();
      REQUIRE(std::isfinite(loss));
      CHECK(loss == Approx(ce_reference(zd, {1, 0}, eps)).epsilon(1e-6));
    }
  }
}

TEST_CASE("cross_entropy gradient is (softmax − q)/B", "[ops][cross_entropy]") {
  const int64_t B = 6, K = 5;
  const TensorD z0 = test::randn<double>({B, K}, 54, 2.0);
  for (double eps : {0.0, 0.1, 1.0}) {
    INFO("label_smoothing = " << eps);
    TensorD z = z0.clone();
    z.set_requires_grad(true);
    cross_entropy(z, kTargets, eps).backward();
    const TensorD p = softmax_rows(z0), q = smoothed_targets(B, K, kTargets, eps);
    TensorD want = TensorD::empty({B, K});
    for (int64_t i = 0; i < B * K; ++i) want.data()[i] = (p.data()[i] - q.data()[i]) / B;
    test::require_close(z.grad(), want, 1e-16, 1e-13);
  }
  // Soft targets: the same form with q given; the upstream gradient scales it.
  const TensorD q = random_distribution(B, K, 55);
  TensorD z = z0.clone();
  z.set_requires_grad(true);
  cross_entropy(z, q).backward(TensorD::full({}, 3.0));
  const TensorD p = softmax_rows(z0);
  TensorD want = TensorD::empty({B, K});
  for (int64_t i = 0; i < B * K; ++i) want.data()[i] = 3.0 * (p.data()[i] - q.data()[i]) / B;
  test::require_close(z.grad(), want, 1e-16, 1e-13);
}

TEST_CASE("cross_entropy backward matches finite differences", "[ops][cross_entropy]") {
  const std::vector<int64_t> y = {2, 0, 3};
  for (double eps : {0.0, 0.1, 1.0}) {
    INFO("label_smoothing = " << eps);
    test::check_gradients([&](const std::vector<TensorD>& in) { return cross_entropy(in[0], y, eps); },
                          {test::randn<double>({3, 4}, 56, 2.0)});
  }
  const TensorD q = random_distribution(3, 4, 57);
  test::check_gradients([&](const std::vector<TensorD>& in) { return cross_entropy(in[0], q); },
                        {test::randn<double>({3, 4}, 58, 2.0)});
  // Large logits: still exact gradients (p is one-hot to double precision).
  TensorD big = test::randn<double>({3, 4}, 59);
  big.data()[0] += 1000.0, big.data()[6] -= 1000.0;
  test::check_gradients([&](const std::vector<TensorD>& in) { return cross_entropy(in[0], y, 0.1); },
                        {big});
}

TEST_CASE("cross_entropy in float32 agrees with float64 at ImageNet size", "[ops][cross_entropy]") {
  const int64_t B = 64, K = 1000;
  const TensorD z = test::randn<double>({B, K}, 60, 3.0);
  std::vector<int64_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = (b * 379) % K;
  TensorF zf = to_float(z);
  zf.set_requires_grad(true);
  const TensorF loss = cross_entropy(zf, y, 0.1);
  CHECK(loss.item() == Approx(ce_reference(z, y, 0.1)).epsilon(1e-6));
  loss.backward();
  TensorD zd = z.clone();
  zd.set_requires_grad(true);
  cross_entropy(zd, y, 0.1).backward();
  test::require_close(zf.grad(), zd.grad(), 1e-8, 1e-5);
}

TEST_CASE("cross_entropy rejects bad labels, shapes and smoothing", "[ops][cross_entropy][errors]") {
  const TensorF z = TensorF::zeros({3, 4});
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 4, 1}),
                      Catch::Contains("cross_entropy: label 4 at row 1 is out of range for 4 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 1, -1}),
                      Catch::Contains("cross_entropy: label -1 at row 2 is out of range for 4 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 1}), Catch::Contains("cross_entropy: 2 labels for logits (3,4)"));
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 1, 2, 3}),
                      Catch::Contains("cross_entropy: 4 labels for logits (3,4)"));
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 1, 2}, 1.5),
                      Catch::Contains("cross_entropy: label_smoothing must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(cross_entropy(z, {0, 1, 2}, -0.1),
                      Catch::Contains("cross_entropy: label_smoothing must be in [0, 1], got -0.1"));
  REQUIRE_THROWS_WITH(cross_entropy(TensorF::zeros({12}), std::vector<int64_t>{0}),
                      Catch::Contains("cross_entropy: logits (12) (need B,K)"));
  REQUIRE_THROWS_WITH(cross_entropy(TensorF::zeros({3, 0}), {0, 0, 0}),
                      Catch::Contains("cross_entropy: logits (3,0) (need B,K)"));
  REQUIRE_THROWS_WITH(cross_entropy(z, TensorF::zeros({3, 5})),
                      Catch::Contains("cross_entropy: logits (3,4) vs soft targets (3,5)"));
}
