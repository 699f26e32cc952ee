// vit::cuda::attention_forward/backward on the GPU against the CPU op
// vit::ops::attention_forward/backward in double, at ViT sizes (N = 65 and 197:
// patch grids plus the class token, N = 1024 for long sequences) and B·H like a
// ViT-S batch; lse against log Σ exp of the double scores. Outputs are poisoned
// (NaN) first, so an element never written fails. The backward must be bitwise
// repeatable (no atomics): two runs are compared byte for byte.
// Attention dropout (attn_drop > 0): the same comparisons against the CPU op
// with the same (p, seed, counter0); the mask read back exactly (q = 0 and
// one-hot v, dout) against vit::Generator; the op through Device::CUDA tensors
// against the CPU op; p = 0 through the dropout overload equals the plain call.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include <vit/cuda/attention.hpp>

#include "device_buffer.hpp"
#include "support/attention_reference.hpp"

namespace {

using vit::test::DeviceBuffer;
using vit::test::random_vector;
using vit::test::require_close;

using Reference = vit::test::AttentionReference;

Reference reference(const std::vector<float>& qkv, const std::vector<float>& dout, int64_t B, int64_t N,
                    int64_t C, int64_t H, const vit::ops::AttentionDropout& drop = {}) {
  return vit::test::attention_reference(qkv, dout, B, N, C, H, drop);
}

// Slightly looser than the emulated tests: on the GPU the compiler contracts
// to FMA and orders sums its own way, over up to 1024 keys.
constexpr double kAtol = 2e-5, kRtol = 2e-4;

void check_case(int64_t B, int64_t N, int64_t H, int64_t D, uint64_t seed,
                const vit::ops::AttentionDropout& drop = {}) {
  CAPTURE(B, N, H, D, drop.p);
  const int64_t C = D * H;
  const std::vector<float> qkv_h = random_vector(B * N * 3 * C, seed);
  const std::vector<float> dout_h = random_vector(B * N * C, seed + 1);
  const Reference ref = reference(qkv_h, dout_h, B, N, C, H, drop);

  DeviceBuffer qkv(qkv_h), dout(dout_h), out(B * N * C), lse(B * H * N), dqkv(B * N * 3 * C);
  if (drop.active()) {
    vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), B, N, C, H, drop.p, drop.seed, drop.counter0);
    vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv.get(), B, N, C, H, drop.p,
                                  drop.seed, drop.counter0);
  } else {
    vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), B, N, C, H);
    vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv.get(), B, N, C, H);
  }
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

// ---- attention dropout --------------------------------------------------------------

TEST_CASE("cuda attention with dropout matches the CPU op", "[cuda][attention][attn_drop]") {
  check_case(8, 65, 6, 32, 51, {0.2, 7, 0});
  check_case(8, 65, 6, 64, 52, {0.1, 8, 1ull << 36});
  check_case(8, 197, 6, 64, 53, {0.2, 9, 12345});
  check_case(4, 197, 4, 16, 54, {0.5, 10, 3});
  check_case(3, 1, 2, 16, 55, {0.2, 11, 0});
  check_case(2, 100, 2, 32, 56, {0.2, 12, 0});
  check_case(2, 1024, 3, 64, 57, {0.2, 13, 99});
}

TEST_CASE("cuda attention draws vit::Generator's dropout mask bit for bit", "[cuda][attention][attn_drop]") {
  // q = 0: P_ij = 1/N; v_j = e_j and dout_i = e_i: out_i[j] and dV_j[i] are m_ij/N.
  auto run = [](int64_t B, int64_t N, int64_t H, int64_t D, double p, uint64_t seed, uint64_t c0) {
    CAPTURE(B, N, H, D, p, seed, c0);
    const int64_t C = D * H;
    std::vector<float> qkv_h(B * N * 3 * C, 0.f), dout_h(B * N * C, 0.f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h) {
          qkv_h[(b * N + n) * 3 * C + 2 * C + h * D + n] = 1.f;
          dout_h[(b * N + n) * C + h * D + n] = 1.f;
        }
    DeviceBuffer qkv(qkv_h), dout(dout_h), out(B * N * C), lse(B * H * N), dqkv(B * N * 3 * C);
    vit::cuda::attention_forward(qkv.get(), out.get(), lse.get(), B, N, C, H, p, seed, c0);
    vit::cuda::attention_backward(dout.get(), qkv.get(), out.get(), lse.get(), dqkv.get(), B, N, C, H, p, seed, c0);
    const std::vector<float> o = out.download(), g = dqkv.download();
    const vit::Generator gen(seed);
    const float ks = static_cast<float>(1.0 / (1.0 - p));
    int64_t kept = 0, mismatches = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) {
            const bool keep = gen.uniform(c0 + static_cast<uint64_t>(((b * H + h) * N + i) * N + j)) >= p;
            kept += keep;
            const float fwd = o[(b * N + i) * C + h * D + j] * static_cast<float>(N) / ks;
            const float dv = g[(b * N + j) * 3 * C + 2 * C + h * D + i] * static_cast<float>(N) / ks;
            mismatches += std::abs(fwd - (keep ? 1.f : 0.f)) > 1e-5f || std::abs(dv - (keep ? 1.f : 0.f)) > 1e-5f;
          }
    CHECK(mismatches == 0);
    CHECK(kept > 0);
    CHECK(kept < B * H * N * N);
  };
  run(4, 16, 3, 16, 0.2, 1, 0);
  run(8, 32, 6, 32, 0.3, 2, 1ull << 40);
  run(8, 64, 6, 64, 0.1, 0xfeedull, 77);
}

TEST_CASE("cuda attention with dropout is bitwise deterministic and p = 0 is the plain kernel",
          "[cuda][attention][attn_drop]") {
  const int64_t B = 8, N = 197, H = 6, D = 64, C = D * H;
  DeviceBuffer qkv(random_vector(B * N * 3 * C, 61)), dout(random_vector(B * N * C, 62));
  DeviceBuffer out1(B * N * C), out2(B * N * C), lse(B * H * N), dqkv1(B * N * 3 * C), dqkv2(B * N * 3 * C);
  vit::cuda::attention_forward(qkv.get(), out1.get(), lse.get(), B, N, C, H, 0.2, 5, 0);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out1.get(), lse.get(), dqkv1.get(), B, N, C, H, 0.2, 5, 0);
  vit::cuda::attention_forward(qkv.get(), out2.get(), lse.get(), B, N, C, H, 0.2, 5, 0);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out2.get(), lse.get(), dqkv2.get(), B, N, C, H, 0.2, 5, 0);
  auto same = [](const DeviceBuffer& a, const DeviceBuffer& b) {
    const std::vector<float> x = a.download(), y = b.download();
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  CHECK(same(out1, out2));
  CHECK(same(dqkv1, dqkv2));
  // p = 0 with a seed and counter: the kernels without dropout, bit for bit.
  vit::cuda::attention_forward(qkv.get(), out1.get(), lse.get(), B, N, C, H);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out1.get(), lse.get(), dqkv1.get(), B, N, C, H);
  vit::cuda::attention_forward(qkv.get(), out2.get(), lse.get(), B, N, C, H, 0.0, 5, 123);
  vit::cuda::attention_backward(dout.get(), qkv.get(), out2.get(), lse.get(), dqkv2.get(), B, N, C, H, 0.0, 5, 123);
  CHECK(same(out1, out2));
  CHECK(same(dqkv1, dqkv2));
  CHECK_THROWS_AS(vit::cuda::attention_forward(qkv.get(), out1.get(), lse.get(), B, N, C, H, 1.0, 5, 0), vit::Error);
  CHECK_THROWS_AS(vit::cuda::attention_forward(qkv.get(), out1.get(), lse.get(), B, N, C, H, -0.1, 5, 0), vit::Error);
}

TEST_CASE("attention op with attn_drop on Device::CUDA matches the CPU op", "[cuda][attention][attn_drop]") {
  // The public op: the same generator state on both devices draws the same mask.
  const int64_t B = 4, N = 65, C = 192, H = 3;
  vit::Generator init(71);
  const vit::TensorF x = vit::TensorF::normal({B, N, 3 * C}, 0.0, 1.0, init);
  vit::TensorF xc = x.clone(), xg = x.to(vit::Device::CUDA);
  xc.set_requires_grad(true);
  xg.set_requires_grad(true);
  vit::Generator gc(9), gg(9);
  gc.reserve(1000), gg.reserve(1000);
  const vit::TensorF yc = vit::attention(xc, H, 0.2, true, gc), yg = vit::attention(xg, H, 0.2, true, gg);
  REQUIRE(gc.offset() == gg.offset());
  const vit::TensorF w = vit::TensorF::normal({B, N, C}, 0.0, 1.0, init);
  vit::sum(vit::mul(yc, w)).backward();
  vit::sum(vit::mul(yg, w.to(vit::Device::CUDA))).backward();
  require_close(yg.to(vit::Device::CPU).to_vector(), yc.to_vector(), kAtol, kRtol, "out");
  require_close(xg.grad().to(vit::Device::CPU).to_vector(), xc.grad().to_vector(), kAtol, kRtol, "dqkv");
}
