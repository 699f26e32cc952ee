// The LayerNorm, GELU, softmax and cross-entropy kernels run under the CPU
// stand-in (emu.hpp) with the launchers' own geometry and kernel choice, on
// fresh random inputs with NaN-poisoned outputs, against the CPU ops computed
// in double. Sizes cover a partial warp (C = 1, 7), float4 rows (32, 192, 200),
// the long-row fallback (1100), several rows per warp and several partial rows,
// so the fixed-order second reduction is checked too. Kept small: the
// emulator starts one std::thread per CUDA thread.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "emu_check.hpp"
#include "kernels/cross_entropy.cuh"
#include "kernels/gelu.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::test::poisoned;
using vit::test::random_affine;
using vit::test::random_vector;
using vit::test::require_close;
using vit::test::to_double;
using vit::test::to_float;

constexpr double kAtol = 1e-5, kRtol = 1e-4;

using vit::test::all_aligned16;

const int64_t kRows[] = {1, 3, 33};
const int64_t kCols[] = {1, 7, 32, 192, 200};

// ---- LayerNorm -----------------------------------------------------------------------

void check_layer_norm_forward(int64_t R, int64_t C, bool in_place, uint64_t seed) {
  INFO("R " << R << ", C " << C << ", in place " << in_place);
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<float> x = random_affine(n, seed, 2.f, 0.5f);
  const std::vector<float> w = random_affine(C, seed + 2, 0.5f, 1.f),
                           b = random_vector(C, seed + 3);
  std::vector<float> out = in_place ? x : poisoned(n), mean = poisoned(R), rstd = poisoned(R);
  const float eps = 1e-5f;
  const float* xp = in_place ? out.data() : x.data();
  const auto l =
      k::layer_norm_forward_geometry(R, C, all_aligned16(xp, w.data(), b.data(), out.data()));
  vit_emu::launch(l.grid, l.block, l.smem, l.kernel, xp, w.data(), b.data(), out.data(),
                  mean.data(), rstd.data(), R, C, eps);

  std::vector<double> out_ref(n), mean_ref(R), rstd_ref(R);
  const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b);
  vit::ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), out_ref.data(),
                                       mean_ref.data(), rstd_ref.data(), R, C, eps);
  require_close(out, to_float(out_ref), kAtol, kRtol, "layer_norm out");
  require_close(mean, to_float(mean_ref), kAtol, kRtol, "layer_norm mean");
  require_close(rstd, to_float(rstd_ref), kAtol, kRtol, "layer_norm rstd");
}

enum class LnGrads { All, NoDx, OnlyDx };

void check_layer_norm_backward(int64_t R, int64_t C, LnGrads grads, uint64_t seed) {
  INFO("R " << R << ", C " << C << ", grads " << static_cast<int>(grads));
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<float> x = random_affine(n, seed, 2.f, 0.5f), dout = random_vector(n, seed + 1);
  const std::vector<float> w = random_affine(C, seed + 2, 0.5f, 1.f),
                           b = random_vector(C, seed + 3);
  // mean/rstd as the forward saved them (from the double reference, rounded).
  std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), tmp(n), mean_d(R),
                      rstd_d(R);
  vit::ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), tmp.data(), mean_d.data(),
                                       rstd_d.data(), R, C, 1e-5);
  const std::vector<float> mean = to_float(mean_d), rstd = to_float(rstd_d);
  const std::vector<float> dw_init = random_vector(C, seed + 4),
                           db_init = random_vector(C, seed + 5);

  const bool want_dx = grads != LnGrads::NoDx, want_params = grads != LnGrads::OnlyDx;
  std::vector<float> dx = poisoned(n), dw = dw_init, db = db_init;
  const auto l = k::layer_norm_backward_geometry(
      R, C, all_aligned16(dout.data(), x.data(), w.data(), dx.data()));
  std::vector<float> partials = poisoned(static_cast<size_t>(l.partial_rows * 2 * C));
  vit_emu::launch(l.grid, l.block, want_params ? l.smem : 0, l.kernel, dout.data(), x.data(),
                  w.data(), mean.data(), rstd.data(), want_dx ? dx.data() : nullptr,
                  want_params ? partials.data() : nullptr, R, C, l.rows_per_block);
  if (want_params) {
    const auto s = k::column_partials_geometry(2 * C);
    vit_emu::launch(s.grid, s.block, s.smem, s.kernel, static_cast<const float*>(partials.data()),
                    l.partial_rows, 2 * C, dw.data(), db.data(), C);
  }

  std::vector<double> dx_ref(n), dw_ref = to_double(dw_init), db_ref = to_double(db_init);
  const std::vector<double> doutd = to_double(dout), mean_r = to_double(mean),
                            rstd_r = to_double(rstd);
  vit::ops::layer_norm_backward<double>(doutd.data(), xd.data(), wd.data(), mean_r.data(),
                                        rstd_r.data(), dx_ref.data(), dw_ref.data(), db_ref.data(),
                                        R, C);
  if (want_dx)
    require_close(dx, to_float(dx_ref), kAtol, kRtol, "layer_norm dx");
  else
    CHECK(std::isnan(dx[0]));  // dx == nullptr: nothing written
  if (want_params) {
    require_close(dw, to_float(dw_ref), kAtol, kRtol, "layer_norm dweight");
    require_close(db, to_float(db_ref), kAtol, kRtol, "layer_norm dbias");
  } else {
    require_close(dw, dw_init, 0, 0, "layer_norm dweight untouched");
  }
}

// ---- GELU -------------------------------------------------------------------------------

/// The launchers' geometry and kernels for n elements; out/dx poisoned; offset 1
/// moves every pointer off 16-byte alignment (the scalar path).
void check_gelu(int64_t n, bool tanh_approx, size_t offset, uint64_t seed,
                int64_t max_blocks = k::kElementwiseMaxBlocks) {
  INFO("n " << n << ", tanh " << tanh_approx << ", offset " << offset << ", max blocks "
            << max_blocks);
  const size_t total = static_cast<size_t>(n) + offset;
  const std::vector<float> x = random_affine(total, seed, 2.5f, 0.f),
                           dout = random_vector(total, seed + 1);
  const vit::GeluApprox approx = tanh_approx ? vit::GeluApprox::Tanh : vit::GeluApprox::None;
  const std::vector<double> xd(x.begin() + offset, x.end()), gd(dout.begin() + offset, dout.end());
  std::vector<double> out_ref(n), dx_ref(n);
  vit::ops::gelu_forward<double>(xd.data(), out_ref.data(), n, approx);
  vit::ops::gelu_backward<double>(gd.data(), xd.data(), dx_ref.data(), n, approx);

  std::vector<float> out = poisoned(total), dx = poisoned(total);
  const auto g = k::elementwise_launch(n, max_blocks);
  if (tanh_approx) {
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<k::GeluForwardOp<true>>,
                    x.data() + offset, out.data() + offset, n, k::GeluForwardOp<true>{});
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<k::GeluBackwardOp<true>>,
                    dout.data() + offset, x.data() + offset, dx.data() + offset, n,
                    k::GeluBackwardOp<true>{});
  } else {
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<k::GeluForwardOp<false>>,
                    x.data() + offset, out.data() + offset, n, k::GeluForwardOp<false>{});
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<k::GeluBackwardOp<false>>,
                    dout.data() + offset, x.data() + offset, dx.data() + offset, n,
                    k::GeluBackwardOp<false>{});
  }
  require_close(std::vector<float>(out.begin() + offset, out.end()), to_float(out_ref), kAtol,
                kRtol, "gelu out");
  require_close(std::vector<float>(dx.begin() + offset, dx.end()), to_float(dx_ref), kAtol, kRtol,
                "gelu dx");
  for (size_t i = 0; i < offset; ++i) CHECK(std::isnan(out[i]));  // nothing before the start
}

// ---- softmax ----------------------------------------------------------------------------

void check_softmax(int64_t R, int64_t n, uint64_t seed) {
  INFO("R " << R << ", n " << n);
  const size_t total = static_cast<size_t>(R * n);
  const std::vector<float> x = random_affine(total, seed, 3.f, 1.f),
                           dy = random_vector(total, seed + 1);
  const std::vector<double> xd = to_double(x);
  std::vector<double> y_ref(total), dx_ref(total);
  vit::ops::softmax_forward<double>(xd.data(), y_ref.data(), R, n);
  const std::vector<float> y =
      to_float(y_ref);  // the saved forward output, as backward receives it
  const std::vector<double> yd = to_double(y), dyd = to_double(dy);
  vit::ops::softmax_backward<double>(yd.data(), dyd.data(), dx_ref.data(), R, n);

  std::vector<float> out = poisoned(total), dx = poisoned(total);
  const auto f = k::softmax_forward_geometry(R, n, all_aligned16(x.data(), out.data()));
  vit_emu::launch(f.grid, f.block, f.smem, f.kernel, x.data(), out.data(), R, n);
  require_close(out, y, kAtol, kRtol, "softmax out");
  const auto b = k::softmax_backward_geometry(R, n, all_aligned16(y.data(), dy.data(), dx.data()));
  vit_emu::launch(b.grid, b.block, b.smem, b.kernel, y.data(), dy.data(), dx.data(), R, n);
  require_close(dx, to_float(dx_ref), kAtol, kRtol, "softmax dx");
}

// ---- cross-entropy ----------------------------------------------------------------------

enum class Target { Labels, Soft };

void check_cross_entropy(int64_t B, int64_t K, Target kind, float smoothing, uint64_t seed) {
  INFO("B " << B << ", K " << K << ", soft " << (kind == Target::Soft) << ", smoothing "
            << smoothing);
  const size_t n = static_cast<size_t>(B * K);
  const std::vector<float> logits = random_affine(n, seed, 2.f, 0.3f);
  std::vector<int32_t> labels(B);
  for (int64_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>((b * 7 + seed) % K);
  // q as the CPU ops build it: ε/K rounded to float, (1 − ε) added in float; or soft rows.
  std::vector<float> q(n);
  if (kind == Target::Labels) {
    for (size_t i = 0; i < n; ++i) q[i] = static_cast<float>(static_cast<double>(smoothing) / K);
    for (int64_t b = 0; b < B; ++b) q[b * K + labels[b]] += static_cast<float>(1.0 - smoothing);
  } else {
    const std::vector<float> r = random_vector(n, seed + 1);
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t c = 0; c < K; ++c) s += std::exp(r[b * K + c]);
      for (int64_t c = 0; c < K; ++c) q[b * K + c] = static_cast<float>(std::exp(r[b * K + c]) / s);
    }
  }
  const int32_t* lp = kind == Target::Labels ? labels.data() : nullptr;
  const float* tp = kind == Target::Soft ? q.data() : nullptr;
  const float smooth_off =
      kind == Target::Labels ? static_cast<float>(static_cast<double>(smoothing) / K) : 0.f;
  const float smooth_on = kind == Target::Labels ? static_cast<float>(1.0 - smoothing) : 1.f;

  const std::vector<double> zd = to_double(logits), qd = to_double(q);
  std::vector<double> probs_ref(n);
  const double loss_ref =
      vit::ops::cross_entropy_forward<double>(zd.data(), qd.data(), probs_ref.data(), B, K);

  std::vector<float> probs = poisoned(n), row_loss = poisoned(B), loss = poisoned(1);
  const auto f = k::cross_entropy_forward_geometry(B, K);
  vit_emu::launch(f.rows_grid, f.rows_block, 0, f.rows_kernel, logits.data(), lp, tp, smooth_off,
                  smooth_on, probs.data(), row_loss.data(), B, K);
  vit_emu::launch(f.mean_grid, f.mean_block, 0, f.mean_kernel,
                  static_cast<const float*>(row_loss.data()), loss.data(), B);
  require_close(probs, to_float(probs_ref), kAtol, kRtol, "cross_entropy probs");
  require_close(loss, {static_cast<float>(loss_ref)}, kAtol, kRtol, "cross_entropy loss");

  const std::vector<float> dloss = {0.37f};  // the upstream gradient is not always 1
  const std::vector<float> p = to_float(probs_ref);
  std::vector<float> dlogits = poisoned(n);
  const auto g = k::cross_entropy_backward_geometry(B, K);
  vit_emu::launch(g.grid, g.block, 0, g.kernel, dloss.data(), p.data(), lp, tp, smooth_off,
                  smooth_on, dlogits.data(), B, K);
  const std::vector<double> pd = to_double(p);
  std::vector<double> dlogits_ref(n);
  vit::ops::cross_entropy_backward<double>(dloss[0], pd.data(), qd.data(), dlogits_ref.data(), B,
                                           K);
  require_close(dlogits, to_float(dlogits_ref), kAtol, kRtol, "cross_entropy dlogits");
}

}  // namespace

TEST_CASE("emulated layer_norm forward matches the CPU op, in place or not",
          "[cuda-emu][layernorm]") {
  uint64_t seed = 100;
  for (int64_t R : kRows)
    for (int64_t C : kCols)
      for (bool in_place : {false, true}) check_layer_norm_forward(R, C, in_place, seed += 10);
  // rows longer than kMaxRegisterRow: the block-per-row kernel
  for (int64_t R : {1, 3})
    for (bool in_place : {false, true}) check_layer_norm_forward(R, 1100, in_place, seed += 10);
}

TEST_CASE("emulated layer_norm backward matches the CPU op, partial sums included",
          "[cuda-emu][layernorm]") {
  uint64_t seed = 200;
  for (int64_t R : kRows)
    for (int64_t C : kCols) check_layer_norm_backward(R, C, LnGrads::All, seed += 10);
  check_layer_norm_backward(33, 200, LnGrads::NoDx, seed += 10);
  check_layer_norm_backward(33, 7, LnGrads::OnlyDx, seed += 10);
  check_layer_norm_backward(3, 1100, LnGrads::All, seed += 10);
  check_layer_norm_backward(2, 1100, LnGrads::NoDx, seed += 10);
}

TEST_CASE("emulated gelu forward and backward match the CPU gelu, both forms", "[cuda-emu][gelu]") {
  uint64_t seed = 300;
  for (int64_t n : {1, 3, 4, 7, 32, 1027, 6600})  // tails of 1..3 after the float4 part
    for (bool tanh_approx : {false, true})
      for (size_t offset : {0, 1}) check_gelu(n, tanh_approx, offset, seed += 10);
  // A one-block grid: every thread takes the grid-stride path large tensors take.
  for (bool tanh_approx : {false, true}) check_gelu(7401, tanh_approx, 0, seed += 10, 1);
}

TEST_CASE("emulated softmax forward and backward match the CPU op", "[cuda-emu][softmax]") {
  uint64_t seed = 400;
  for (int64_t R : kRows)
    for (int64_t n : {1, 5, 197, 64}) check_softmax(R, n, seed += 10);
  check_softmax(2, 1100, seed += 10);  // block-per-row kernels
}

TEST_CASE("emulated cross_entropy matches the CPU op with labels, smoothing and soft targets",
          "[cuda-emu][cross_entropy]") {
  uint64_t seed = 500;
  for (int64_t B : {1, 5, 33})
    for (int64_t K : {1, 10, 37}) {
      check_cross_entropy(B, K, Target::Labels, 0.f, seed += 10);
      check_cross_entropy(B, K, Target::Labels, 0.1f, seed += 10);
      check_cross_entropy(B, K, Target::Soft, 0.f, seed += 10);
    }
  check_cross_entropy(3, 1000, Target::Labels, 0.1f, seed += 10);  // strided rows, 256 threads
}

TEST_CASE("emulated cross_entropy turns an out-of-range label into a NaN loss",
          "[cuda-emu][cross_entropy]") {
  const int64_t B = 2, K = 5;
  const std::vector<float> logits = random_vector(B * K, 7);
  const std::vector<int32_t> labels = {1, static_cast<int32_t>(K)};
  std::vector<float> probs = poisoned(B * K), row_loss = poisoned(B), loss = poisoned(1);
  const auto f = k::cross_entropy_forward_geometry(B, K);
  vit_emu::launch(f.rows_grid, f.rows_block, 0, f.rows_kernel, logits.data(), labels.data(),
                  static_cast<const float*>(nullptr), 0.f, 1.f, probs.data(), row_loss.data(), B,
                  K);
  vit_emu::launch(f.mean_grid, f.mean_block, 0, f.mean_kernel,
                  static_cast<const float*>(row_loss.data()), loss.data(), B);
  CHECK(std::isfinite(row_loss[0]));
  CHECK(std::isnan(row_loss[1]));
  CHECK(std::isnan(loss[0]));
}

TEST_CASE("emulated row kernels loop correctly over a small grid",
          "[cuda-emu][layernorm][softmax][cross_entropy]") {
  // The launchers' grids cover the data at these sizes; a grid of one or two
  // blocks makes every thread take the grid-stride path that large tensors
  // take on the GPU (GELU's one-block grid is in its own test case).
  const int64_t R = 37, C = 200;
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<float> x = random_affine(n, 900, 2.f, 0.5f), w = random_vector(C, 901),
                           b = random_vector(C, 902);
  const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b);

  std::vector<float> out = poisoned(n), mean = poisoned(R), rstd = poisoned(R);
  auto ln = k::layer_norm_forward_geometry(R, C, true);
  vit_emu::launch(dim3(2), ln.block, ln.smem, ln.kernel, x.data(), w.data(), b.data(), out.data(),
                  mean.data(), rstd.data(), R, C, 1e-6f);
  std::vector<double> out_ref(n), mean_ref(R), rstd_ref(R);
  vit::ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), out_ref.data(),
                                       mean_ref.data(), rstd_ref.data(), R, C, 1e-6);
  require_close(out, to_float(out_ref), kAtol, kRtol, "layer_norm out, grid 2");

  std::vector<float> y = poisoned(n);
  auto sm = k::softmax_forward_geometry(R, C, true);
  vit_emu::launch(dim3(1), sm.block, sm.smem, sm.kernel, x.data(), y.data(), R, C);
  std::vector<double> y_ref(n);
  vit::ops::softmax_forward<double>(xd.data(), y_ref.data(), R, C);
  require_close(y, to_float(y_ref), kAtol, kRtol, "softmax out, grid 1");

  // cross-entropy: two blocks take turns over the rows; backward with one block.
  const int64_t B = R, K = C;
  std::vector<int32_t> labels(B);
  for (int64_t r = 0; r < B; ++r) labels[r] = static_cast<int32_t>((r * 13) % K);
  std::vector<float> probs = poisoned(n), row_loss = poisoned(B), loss = poisoned(1),
                     dlogits = poisoned(n);
  auto ce = k::cross_entropy_forward_geometry(B, K);
  vit_emu::launch(dim3(2), ce.rows_block, 0, ce.rows_kernel, x.data(), labels.data(),
                  static_cast<const float*>(nullptr), 0.f, 1.f, probs.data(), row_loss.data(), B,
                  K);
  vit_emu::launch(ce.mean_grid, ce.mean_block, 0, ce.mean_kernel,
                  static_cast<const float*>(row_loss.data()), loss.data(), B);
  std::vector<double> q(n, 0.0), probs_ref(n), dlogits_ref(n);
  for (int64_t r = 0; r < B; ++r) q[r * K + labels[r]] = 1.0;
  const double loss_ref =
      vit::ops::cross_entropy_forward<double>(xd.data(), q.data(), probs_ref.data(), B, K);
  require_close(probs, to_float(probs_ref), kAtol, kRtol, "cross_entropy probs, grid 2");
  require_close(loss, {static_cast<float>(loss_ref)}, kAtol, kRtol, "cross_entropy loss, grid 2");
  const std::vector<float> dloss = {2.5f};
  auto cb = k::cross_entropy_backward_geometry(B, K);
  vit_emu::launch(dim3(1), cb.block, 0, cb.kernel, dloss.data(), probs.data(), labels.data(),
                  static_cast<const float*>(nullptr), 0.f, 1.f, dlogits.data(), B, K);
  const std::vector<double> pd = to_double(probs);
  vit::ops::cross_entropy_backward<double>(2.5, pd.data(), q.data(), dlogits_ref.data(), B, K);
  require_close(dlogits, to_float(dlogits_ref), kAtol, kRtol, "cross_entropy dlogits, grid 1");
}
