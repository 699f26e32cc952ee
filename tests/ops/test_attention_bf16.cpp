// Attention on bf16 tensors on the CPU (include/vit/ops/attention.hpp: the
// vdpbf16ps kernels of detail/attention_bf16.hpp on AVX512-BF16 builds, else
// widen, float op, narrow once; the saved P stays float) against the float64
// op (tests/support/attention_reference.hpp) on the same bf16-rounded inputs:
// ‖got − ref‖₂/‖ref‖₂ < 1e-2 for out and each third of dqkv, NaN/Inf failing,
// outputs poisoned with NaN before the call; odd shapes (N = 1, 17, 65, 197,
// head dims 16 to 128), with and without attention dropout (the same mask
// as the float op: the saved state redraws it). Where the build has the
// vdpbf16ps kernels, they are also held against the widened float op, which
// computes the same P in float32, and checked for thread-count independence.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/attention_reference.hpp"
#include "support/vector_check.hpp"

using namespace vit;

namespace {

void require_rel_l2(const std::vector<float>& got, const std::vector<float>& ref, double bound,
                    const std::string& what, double floor = 0) {
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0;
  size_t bad = got.size();
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      if (bad == got.size()) bad = i;
      continue;
    }
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
  }
  INFO(what << ": first non-finite element " << bad << " of " << got.size());
  REQUIRE(bad == got.size());
  const double norm = std::max(std::sqrt(den), floor);
  const double rel = norm > 0 ? std::sqrt(num) / norm : std::sqrt(num);
  INFO(what << ": relative L2 error " << rel << " (bound " << bound << ")");
  REQUIRE(rel < bound);
}

std::vector<bf16> narrow(const std::vector<float>& v) {
  std::vector<bf16> r(v.size());
  std::transform(v.begin(), v.end(), r.begin(), [](float x) { return bf16(x); });
  return r;
}
std::vector<float> third(const std::vector<float>& v, int64_t C, int part) {
  std::vector<float> r;
  for (size_t row = 0; row < v.size() / (3 * C); ++row)
    r.insert(r.end(), v.begin() + row * 3 * C + part * C, v.begin() + row * 3 * C + (part + 1) * C);
  return r;
}

void check_case(int64_t B, int64_t N, int64_t C, int64_t H, uint64_t seed, const ops::AttentionDropout& drop = {}) {
  CAPTURE(B, N, C, H, drop.p);
  const std::vector<bf16> qkv = narrow(test::random_vector(B * N * 3 * C, seed));
  const std::vector<bf16> dout = narrow(test::random_vector(B * N * C, seed + 1));
  const auto ref = test::attention_reference(test::widen(qkv), test::widen(dout), B, N, C, H, drop);

  const TensorBF16 qkv_t = TensorBF16::from_data({B, N, 3 * C}, qkv);
  const TensorBF16 out = TensorBF16::full({B, N, C}, bf16(std::numeric_limits<float>::quiet_NaN()));
  const ops::AttentionSaved<bf16> saved = ops::attention_forward(qkv_t, out, H, drop);
  STATIC_REQUIRE(std::is_same_v<decltype(saved.stats), TensorF>);  // saved P stays float
  REQUIRE(saved.stats.shape() == Shape{B, H, N, N});
  require_rel_l2(test::widen(out.to_vector()), ref.out, 1e-2, "out");

  TensorBF16 dqkv = TensorBF16::full({B, N, 3 * C}, bf16(std::numeric_limits<float>::quiet_NaN()));
  ops::attention_backward(dout.data(), qkv_t, saved, dqkv.data(), H);
  const std::vector<float> got = test::widen(dqkv.to_vector());
  // N = 1: dQ = dK = 0 exactly (P = 1); measured against ‖dV‖ then.
  const std::vector<float> ref_dv = third(ref.dqkv, C, 2);
  double dv = 0;
  for (float x : ref_dv) dv += double(x) * x;
  const double floor = N == 1 ? std::sqrt(dv) : 0;
  require_rel_l2(third(got, C, 0), third(ref.dqkv, C, 0), 1e-2, "dq", floor);
  require_rel_l2(third(got, C, 1), third(ref.dqkv, C, 1), 1e-2, "dk", floor);
  require_rel_l2(third(got, C, 2), ref_dv, 1e-2, "dv");
}

}  // namespace

TEST_CASE("bf16 attention CPU reference matches float64", "[bf16][attention]") {
  for (int64_t N : {1, 17, 65, 197}) {
    check_case(1, N, 32, 2, 5 + N);    // D = 16
    check_case(2, N, 64, 2, 10 + N);   // D = 32
    check_case(1, N, 64, 1, 20 + N);   // D = 64
    check_case(1, N, 160, 2, 30 + N);  // D = 80
    check_case(1, N, 128, 1, 40 + N);  // D = 128
  }
}

TEST_CASE("bf16 attention CPU reference with dropout matches float64", "[bf16][attention]") {
  const ops::AttentionDropout drop{0.25, 99, 4242};
  for (int64_t N : {1, 17, 65, 197}) {
    check_case(2, N, 64, 2, 50 + N, drop);
    check_case(1, N, 80, 1, 60 + N, drop);
  }
}

#if VIT_HAVE_ATTENTION_BF16
namespace {

struct BF16Run {
  std::vector<bf16> out, dqkv;
  std::vector<float> probs;
};

template <class Forward, class Backward>
BF16Run run_bf16(const std::vector<bf16>& qkv, const std::vector<bf16>& dout, int64_t B, int64_t N, int64_t C,
                 int64_t H, Forward forward, Backward backward) {
  BF16Run r{std::vector<bf16>(B * N * C, bf16(std::numeric_limits<float>::quiet_NaN())),
            std::vector<bf16>(B * N * 3 * C, bf16(std::numeric_limits<float>::quiet_NaN())),
            std::vector<float>(B * H * N * N, std::numeric_limits<float>::quiet_NaN())};
  forward(qkv.data(), r.out.data(), r.probs.data());
  backward(dout.data(), qkv.data(), r.probs.data(), r.dqkv.data());
  return r;
}

bool bitwise_equal(const std::vector<bf16>& a, const std::vector<bf16>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), [](bf16 x, bf16 y) { return x.bits == y.bits; });
}

// The kernels (ops::attention_* on bf16 pointers, which take them at these
// shapes) against the widened float op: the saved P is computed in float32
// from the same bf16 inputs by both (same exp, sums in another order), so it
// agrees to float rounding; out and dqkv differ by the bf16 rounding of P and
// dS before their products, within 5e-3 (measured ~2.6e-3).
void check_kernels(int64_t B, int64_t N, int64_t C, int64_t H, uint64_t seed, const ops::AttentionDropout& drop) {
  CAPTURE(B, N, C, H, drop.p);
  REQUIRE(ops::detail::attention_bf16::supported(N, C / H));
  const std::vector<bf16> qkv = narrow(test::random_vector(B * N * 3 * C, seed));
  const std::vector<bf16> dout = narrow(test::random_vector(B * N * C, seed + 1));
  auto kernels = [&] {
    return run_bf16(
        qkv, dout, B, N, C, H,
        [&](const bf16* x, bf16* o, float* p) { ops::attention_forward(x, o, p, B, N, C, H, drop); },
        [&](const bf16* g, const bf16* x, const float* p, bf16* d) {
          ops::attention_backward(g, x, p, d, B, N, C, H, drop);
        });
  };
  const BF16Run got = kernels();
  const BF16Run ref = run_bf16(
      qkv, dout, B, N, C, H,
      [&](const bf16* x, bf16* o, float* p) { ops::detail::attention_forward_widened(x, o, p, B, N, C, H, drop); },
      [&](const bf16* g, const bf16* x, const float* p, bf16* d) {
        ops::detail::attention_backward_widened(g, x, p, d, B, N, C, H, drop);
      });
  require_rel_l2(got.probs, ref.probs, 1e-6, "saved P");
  require_rel_l2(test::widen(got.out), test::widen(ref.out), 5e-3, "out");
  for (int part = 0; part < 3; ++part)
    require_rel_l2(third(test::widen(got.dqkv), C, part), third(test::widen(ref.dqkv), C, part), 5e-3,
                   "dqkv third " + std::to_string(part), N == 1 && part < 2 ? 1.0 : 0.0);

  // The same bits on one thread as on several.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const BF16Run one = kernels();
  omp_set_num_threads(std::max(threads, 2));
  const BF16Run two = kernels();
  omp_set_num_threads(threads);
  REQUIRE(bitwise_equal(one.out, got.out));
  REQUIRE(bitwise_equal(two.out, got.out));
  REQUIRE(bitwise_equal(one.dqkv, got.dqkv));
  REQUIRE(bitwise_equal(two.dqkv, got.dqkv));
  REQUIRE(std::equal(one.probs.begin(), one.probs.end(), two.probs.begin()));
}

}  // namespace

TEST_CASE("bf16 attention: the vdpbf16ps kernels agree with the widened float op", "[bf16][attention]") {
  for (int64_t N : {1, 2, 17, 50, 65, 197, 256}) {
    check_kernels(2, N, 32, 2, 70 + N, {});    // D = 16
    check_kernels(3, N, 128, 4, 80 + N, {});   // D = 32
    check_kernels(2, N, 192, 3, 90 + N, {});   // D = 64
    check_kernels(1, N, 160, 2, 100 + N, {});  // D = 80
    check_kernels(1, N, 256, 2, 110 + N, {});  // D = 128
    check_kernels(2, N, 192, 3, 120 + N, ops::AttentionDropout{0.25, 7, 1234});
  }
}

TEST_CASE("bf16 attention: shapes outside the vdpbf16ps kernels take the widened path", "[bf16][attention]") {
  CHECK_FALSE(ops::detail::attention_bf16::supported(65, 8));    // head dim not a multiple of 16
  CHECK_FALSE(ops::detail::attention_bf16::supported(65, 144));  // head dim past 128
  CHECK_FALSE(ops::detail::attention_bf16::supported(257, 64));  // past 256 tokens
  check_case(2, 65, 48, 2, 130);   // D = 24
  check_case(1, 300, 64, 1, 131);  // N = 300
}
#endif
