// The tensor-core attention of cuda/kernels/attention_mma.cuh under the CPU
// stand-in (emu.hpp), whose twins of mma.sync and ldmatrix (cuda/kernels/
// mma.cuh) implement the PTX ISA fragment layouts by exchanging the lanes'
// registers. First the wrappers alone against plain matrix products (and the
// documented ldmatrix layout), then the operand policies MmaOps<bf16|float>,
// then the kernels with the launchers' geometry against the float64 CPU
// reference (tests/support/attention_reference.hpp) on the same (bf16- or
// float-) rounded inputs: ‖got − ref‖₂/‖ref‖₂ < 1e-2 for bf16 storage and
// < 4e-3 for TF32 (float storage), per output (out, lse, and each third of
// dqkv), with NaN/Inf failing; outputs start as NaN so an element never
// written fails. Head dims 16 (bf16), 32, 64, 80, 128; N = 1, 17, 65, 197 (tails of
// every tile size); with and without attention dropout (the same mask rule as
// the CPU op). Small B, H: the emulator runs one OS thread per CUDA thread and
// one warp barrier per emulated mma.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

#include "emu_check.hpp"
#include "kernels/attention_mma.cuh"
#include "support/attention_reference.hpp"

namespace {

namespace kn = vit::cuda::kernels;
using vit::bf16;
using vit::test::random_vector;

// ‖got − ref‖₂ / ‖ref‖₂ < bound, every element finite (NaN never passes).
// `floor` > 0 replaces a smaller ‖ref‖₂ (for outputs whose exact value is 0).
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

std::vector<float> round_bf16(std::vector<float> v) {
  for (float& x : v) x = float(bf16(x));
  return v;
}
// ---------------------------------------------------------------- wrappers

// One warp: lanes build the m16n8k16 fragments of A (16×16) and B (16×8) from
// the documented layout, run the mma on C, write D back through the layout.
void mma_bf16_kernel(const float* a, const float* b, const float* c, float* d) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto A = [&](int r, int k) { return a[r * 16 + k]; };
  auto B = [&](int k, int n) { return b[k * 8 + n]; };
  const uint32_t af[4] = {kn::mma::pack_bf16(A(g, 2 * t), A(g, 2 * t + 1)),
                          kn::mma::pack_bf16(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
                          kn::mma::pack_bf16(A(g, 2 * t + 8), A(g, 2 * t + 9)),
                          kn::mma::pack_bf16(A(g + 8, 2 * t + 8), A(g + 8, 2 * t + 9))};
  const uint32_t bf[2] = {kn::mma::pack_bf16(B(2 * t, g), B(2 * t + 1, g)),
                          kn::mma::pack_bf16(B(2 * t + 8, g), B(2 * t + 9, g))};
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  kn::mma::mma_bf16_16816(acc, af, bf);
  d[g * 8 + 2 * t] = acc[0], d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2], d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

void mma_tf32_kernel(const float* a, const float* b, const float* c, float* d) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto A = [&](int r, int k) { return kn::mma::to_tf32(a[r * 8 + k]); };
  auto B = [&](int k, int n) { return kn::mma::to_tf32(b[k * 8 + n]); };
  const uint32_t af[4] = {A(g, t), A(g + 8, t), A(g, t + 4), A(g + 8, t + 4)};
  const uint32_t bf[2] = {B(t, g), B(t + 4, g)};
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  kn::mma::mma_tf32_1688(acc, af, bf);
  d[g * 8 + 2 * t] = acc[0], d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2], d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// ldmatrix .x4 (trans or not) of four 8×8 matrices stored as a 16×16 tile
// [matrix i at rows 8·(i%2), columns 8·(i/2)], row pitch 24; registers out.
template <bool kTrans>
void ldmatrix_kernel(const bf16* src, uint32_t* regs) {
  alignas(16) __shared__ bf16 tile[16 * 24];
  const int lane = static_cast<int>(threadIdx.x);
  for (int e = lane; e < 16 * 16; e += 32) tile[(e / 16) * 24 + e % 16] = src[e];
  __syncthreads();
  const int i = lane / 8;
  const bf16* row = tile + ((i % 2) * 8 + lane % 8) * 24 + (i / 2) * 8;
  uint32_t r[4];
  if constexpr (kTrans) kn::mma::ldmatrix_x4_trans(r, row);
  else kn::mma::ldmatrix_x4(r, row);
  for (int k = 0; k < 4; ++k) regs[lane * 4 + k] = r[k];
}

TEST_CASE("emulated mma bf16 m16n8k16 is the matrix product", "[cuda_emu][attention][mma]") {
  const std::vector<float> a = round_bf16(random_vector(16 * 16, 11)), b = round_bf16(random_vector(16 * 8, 12)),
                           c = random_vector(16 * 8, 13);
  std::vector<float> d = vit::test::poisoned(16 * 8);
  vit_emu::launch(dim3(1), dim3(32), 0, mma_bf16_kernel, a.data(), b.data(), c.data(), d.data());
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double ref = c[r * 8 + n];
      for (int k = 0; k < 16; ++k) ref += double(a[r * 16 + k]) * b[k * 8 + n];
      CAPTURE(r, n);
      REQUIRE(std::abs(d[r * 8 + n] - ref) <= 1e-5 * (1 + std::abs(ref)));
    }
}

TEST_CASE("emulated mma tf32 m16n8k8 is the matrix product", "[cuda_emu][attention][mma]") {
  const std::vector<float> a = random_vector(16 * 8, 21), b = random_vector(8 * 8, 22), c = random_vector(16 * 8, 23);
  std::vector<float> d = vit::test::poisoned(16 * 8);
  vit_emu::launch(dim3(1), dim3(32), 0, mma_tf32_kernel, a.data(), b.data(), c.data(), d.data());
  auto tf = [](float x) { return vit::detail::bits_float(kn::mma::to_tf32(x)); };
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double ref = c[r * 8 + n], ref_exact = ref;
      for (int k = 0; k < 8; ++k) {
        ref += double(tf(a[r * 8 + k])) * tf(b[k * 8 + n]);
        ref_exact += double(a[r * 8 + k]) * b[k * 8 + n];
      }
      CAPTURE(r, n);
      REQUIRE(std::abs(d[r * 8 + n] - ref) <= 1e-5 * (1 + std::abs(ref)));
      REQUIRE(std::abs(d[r * 8 + n] - ref_exact) <= 5e-3 * (1 + std::abs(ref_exact)));  // tf32 operands
    }
  // to_tf32 rounds to nearest, ties away: 1 + 2^-11 (a tie) -> 1 + 2^-10.
  REQUIRE(tf(1.0f + 0x1.0p-11f) == 1.0f + 0x1.0p-10f);
  REQUIRE(tf(1.0f + 0x1.0p-12f) == 1.0f);
  REQUIRE(std::isnan(tf(NAN)));
}

TEST_CASE("emulated ldmatrix x4 and x4.trans follow the PTX layout", "[cuda_emu][attention][mma]") {
  std::vector<bf16> src(256);
  for (int e = 0; e < 256; ++e) src[e] = bf16(static_cast<float>(e));  // exact in bf16
  for (int trans = 0; trans < 2; ++trans) {
    std::vector<uint32_t> regs(32 * 4, 0xdeadbeefu);
    if (trans) vit_emu::launch(dim3(1), dim3(32), 0, ldmatrix_kernel<true>, src.data(), regs.data());
    else vit_emu::launch(dim3(1), dim3(32), 0, ldmatrix_kernel<false>, src.data(), regs.data());
    for (int lane = 0; lane < 32; ++lane)
      for (int i = 0; i < 4; ++i) {
        const int g = lane / 4, t = lane % 4, r0 = (i % 2) * 8, c0 = (i / 2) * 8;
        // element [row][col] of matrix i
        auto M = [&](int row, int col) { return static_cast<uint32_t>(src[(r0 + row) * 16 + c0 + col].bits); };
        const uint32_t want = trans ? (M(2 * t, g) | (M(2 * t + 1, g) << 16)) : (M(g, 2 * t) | (M(g, 2 * t + 1) << 16));
        CAPTURE(trans, lane, i);
        REQUIRE(regs[lane * 4 + i] == want);
      }
  }
}

// The operand policies on one warp: C1 = A·Bᵀ with A (16×16) and Bt (16×16)
// row-major (A by load_a, B by load_b_nmajor), and C2 = P·V with P = C1 taken
// from its accumulators (a_from_c) and V (16×16) by load_b_kmajor.
template <class T>
void policy_kernel(const T* a, const T* bt, const T* v, float* c1, float* c2) {
  using Ops = kn::attention_mma::MmaOps<T>;
  constexpr int kLd = 16 + Ops::kPad;
  alignas(16) __shared__ T sa[16 * kLd];
  alignas(16) __shared__ T sb[16 * kLd];
  alignas(16) __shared__ T sv[16 * kLd];
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  for (int e = lane; e < 256; e += 32) {
    sa[(e / 16) * kLd + e % 16] = a[e];
    sb[(e / 16) * kLd + e % 16] = bt[e];
    sv[(e / 16) * kLd + e % 16] = v[e];
  }
  __syncthreads();
  typename Ops::A fa;
  typename Ops::B b0, b1;
  Ops::load_a(fa, sa, kLd);
  Ops::load_b_nmajor(b0, b1, sb, kLd);
  float s[2][4] = {};
  Ops::mma(s[0], fa, b0);
  Ops::mma(s[1], fa, b1);
  for (int j = 0; j < 2; ++j)
    for (int e = 0; e < 4; ++e) c1[(g + 8 * (e / 2)) * 16 + 8 * j + 2 * t + (e & 1)] = s[j][e];
  typename Ops::A pa;
  Ops::a_from_c(pa, s[0], s[1]);
  Ops::load_b_kmajor(b0, b1, sv, kLd);
  float o[2][4] = {};
  Ops::mma(o[0], pa, b0);
  Ops::mma(o[1], pa, b1);
  for (int j = 0; j < 2; ++j)
    for (int e = 0; e < 4; ++e) c2[(g + 8 * (e / 2)) * 16 + 8 * j + 2 * t + (e & 1)] = o[j][e];
}

template <class T>
void check_policy(double tol) {
  std::vector<float> a = random_vector(256, 31), bt = random_vector(256, 32), v = random_vector(256, 33);
  std::vector<T> at(256), btt(256), vt(256);
  for (int e = 0; e < 256; ++e) at[e] = T(a[e]), btt[e] = T(bt[e]), vt[e] = T(v[e]);
  std::vector<float> c1 = vit::test::poisoned(256), c2 = vit::test::poisoned(256);
  vit_emu::launch(dim3(1), dim3(32), 0, policy_kernel<T>, at.data(), btt.data(), vt.data(), c1.data(), c2.data());
  std::vector<float> r1(256), r2(256);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      double s = 0;
      for (int k = 0; k < 16; ++k) s += double(float(at[i * 16 + k])) * float(btt[j * 16 + k]);
      r1[i * 16 + j] = static_cast<float>(s);
    }
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      double s = 0;
      for (int k = 0; k < 16; ++k) s += double(r1[i * 16 + k]) * float(vt[k * 16 + j]);
      r2[i * 16 + j] = static_cast<float>(s);
    }
  require_rel_l2(c1, r1, tol, "A·Bt");
  require_rel_l2(c2, r2, tol, "P·V");
}

TEST_CASE("mma operand policies tile Q.K^T and P.V", "[cuda_emu][attention][mma]") {
  SECTION("bf16") { check_policy<bf16>(1e-2); }
  SECTION("tf32") { check_policy<float>(2e-3); }
}

// ---------------------------------------------------------------- kernels

struct MmaResult {
  std::vector<float> out, lse, delta, dqkv;
};

using vit::test::drop_args;

// The launcher sequence of cuda/attention.cu for the mma kernels, storage T.
// `misalign`: qkv and dout start one element past a 16-byte boundary, so the
// kernels stage tiles with scalar loads instead of 16-byte vectors.
template <class T, int D, bool kDrop>
MmaResult run_kernels(const std::vector<float>& qkv_f, const std::vector<float>& dout_f, int64_t B, int64_t N,
                   int64_t H, const vit::ops::AttentionDropout& drop, bool misalign = false,
                   const uint64_t* shift = nullptr) {
  const int64_t C = D * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  kn::AttentionDrop da = drop_args(drop);
  if (shift) da.counter0 -= *shift, da.counter_shift = shift;  // the same counters, through the device shift
  const int n = static_cast<int>(N), c = static_cast<int>(C), h = static_cast<int>(H);
  const size_t off = misalign ? 1 : 0;
  std::vector<T> qkv_buf(qkv_f.size() + off), dout_buf(dout_f.size() + off);
  for (size_t i = 0; i < qkv_f.size(); ++i) qkv_buf[off + i] = T(qkv_f[i]);
  for (size_t i = 0; i < dout_f.size(); ++i) dout_buf[off + i] = T(dout_f[i]);
  const T* qkv_p = qkv_buf.data() + off;
  const T* dout_p = dout_buf.data() + off;
  REQUIRE(kn::attention_mma::aligned16(qkv_p) == !misalign);
  std::vector<T> out(B * N * C, T(NAN)), dqkv(B * N * 3 * C, T(NAN));
  std::vector<float> lse = vit::test::poisoned(B * H * N), delta = vit::test::poisoned(B * H * N);

  const kn::AttentionLaunch gf = kn::attention_mma_forward_launch<T, D>(B, N, H);
  vit_emu::launch(gf.grid, gf.block, gf.smem_bytes, kn::attention_mma_forward_kernel<T, D, kDrop>,
                  qkv_p, out.data(), lse.data(), n, c, h, scale, da);
  const kn::AttentionLaunch gd = kn::attention_mma_delta_launch(B, N, H);
  vit_emu::launch(gd.grid, gd.block, gd.smem_bytes, kn::attention_mma_delta_kernel<T, D>,
                  dout_p, static_cast<const T*>(out.data()), delta.data(), B * N * H, n, h);
  const kn::AttentionLaunch gb = kn::attention_mma_backward_launch<T, D>(B, N, H);
  vit_emu::launch(gb.grid, gb.block, gb.smem_bytes, kn::attention_mma_dkv_kernel<T, D, kDrop>,
                  dout_p, qkv_p,
                  static_cast<const float*>(lse.data()), static_cast<const float*>(delta.data()), dqkv.data(), n, c,
                  h, scale, da);
  vit_emu::launch(gb.grid, gb.block, gb.smem_bytes, kn::attention_mma_dq_kernel<T, D, kDrop>,
                  dout_p, qkv_p,
                  static_cast<const float*>(lse.data()), static_cast<const float*>(delta.data()), dqkv.data(), n, c,
                  h, scale, da);
  MmaResult r;
  r.out.assign(out.begin(), out.end());
  r.dqkv.assign(dqkv.begin(), dqkv.end());
  r.lse = std::move(lse);
  r.delta = std::move(delta);
  return r;
}

// Third `part` (0 q, 1 k, 2 v) of a (B,N,3C) buffer.
std::vector<float> third(const std::vector<float>& v, int64_t C, int part) {
  std::vector<float> r;
  for (size_t row = 0; row < v.size() / (3 * C); ++row)
    r.insert(r.end(), v.begin() + row * 3 * C + part * C, v.begin() + row * 3 * C + (part + 1) * C);
  return r;
}

template <class T, int D, bool kDrop = false>
void check_case(int64_t B, int64_t N, int64_t H, uint64_t seed, double bound,
                const vit::ops::AttentionDropout& drop = {}, bool misalign = false,
                const uint64_t* shift = nullptr) {
  CAPTURE(D, B, N, H, kDrop, drop.p, sizeof(T), misalign, shift != nullptr);
  const int64_t C = D * H;
  std::vector<float> qkv = random_vector(B * N * 3 * C, seed), dout = random_vector(B * N * C, seed + 1);
  if constexpr (vit::is_bf16_v<T>) qkv = round_bf16(qkv), dout = round_bf16(dout);
  const auto ref = vit::test::attention_reference(qkv, dout, B, N, C, H, drop);
  const MmaResult got = run_kernels<T, D, kDrop>(qkv, dout, B, N, H, drop, misalign, shift);
  require_rel_l2(got.out, ref.out, bound, "out");
  require_rel_l2(got.lse, ref.lse, bound, "lse");
  // delta from the kernel's own (rounded) out: checked against the reference's loosely
  require_rel_l2(got.delta, ref.delta, 2 * bound, "delta");
  // N = 1: P = 1, so dQ = dK = 0 exactly, and the kernels' values are the
  // rounding noise of delta = rowsum(dO ∘ O) from the stored (rounded) O
  // against dO·V: measured against the scale of the gradient, ‖dV‖, instead.
  const std::vector<float> ref_dv = third(ref.dqkv, C, 2);
  double dv_norm = 0;
  for (float x : ref_dv) dv_norm += double(x) * x;
  const double floor = N == 1 ? std::sqrt(dv_norm) : 0;
  require_rel_l2(third(got.dqkv, C, 0), third(ref.dqkv, C, 0), bound, "dq", floor);
  require_rel_l2(third(got.dqkv, C, 1), third(ref.dqkv, C, 1), bound, "dk", floor);
  require_rel_l2(third(got.dqkv, C, 2), ref_dv, bound, "dv");
}

constexpr double kBf16Bound = 1e-2;
constexpr double kTf32Bound = 4e-3;

}  // namespace

TEST_CASE("bf16 mma attention matches the float64 reference", "[cuda_emu][attention][bf16]") {
  for (int64_t N : {1, 17, 65, 197}) {
    check_case<bf16, 16>(2, N, 1, 50 + N, kBf16Bound);
    check_case<bf16, 32>(1, N, 2, 100 + N, kBf16Bound);
    check_case<bf16, 64>(1, N, 1, 200 + N, kBf16Bound);
    check_case<bf16, 80>(1, N, 1, 300 + N, kBf16Bound);
    check_case<bf16, 128>(1, N, 1, 400 + N, kBf16Bound);
  }
  check_case<bf16, 64>(2, 17, 2, 500, kBf16Bound);  // several b·h blocks
  check_case<bf16, 80>(1, 65, 2, 510, kBf16Bound, {}, true);  // scalar staging
}

TEST_CASE("bf16 mma attention with dropout matches the float64 reference", "[cuda_emu][attention][bf16]") {
  const vit::ops::AttentionDropout drop{0.25, 777, 12345};
  for (int64_t N : {1, 17, 65, 197}) {
    check_case<bf16, 32, true>(1, N, 1, 600 + N, kBf16Bound, drop);
    check_case<bf16, 64, true>(1, N, 1, 700 + N, kBf16Bound, drop);
  }
  check_case<bf16, 16, true>(1, 65, 2, 790, kBf16Bound, drop);
  check_case<bf16, 80, true>(2, 65, 1, 800, kBf16Bound, drop);
  check_case<bf16, 128, true>(1, 65, 2, 900, kBf16Bound, drop);
  const uint64_t shift = 1000;  // counter_shift (a replayed graph's device value) reaches every kernel
  check_case<bf16, 32, true>(1, 65, 1, 910, kBf16Bound, drop, false, &shift);
}

TEST_CASE("tf32 mma attention matches the float64 reference", "[cuda_emu][attention][tf32]") {
  for (int64_t N : {1, 17, 65, 197}) {
    check_case<float, 32>(1, N, 1, 1000 + N, kTf32Bound);
    check_case<float, 64>(1, N, 1, 1100 + N, kTf32Bound);
  }
  check_case<float, 80>(1, 65, 1, 1200, kTf32Bound);
  check_case<float, 128>(1, 65, 1, 1300, kTf32Bound);
  const vit::ops::AttentionDropout drop{0.25, 777, 12345};
  check_case<float, 64, true>(2, 65, 1, 1400, kTf32Bound, drop);
  check_case<float, 128, true>(1, 17, 1, 1500, kTf32Bound, drop);
  check_case<float, 32>(2, 65, 1, 1600, kTf32Bound, {}, true);  // scalar staging
}
