// The flash-attention kernels of cuda/kernels/attention.cuh run under the CPU
// stand-in (emu.hpp) with the launchers' geometry, against the CPU op
// vit::ops::attention_forward/backward instantiated in double. Outputs start
// as NaN, so an element a kernel never writes fails. N covers the tails: one
// token, less than a chunk, one past a 32/64-row tile, two tiles, three tiles.
// Small B, H, N on purpose: the emulator runs one OS thread per CUDA thread.
// Attention dropout (the kDrop kernels): against the CPU op with the same
// mask parameters, over the same tails; and the mask itself read out of the
// forward and dV bit for bit against vit::Generator (q = 0 makes P uniform,
// one-hot values and output gradients then expose every m_ij).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "emu_check.hpp"
#include "support/attention_reference.hpp"
#include "kernels/attention.cuh"

namespace {

namespace kn = vit::cuda::kernels;
using vit::test::poisoned;
using vit::test::random_vector;
using vit::test::require_close;

struct Result {
  std::vector<float> out, lse, delta, dqkv;
};

// The float64 reference (tests/support/attention_reference.hpp) in the kernels' Result.
Result reference(const std::vector<float>& qkv, const std::vector<float>& dout, int64_t B, int64_t N,
                 int64_t C, int64_t H, const vit::ops::AttentionDropout& drop = {}) {
  auto r = vit::test::attention_reference(qkv, dout, B, N, C, H, drop);
  return {std::move(r.out), std::move(r.lse), std::move(r.delta), std::move(r.dqkv)};
}

using vit::test::drop_args;

// The launcher sequence of cuda/attention.cu, each kernel through vit_emu::launch.
template <int D, bool kDrop = false>
Result run_kernels(const std::vector<float>& qkv, const std::vector<float>& dout, int64_t B, int64_t N,
                   int64_t H, const vit::ops::AttentionDropout& drop = {}) {
  const int64_t C = D * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const kn::AttentionDrop da = drop_args(drop);
  const int n = static_cast<int>(N), c = static_cast<int>(C), h = static_cast<int>(H);
  Result r{poisoned(B * N * C), poisoned(B * H * N), poisoned(B * H * N), poisoned(B * N * 3 * C)};

  const kn::AttentionLaunch gf = kn::attention_forward_launch<D>(B, N, H);
  vit_emu::launch(gf.grid, gf.block, gf.smem_bytes, kn::attention_forward_kernel<D, kDrop>, qkv.data(),
                  r.out.data(), r.lse.data(), n, c, h, scale, da);
  const kn::AttentionLaunch gd = kn::attention_delta_launch<D>(B, N, H);
  vit_emu::launch(gd.grid, gd.block, gd.smem_bytes, kn::attention_delta_kernel<D>, dout.data(),
                  static_cast<const float*>(r.out.data()), r.delta.data(), B * N * H, n, h);
  const kn::AttentionLaunch gq = kn::attention_dq_launch<D>(B, N, H);
  vit_emu::launch(gq.grid, gq.block, gq.smem_bytes, kn::attention_backward_dq_kernel<D, kDrop>, dout.data(),
                  qkv.data(), static_cast<const float*>(r.lse.data()), static_cast<const float*>(r.delta.data()),
                  r.dqkv.data(), n, c, h, scale, da);
  const kn::AttentionLaunch gk = kn::attention_dkv_launch<D>(B, N, H);
  vit_emu::launch(gk.grid, gk.block, gk.smem_bytes, kn::attention_backward_dkv_kernel<D, kDrop>, dout.data(),
                  qkv.data(), static_cast<const float*>(r.lse.data()), static_cast<const float*>(r.delta.data()),
                  r.dqkv.data(), n, c, h, scale, da);
  return r;
}

template <int D, bool kDrop = false>
void check_case(int64_t B, int64_t N, int64_t H, uint64_t seed, double input_std = 1.0, double atol = 1e-5,
                double rtol = 1e-4, const vit::ops::AttentionDropout& drop = {}) {
  CAPTURE(D, B, N, H, input_std, kDrop, drop.p);
  const int64_t C = D * H;
  const std::vector<float> qkv = random_vector(B * N * 3 * C, seed, input_std);
  const std::vector<float> dout = random_vector(B * N * C, seed + 1);
  const Result ref = reference(qkv, dout, B, N, C, H, drop);
  const Result got = run_kernels<D, kDrop>(qkv, dout, B, N, H, drop);
  require_close(got.out, ref.out, atol, rtol, "out");
  require_close(got.lse, ref.lse, atol, rtol, "lse");
  require_close(got.delta, ref.delta, atol, rtol, "delta");
  require_close(got.dqkv, ref.dqkv, atol, rtol, "dqkv");
}

}  // namespace

TEST_CASE("emulated attention kernels match the CPU op, head dim 16", "[cuda-emu][attention]") {
  const int64_t Ns[] = {1, 5, 33, 65, 100, 130};
  for (int64_t N : Ns) check_case<16>(2, N, 3, 100 + N);
}

TEST_CASE("emulated attention kernels match the CPU op, head dim 32", "[cuda-emu][attention]") {
  const int64_t Ns[] = {1, 5, 33, 65, 100};
  for (int64_t N : Ns) check_case<32>(2, N, 2, 200 + N);
}

TEST_CASE("emulated attention kernels match the CPU op, head dim 64", "[cuda-emu][attention]") {
  const int64_t Ns[] = {1, 5, 33, 65, 100};
  for (int64_t N : Ns) check_case<64>(1, N, 2, 300 + N);
}

// Inputs of std 6 give scores of std ~36: exp(s) alone would overflow float, so this checks
// that the online softmax subtracts the running max and rescales correctly.
// Peaked softmax amplifies the float rounding of the scores, hence looser bounds.
TEST_CASE("emulated attention kernels stay finite and close with large scores", "[cuda-emu][attention]") {
  check_case<32>(1, 70, 2, 400, 6.0, 2e-4, 2e-3);
}

// ---- attention dropout: the kDrop kernels ----------------------------------------

TEST_CASE("emulated attention kernels with dropout match the CPU op, head dim 16", "[cuda-emu][attention][attn_drop]") {
  const int64_t Ns[] = {1, 5, 33, 65, 130};
  for (int64_t N : Ns) check_case<16, true>(2, N, 3, 500 + N, 1.0, 1e-5, 1e-4, {0.2, 17, 12345});
}

TEST_CASE("emulated attention kernels with dropout match the CPU op, head dim 32", "[cuda-emu][attention][attn_drop]") {
  const int64_t Ns[] = {1, 5, 33, 100};
  for (int64_t N : Ns) check_case<32, true>(2, N, 2, 600 + N, 1.0, 1e-5, 1e-4, {0.2, 18, 0});
}

TEST_CASE("emulated attention kernels with dropout match the CPU op, head dim 64", "[cuda-emu][attention][attn_drop]") {
  const int64_t Ns[] = {1, 5, 33, 65, 100};
  for (int64_t N : Ns) check_case<64, true>(1, N, 2, 700 + N, 1.0, 1e-5, 1e-4, {0.5, 19, 1ull << 40});
}

TEST_CASE("emulated attention kernels with dropout stay close with large scores", "[cuda-emu][attention][attn_drop]") {
  check_case<32, true>(1, 70, 2, 800, 6.0, 2e-4, 2e-3, {0.1, 20, 3});
}

// q = 0: P_ij = 1/N. v_j = e_j (one-hot at column j < D) makes out_i[j] = m_ij/N,
// and dout_i = e_i makes dV_j[i] = P'_ij = m_ij/N: the forward and the dK/dV
// kernel each expose the whole mask, read back and compared with the
// generator's (bits >> 11) >= threshold draw, i.e. uniform >= p, exactly.
template <int D>
void check_mask_bits(int64_t B, int64_t N, int64_t H, double p, uint64_t seed, uint64_t c0) {
  CAPTURE(D, B, N, H, p, seed, c0);
  REQUIRE(N <= D);
  const int64_t C = D * H;
  std::vector<float> qkv(B * N * 3 * C, 0.f), dout(B * N * C, 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        qkv[(b * N + n) * 3 * C + C + h * D + (n * 7) % D] = 1.f;  // keys: anything (q = 0 ignores them)
        qkv[(b * N + n) * 3 * C + 2 * C + h * D + n] = 1.f;        // v_n = e_n
        dout[(b * N + n) * C + h * D + n] = 1.f;                   // dout_n = e_n
      }
  const vit::ops::AttentionDropout drop{p, seed, c0};
  const Result got = run_kernels<D, true>(qkv, dout, B, N, H, drop);
  const vit::Generator g(seed);
  const float ks = static_cast<float>(1.0 / (1.0 - p));
  int64_t kept = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          const bool keep = g.uniform(c0 + static_cast<uint64_t>(((b * H + h) * N + i) * N + j)) >= p;
          kept += keep;
          const float fwd = got.out[(b * N + i) * C + h * D + j] * static_cast<float>(N) / ks;
          const float dv = got.dqkv[(b * N + j) * 3 * C + 2 * C + h * D + i] * static_cast<float>(N) / ks;
          CAPTURE(b, h, i, j, keep, fwd, dv);
          REQUIRE(std::abs(fwd - (keep ? 1.f : 0.f)) < 1e-5f);
          REQUIRE(std::abs(dv - (keep ? 1.f : 0.f)) < 1e-5f);
        }
  // Neither all kept nor all dropped: the comparison above saw both outcomes.
  REQUIRE(kept > 0);
  REQUIRE(kept < B * H * N * N);
}

TEST_CASE("emulated attention kernels draw vit::Generator's dropout mask bit for bit",
          "[cuda-emu][attention][attn_drop]") {
  check_mask_bits<16>(2, 16, 2, 0.2, 5, 0);
  check_mask_bits<32>(1, 31, 3, 0.5, 6, 999);
  check_mask_bits<64>(2, 64, 1, 0.3, 0xdeadbeefcafeull, (1ull << 33) + 7);  // 64 keys: one full tile
  check_mask_bits<64>(1, 3, 2, 0.9, 8, 1);
}

// The kDrop kernels at p = 0 (threshold 0, keep scale 1) must equal the
// kernels without dropout bitwise: one formula, the mask a multiply by 1.
TEST_CASE("emulated attention kernels with a keep-all mask equal the kernels without dropout",
          "[cuda-emu][attention][attn_drop]") {
  const int64_t B = 2, N = 37, H = 2, C = 32 * H;
  const std::vector<float> qkv = random_vector(B * N * 3 * C, 900), dout = random_vector(B * N * C, 901);
  const Result plain = run_kernels<32, false>(qkv, dout, B, N, H);
  const Result keep_all = [&] {
    // drop_args of an inactive dropout is threshold 0, scale 1: every element kept.
    const kn::AttentionDrop da{};
    REQUIRE(da.threshold == 0);
    REQUIRE(da.keep_scale == 1.f);
    return run_kernels<32, true>(qkv, dout, B, N, H);
  }();
  REQUIRE(plain.out == keep_all.out);
  REQUIRE(plain.lse == keep_all.lse);
  REQUIRE(plain.dqkv == keep_all.dqkv);
}
