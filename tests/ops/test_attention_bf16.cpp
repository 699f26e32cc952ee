// The CPU reference of attention for bf16 tensors (include/vit/ops/attention.hpp:
// widen, float op, narrow once; saved P stays float) against the float64 op
// (tests/support/attention_reference.hpp) on the same bf16-rounded inputs:
// ‖got − ref‖₂/‖ref‖₂ < 1e-2 for out and each third of dqkv, NaN/Inf failing,
// outputs poisoned with NaN before the call; odd shapes (N = 1, 17, 65, 197,
// head dims 32, 64, 80, 128), with and without attention dropout (the same mask
// as the float op: the saved state redraws it).
#include <catch2/catch.hpp>

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

std::vector<float> widen(const std::vector<bf16>& v) { return {v.begin(), v.end()}; }
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
  const auto ref = test::attention_reference(widen(qkv), widen(dout), B, N, C, H, drop);

  const TensorBF16 qkv_t = TensorBF16::from_data({B, N, 3 * C}, qkv);
  const TensorBF16 out = TensorBF16::full({B, N, C}, bf16(std::numeric_limits<float>::quiet_NaN()));
  const ops::AttentionSaved<bf16> saved = ops::attention_forward(qkv_t, out, H, drop);
  STATIC_REQUIRE(std::is_same_v<decltype(saved.stats), TensorF>);  // saved P stays float
  REQUIRE(saved.stats.shape() == Shape{B, H, N, N});
  require_rel_l2(widen(out.to_vector()), ref.out, 1e-2, "out");

  TensorBF16 dqkv = TensorBF16::full({B, N, 3 * C}, bf16(std::numeric_limits<float>::quiet_NaN()));
  ops::attention_backward(dout.data(), qkv_t, saved, dqkv.data(), H);
  const std::vector<float> got = widen(dqkv.to_vector());
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
