// vit::cuda::attention_forward/backward on the GPU against the CPU op
// vit::ops::attention_forward/backward in double, at ViT sizes (N = 65 and 197:
// patch grids plus the class token, N = 1024 for long sequences) and B·H like a
// ViT-S batch; lse against log Σ exp of the double scores. Outputs are poisoned
// (NaN) first, so an element never written fails. The backward must be bitwise
// repeatable (no atomics): two runs are compared byte for byte.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include <vit/cuda/attention.hpp>

#include "device_buffer.hpp"

namespace {

using vit::test::DeviceBuffer;
using vit::test::random_vector;
using vit::test::require_close;

struct Reference {
  std::vector<float> out, lse, dqkv;
};

Reference reference(const std::vector<float>& qkv_f, const std::vector<float>& dout_f, int64_t B, int64_t N,
                    int64_t C, int64_t H) {
  const int64_t D = C / H;
  const std::vector<double> qkv(qkv_f.begin(), qkv_f.end()), dout(dout_f.begin(), dout_f.end());
  std::vector<double> out(B * N * C), probs(B * H * N * N), dqkv(B * N * 3 * C);
  vit::ops::attention_forward<double>(qkv.data(), out.data(), probs.data(), B, N, C, H);
  vit::ops::attention_backward<double>(dout.data(), qkv.data(), probs.data(), dqkv.data(), B, N, C, H);
  std::vector<float> lse(B * H * N);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> s(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        const double* q = &qkv[(b * N + i) * 3 * C + h * D];
        for (int64_t j = 0; j < N; ++j) {
          const double* k = &qkv[(b * N + j) * 3 * C + C + h * D];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q[d] * k[d];
          s[j] = dot * scale;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        lse[(b * H + h) * N + i] = static_cast<float>(mx + std::log(sum));
      }
  return {std::vector<float>(out.begin(), out.end()), lse, std::vector<float>(dqkv.begin(), dqkv.end())};
}

// Slightly looser than the emulated tests: on the GPU the compiler contracts
// to FMA and orders sums its own way, over up to 1024 keys.
constexpr double kAtol = 2e-5, kRtol = 2e-4;

void check_case(int64_t B, int64_t N, int64_t H, int64_t D, uint64_t seed) {
  CAPTURE(B, N, H, D);
  const int64_t C = D * H;
  const std::vector<float> qkv_h = random_vector(B * N * 3 * C, seed);
  const std::vector<float> dout_h = random_vector(B * N * C, seed + 1);
  const Reference ref = reference(qkv_h, dout_h, B, N, C, H);

  DeviceBuffer qkv(qkv_h), dout(dout_h), out(B * N * C), lse(B * H * N), dqkv(B * N * 3 * C);
  vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), B, N, C, H);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv.get(), B, N, C, H);
  require_close(out.download(), ref.out, kAtol, kRtol, "out");
  require_close(lse.download(), ref.lse, kAtol, kRtol, "lse");
  require_close(dqkv.download(), ref.dqkv, kAtol, kRtol, "dqkv");
}

}  // namespace

TEST_CASE("cuda attention matches the CPU op at ViT sizes", "[cuda][attention]") {
  check_case(8, 65, 6, 32, 11);
  check_case(8, 65, 6, 64, 12);
  check_case(8, 197, 6, 32, 13);
  check_case(8, 197, 6, 64, 14);
  check_case(4, 197, 4, 16, 15);
}

TEST_CASE("cuda attention matches the CPU op at N 1024", "[cuda][attention]") {
  check_case(2, 1024, 3, 64, 21);
}

TEST_CASE("cuda attention handles tails and a single token", "[cuda][attention]") {
  check_case(3, 1, 2, 16, 31);
  check_case(2, 33, 3, 64, 32);
  check_case(2, 100, 2, 32, 33);
}

TEST_CASE("cuda attention rejects unsupported shapes", "[cuda][attention]") {
  DeviceBuffer qkv(2 * 4 * 3 * 96), out(2 * 4 * 96), lse(2 * 2 * 4);
  // D = 48 is not one of the instantiated head dims; C not divisible by H.
  CHECK_THROWS_AS(vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), 2, 4, 96, 2), vit::Error);
  CHECK_THROWS_AS(vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), 2, 4, 96, 5), vit::Error);
}

TEST_CASE("cuda attention backward is bitwise deterministic", "[cuda][attention]") {
  const int64_t B = 8, N = 197, H = 6, D = 64, C = D * H;
  DeviceBuffer qkv(random_vector(B * N * 3 * C, 41)), dout(random_vector(B * N * C, 42));
  DeviceBuffer out(B * N * C), lse(B * H * N), dqkv1(B * N * 3 * C), dqkv2(B * N * 3 * C);
  vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), B, N, C, H);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv1.get(), B, N, C, H);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv2.get(), B, N, C, H);
  const std::vector<float> a = dqkv1.download(), b = dqkv2.download();
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  for (float x : a) REQUIRE(std::isfinite(x));
}
