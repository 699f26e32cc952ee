// Cross-entropy with integer labels and label smoothing on the device
// (cuda/kernels/cross_entropy.cuh) under the CPU stand-in (emu.hpp), with the
// launcher's geometry and smoothing constants, against the CPU op
// vit::cross_entropy(logits, labels, ε): the loss value and, through autograd,
// dlogits. The labels path builds q inside the kernel from ε/K and 1−ε rounded
// as the CPU op rounds its dense target (from ε in double), so it must agree
// bit for bit with the soft-target path fed that dense target; ε = 0.33 is a
// case where rounding ε to float first would change 1−ε.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "emu_check.hpp"
#include "kernels/cross_entropy.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::test::poisoned;
using vit::test::random_affine;
using vit::test::require_close;

struct CeResult {
  std::vector<float> probs, row_loss, loss, dlogits;
};

/// Forward (rows, then the fixed-order mean) and backward as the launchers queue them.
CeResult emu_cross_entropy(const std::vector<float>& logits, const int32_t* labels,
                           const float* target, double eps, float dloss, int64_t B, int64_t K) {
  const k::SmoothingValues s = labels ? k::label_smoothing_values(eps, K) : k::SmoothingValues{};
  CeResult r{poisoned(B * K), poisoned(B), poisoned(1), poisoned(B * K)};
  const auto f = k::cross_entropy_forward_geometry(B, K);
  vit_emu::launch(f.rows_grid, f.rows_block, 0, f.rows_kernel, logits.data(), labels, target, s.off,
                  s.on, r.probs.data(), r.row_loss.data(), B, K);
  vit_emu::launch(f.mean_grid, f.mean_block, 0, f.mean_kernel,
                  static_cast<const float*>(r.row_loss.data()), r.loss.data(), B);
  const std::vector<float> dl = {dloss};
  const auto g = k::cross_entropy_backward_geometry(B, K);
  vit_emu::launch(g.grid, g.block, 0, g.kernel, dl.data(),
                  static_cast<const float*>(r.probs.data()), labels, target, s.off, s.on,
                  r.dlogits.data(), B, K);
  return r;
}


void check_labels(int64_t B, int64_t K, double eps, uint64_t seed) {
  INFO("B " << B << ", K " << K << ", smoothing " << eps);
  const size_t n = static_cast<size_t>(B * K);
  const std::vector<float> logits = random_affine(n, seed, 3.f, 0.3f);
  std::vector<int64_t> labels(B);
  std::vector<int32_t> labels32(B);
  for (int64_t b = 0; b < B; ++b)
    labels[b] = labels32[b] = static_cast<int32_t>((b * 7 + seed) % K);

  // The CPU op, float32, through its public wrapper and autograd (dloss = 1).
  vit::TensorF z = vit::TensorF::from_data({B, K}, logits);
  z.set_requires_grad(true);
  vit::TensorF loss = vit::cross_entropy(z, labels, eps);
  loss.backward();
  const float cpu_loss = loss.to_vector()[0];
  const std::vector<float> cpu_grad = z.grad().to_vector();

  const CeResult got = emu_cross_entropy(logits, labels32.data(), nullptr, eps, 1.f, B, K);
  require_close(got.loss, {cpu_loss}, 1e-5, 1e-5, "loss vs the CPU op");
  require_close(got.dlogits, cpu_grad, 1e-6, 1e-4, "dlogits vs the CPU op");
  // probs against a double softmax
  std::vector<float> probs_ref(n);
  for (int64_t b = 0; b < B; ++b) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < K; ++c) m = std::max(m, double(logits[b * K + c]));
    for (int64_t c = 0; c < K; ++c) s += std::exp(logits[b * K + c] - m);
    for (int64_t c = 0; c < K; ++c)
      probs_ref[b * K + c] = static_cast<float>(std::exp(logits[b * K + c] - m) / s);
  }
  require_close(got.probs, probs_ref, 1e-6, 1e-4, "probs");

  // The dense q the CPU op builds: full(ε/K) in float, then += (1−ε) at the label.
  std::vector<float> q(n, static_cast<float>(eps / K));
  for (int64_t b = 0; b < B; ++b) q[b * K + labels[b]] += static_cast<float>(1.0 - eps);
  const CeResult soft = emu_cross_entropy(logits, nullptr, q.data(), 0.0, 1.f, B, K);
  CHECK(vit::test::bitwise_equal(got.probs, soft.probs));
  CHECK(vit::test::bitwise_equal(got.row_loss, soft.row_loss));
  CHECK(vit::test::bitwise_equal(got.loss, soft.loss));
  CHECK(vit::test::bitwise_equal(got.dlogits, soft.dlogits));

  // The upstream gradient scales dlogits: (p − q)·dloss/B.
  const CeResult scaled = emu_cross_entropy(logits, labels32.data(), nullptr, eps, 0.37f, B, K);
  std::vector<float> ref(n);
  for (size_t i = 0; i < n; ++i) ref[i] = (got.probs[i] - q[i]) * (0.37f / static_cast<float>(B));
  require_close(scaled.dlogits, ref, 0, 0, "dlogits with dloss 0.37");
}

}  // namespace

TEST_CASE("emu cross_entropy with labels and smoothing matches the CPU op, loss included",
          "[cuda-emu][cross_entropy]") {
  uint64_t seed = 6000;
  for (int64_t B : {1, 5, 33})
    for (int64_t K : {1, 10, 37, 300})
      for (double eps : {0.0, 0.1, 0.33, 1.0}) check_labels(B, K, eps, seed += 10);
}

TEST_CASE("emu cross_entropy smoothing constants are the CPU target's floats, from ε in double",
          "[cuda-emu][cross_entropy]") {
  // With ε = 0.33 the CPU's float(1 − ε) differs from float(1 − float(ε)).
  const double eps = 0.33;
  REQUIRE(static_cast<float>(1.0 - eps) != static_cast<float>(1.0 - static_cast<float>(eps)));
  const k::SmoothingValues s = k::label_smoothing_values(eps, 10);
  const vit::TensorF q = vit::TensorF::full({1}, static_cast<float>(eps / 10));
  CHECK(s.off == q.to_vector()[0]);
  CHECK(s.on == static_cast<float>(1.0 - eps));
}
