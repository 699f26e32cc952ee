// The LayerNorm, softmax and cross-entropy kernels on bf16 storage (and, with
// the same checks, float) under the CPU stand-in (emu.hpp), with the
// launchers' geometry and kernel choice, against float64 references computed
// from the same bf16-valued inputs: ‖out − ref‖₂/‖ref‖₂ < 1e-2 for bf16
// (1e-5 for float), NaN and Inf never passing, every output poisoned with NaN
// before the launch. Shapes cover the 16-byte path (8 bf16: C = 8, 64, 192,
// 384), tails and scalar rows (1, 7, 65, 197, 200), pointers one element off
// 16-byte alignment, the long-row kernels (1100), warps that own several rows
// (softmax's rows per warp, LayerNorm backward's prefetched next row), grids
// smaller than the data (grid-stride loops) and the fixed-order column sums
// accumulating into non-zero bf16 gradients.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "emu_check.hpp"
#include "kernels/cross_entropy.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::bf16;
using vit::test::random_affine;
using vit::test::random_vector;

template <class T>
constexpr double kBar = std::is_same_v<T, bf16> ? 1e-2 : 1e-5;

using vit::test::require_relative_l2;

/// Storage vectors: values rounded to T, NaN poison, widening for references.
template <class T>
std::vector<T> stored(const std::vector<float>& v) {
  std::vector<T> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = T(v[i]);
  return r;
}
template <class T>
std::vector<T> stored_d(const std::vector<double>& v) {
  std::vector<T> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = T(static_cast<float>(v[i]));
  return r;
}
template <class T>
std::vector<T> poison(size_t n) {
  return std::vector<T>(n, T(std::numeric_limits<float>::quiet_NaN()));
}
template <class T>
std::vector<double> wide(const std::vector<T>& v, size_t from = 0) {
  std::vector<double> r(v.size() - from);
  for (size_t i = from; i < v.size(); ++i) r[i - from] = static_cast<float>(v[i]);
  return r;
}
bool is_nan_value(float v) { return std::isnan(v); }


template <class T>
const char* type_name() {
  return std::is_same_v<T, bf16> ? "bf16" : "float";
}

// ---- LayerNorm ------------------------------------------------------------------------

/// offset: every pointer starts that many elements into its buffer (1: off 16-byte
/// alignment, the scalar path). grid_override > 0: a grid smaller than the data.
template <class T>
void check_layer_norm_forward(int64_t R, int64_t C, size_t offset, bool in_place, uint64_t seed,
                              unsigned grid_override = 0) {
  INFO(type_name<T>() << " layer_norm forward R " << R << ", C " << C << ", offset " << offset
                      << ", in place " << in_place << ", grid " << grid_override);
  const size_t n = static_cast<size_t>(R * C);
  std::vector<T> x = stored<T>(random_affine(n + offset, seed, 2.f, 0.5f));
  const std::vector<T> w = stored<T>(random_affine(C + offset, seed + 2, 0.5f, 1.f)),
                       b = stored<T>(random_vector(C + offset, seed + 3));
  const std::vector<double> xd = wide(x, offset), wd = wide(w, offset), bd = wide(b, offset);
  std::vector<T> out = in_place ? x : poison<T>(n + offset);
  std::vector<float> mean = vit::test::poisoned(R), rstd = vit::test::poisoned(R);
  const float eps = 1e-5f;
  const T* xp = (in_place ? out.data() : x.data()) + offset;
  T* op = out.data() + offset;
  auto l = k::layer_norm_forward_geometry<T>(
      R, C, vit::test::all_aligned16(xp, w.data() + offset, b.data() + offset, op));
  if (grid_override) l.grid = dim3(grid_override);
  vit_emu::launch(l.grid, l.block, l.smem, l.kernel, xp, w.data() + offset, b.data() + offset, op,
                  mean.data(), rstd.data(), R, C, eps);

  std::vector<double> out_ref(n), mean_ref(R), rstd_ref(R);
  vit::ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), out_ref.data(),
                                       mean_ref.data(), rstd_ref.data(), R, C, eps);
  require_relative_l2(wide(out, offset), out_ref, "out", kBar<T>);
  require_relative_l2({mean.begin(), mean.end()}, mean_ref, "mean (float)", 1e-5);
  require_relative_l2({rstd.begin(), rstd.end()}, rstd_ref, "rstd (float)", 1e-5);
  if (!in_place)
    for (size_t i = 0; i < offset; ++i) CHECK(is_nan_value(static_cast<float>(out[i])));
}

enum class Bf16LnGrads { All, NoDx, OnlyDx, OnlyWeight };

/// rows_per_block > 0 replaces the geometry's (so warps own several rows and prefetch).
template <class T>
void check_layer_norm_backward(int64_t R, int64_t C, Bf16LnGrads grads, size_t offset, uint64_t seed,
                               int64_t rows_per_block = 0) {
  INFO(type_name<T>() << " layer_norm backward R " << R << ", C " << C << ", grads "
                      << static_cast<int>(grads) << ", offset " << offset << ", rows per block "
                      << rows_per_block);
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<T> x = stored<T>(random_affine(n + offset, seed, 2.f, 0.5f)),
                       dout = stored<T>(random_vector(n + offset, seed + 1)),
                       w = stored<T>(random_affine(C + offset, seed + 2, 0.5f, 1.f)),
                       b = stored<T>(random_vector(C + offset, seed + 3));
  const std::vector<double> xd = wide(x, offset), gd = wide(dout, offset), wd = wide(w, offset),
                            bd = wide(b, offset);
  std::vector<double> tmp(n), mean_d(R), rstd_d(R);
  vit::ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), tmp.data(), mean_d.data(),
                                       rstd_d.data(), R, C, 1e-5);
  // mean/rstd as the forward saves them: float.
  const std::vector<float> mean(mean_d.begin(), mean_d.end()), rstd(rstd_d.begin(), rstd_d.end());
  const std::vector<T> dw_init = stored<T>(random_vector(C, seed + 4)),
                       db_init = stored<T>(random_vector(C, seed + 5));

  const bool want_dx = grads == Bf16LnGrads::All || grads == Bf16LnGrads::OnlyDx;
  const bool want_dw = grads != Bf16LnGrads::OnlyDx, want_db = grads == Bf16LnGrads::All ||
                                                           grads == Bf16LnGrads::NoDx;
  const bool want_params = want_dw || want_db;
  std::vector<T> dx = poison<T>(n + offset), dw = dw_init, db = db_init;
  T* dxp = dx.data() + offset;
  auto l = k::layer_norm_backward_geometry<T>(
      R, C, vit::test::all_aligned16(dout.data() + offset, x.data() + offset, w.data() + offset, dxp));
  if (rows_per_block > 0) {
    l.rows_per_block = rows_per_block;
    l.partial_rows = (R + rows_per_block - 1) / rows_per_block;
    l.grid = dim3(static_cast<unsigned>(l.partial_rows));
  }
  std::vector<float> partials = vit::test::poisoned(static_cast<size_t>(l.partial_rows * 2 * C));
  vit_emu::launch(l.grid, l.block, want_params ? l.smem : 0, l.kernel, dout.data() + offset,
                  x.data() + offset, w.data() + offset, static_cast<const float*>(mean.data()),
                  static_cast<const float*>(rstd.data()), want_dx ? dxp : nullptr,
                  want_params ? partials.data() : nullptr, R, C, l.rows_per_block);
  if (want_params) {
    const auto s = k::column_partials_geometry<T>(2 * C);
    vit_emu::launch(s.grid, s.block, s.smem, s.kernel, static_cast<const float*>(partials.data()),
                    l.partial_rows, 2 * C, want_dw ? dw.data() : nullptr,
                    want_db ? db.data() : nullptr, C);
  }

  std::vector<double> dx_ref(n), dw_ref = wide(dw_init), db_ref = wide(db_init);
  const std::vector<double> mean_r(mean.begin(), mean.end()), rstd_r(rstd.begin(), rstd.end());
  vit::ops::layer_norm_backward<double>(gd.data(), xd.data(), wd.data(), mean_r.data(),
                                        rstd_r.data(), dx_ref.data(), dw_ref.data(), db_ref.data(),
                                        R, C);
  if (want_dx)
    require_relative_l2(wide(dx, offset), dx_ref, "dx", kBar<T>);
  else
    CHECK(is_nan_value(static_cast<float>(dx[offset])));  // dx == nullptr: nothing written
  if (want_dw)
    require_relative_l2(wide(dw), dw_ref, "dweight (accumulated)", kBar<T>);
  else
    CHECK(wide(dw) == wide(dw_init));  // dweight == nullptr: untouched
  if (want_db)
    require_relative_l2(wide(db), db_ref, "dbias (accumulated)", kBar<T>);
  else
    CHECK(wide(db) == wide(db_init));
  for (size_t i = 0; i < offset; ++i) CHECK(is_nan_value(static_cast<float>(dx[i])));
}

// ---- softmax ----------------------------------------------------------------------------

template <class T>
void check_softmax(int64_t R, int64_t n, size_t offset, bool in_place, uint64_t seed,
                   unsigned grid_override = 0) {
  INFO(type_name<T>() << " softmax R " << R << ", n " << n << ", offset " << offset
                      << ", in place " << in_place << ", grid " << grid_override);
  const size_t total = static_cast<size_t>(R * n);
  const std::vector<T> x = stored<T>(random_affine(total + offset, seed, 3.f, 1.f)),
                       dy = stored<T>(random_vector(total + offset, seed + 1));
  const std::vector<double> xd = wide(x, offset);
  std::vector<double> y_ref(total), dx_ref(total);
  vit::ops::softmax_forward<double>(xd.data(), y_ref.data(), R, n);

  std::vector<T> out = in_place ? x : poison<T>(total + offset);
  const T* xp = (in_place ? out.data() : x.data()) + offset;
  auto f = k::softmax_forward_geometry<T>(R, n, vit::test::all_aligned16(xp, out.data() + offset));
  if (grid_override) f.grid = dim3(grid_override);
  vit_emu::launch(f.grid, f.block, f.smem, f.kernel, xp, out.data() + offset, R, n);
  require_relative_l2(wide(out, offset), y_ref, "y", kBar<T>);

  // Backward from the saved output as the forward stores it (y rounded to T).
  std::vector<T> y(offset, T(0.f));
  const std::vector<T> yr = stored_d<T>(y_ref);
  y.insert(y.end(), yr.begin(), yr.end());
  const std::vector<double> yd = wide(y, offset), dyd = wide(dy, offset);
  vit::ops::softmax_backward<double>(yd.data(), dyd.data(), dx_ref.data(), R, n);
  std::vector<T> dx = in_place ? dy : poison<T>(total + offset);  // in place: dx aliases dy
  const T* dyp = (in_place ? dx.data() : dy.data()) + offset;
  auto g = k::softmax_backward_geometry<T>(
      R, n, vit::test::all_aligned16(y.data() + offset, dyp, dx.data() + offset));
  if (grid_override) g.grid = dim3(grid_override);
  vit_emu::launch(g.grid, g.block, g.smem, g.kernel, static_cast<const T*>(y.data() + offset), dyp,
                  dx.data() + offset, R, n);
  require_relative_l2(wide(dx, offset), dx_ref, "dx", kBar<T>);
}

// ---- cross-entropy ----------------------------------------------------------------------

enum class Bf16Target { Labels, Soft };

template <class T>
void check_cross_entropy(int64_t B, int64_t K, Bf16Target kind, double eps, uint64_t seed,
                         unsigned grid_override = 0) {
  INFO(type_name<T>() << " cross_entropy B " << B << ", K " << K << ", soft "
                      << (kind == Bf16Target::Soft) << ", smoothing " << eps << ", grid "
                      << grid_override);
  const size_t n = static_cast<size_t>(B * K);
  const std::vector<T> logits = stored<T>(random_affine(n, seed, 2.f, 0.3f));
  std::vector<int32_t> labels(B);
  for (int64_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>((b * 7 + seed) % K);
  std::vector<double> q(n, kind == Bf16Target::Soft ? 0.0 : eps / K);
  std::vector<T> soft;
  if (kind == Bf16Target::Soft) {
    const std::vector<float> r = random_vector(n, seed + 1);
    std::vector<float> p(n);
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t c = 0; c < K; ++c) s += std::exp(r[b * K + c]);
      for (int64_t c = 0; c < K; ++c) p[b * K + c] = static_cast<float>(std::exp(r[b * K + c]) / s);
    }
    soft = stored<T>(p);
    q = wide(soft);
  } else {
    for (int64_t b = 0; b < B; ++b) q[b * K + labels[b]] += 1.0 - eps;
  }
  const int32_t* lp = kind == Bf16Target::Labels ? labels.data() : nullptr;
  const T* tp = kind == Bf16Target::Soft ? soft.data() : nullptr;
  const k::SmoothingValues s = lp ? k::label_smoothing_values(eps, K) : k::SmoothingValues{};

  const std::vector<double> zd = wide(logits);
  std::vector<double> probs_ref(n);
  const double loss_ref =
      vit::ops::cross_entropy_forward<double>(zd.data(), q.data(), probs_ref.data(), B, K);

  std::vector<T> probs = poison<T>(n), loss = poison<T>(1);
  std::vector<float> row_loss = vit::test::poisoned(B);
  auto f = k::cross_entropy_forward_geometry<T>(B, K);
  if (grid_override) f.rows_grid = dim3(grid_override);
  vit_emu::launch(f.rows_grid, f.rows_block, 0, f.rows_kernel, logits.data(), lp, tp, s.off, s.on,
                  probs.data(), row_loss.data(), B, K);
  vit_emu::launch(f.mean_grid, f.mean_block, 0, f.mean_kernel,
                  static_cast<const float*>(row_loss.data()), loss.data(), B);
  require_relative_l2(wide(probs), probs_ref, "probs", kBar<T>);
  require_relative_l2(wide(loss), {loss_ref}, "loss", kBar<T>);

  // Backward from the probs the forward saved (rounded to T) and dloss in T.
  const std::vector<T> dloss = {T(0.37f)};
  const std::vector<T> p = stored_d<T>(probs_ref);
  std::vector<T> dlogits = poison<T>(n);
  auto g = k::cross_entropy_backward_geometry<T>(B, K);
  if (grid_override) g.grid = dim3(grid_override);
  vit_emu::launch(g.grid, g.block, 0, g.kernel, dloss.data(), p.data(), lp, tp, s.off, s.on,
                  dlogits.data(), B, K);
  const std::vector<double> pd = wide(p);
  std::vector<double> dlogits_ref(n);
  vit::ops::cross_entropy_backward<double>(static_cast<float>(dloss[0]), pd.data(), q.data(),
                                           dlogits_ref.data(), B, K);
  require_relative_l2(wide(dlogits), dlogits_ref, "dlogits", kBar<T>);
}

const int64_t kBf16Rows[] = {1, 3, 33};
const int64_t kBf16Cols[] = {1, 7, 8, 64, 65, 192, 197, 200};

}  // namespace

TEMPLATE_TEST_CASE("emulated layer_norm forward in bf16 and float matches float64",
                   "[cuda-emu][layernorm][bf16]", bf16, float) {
  uint64_t seed = 1000;
  for (int64_t R : kBf16Rows)
    for (int64_t C : kBf16Cols)
      for (size_t offset : {0, 1})
        check_layer_norm_forward<TestType>(R, C, offset, false, seed += 10);
  check_layer_norm_forward<TestType>(5, 384, 0, true, seed += 10);  // 16-byte path, in place
  check_layer_norm_forward<TestType>(5, 65, 0, true, seed += 10);   // scalar path, in place
  for (size_t offset : {0, 1}) check_layer_norm_forward<TestType>(3, 1100, offset, false, seed += 10);
  check_layer_norm_forward<TestType>(2, 1100, 0, true, seed += 10);
  check_layer_norm_forward<TestType>(37, 192, 0, false, seed += 10, 2);  // grid-stride rows
  check_layer_norm_forward<TestType>(37, 65, 1, false, seed += 10, 1);
}

TEMPLATE_TEST_CASE("emulated layer_norm backward in bf16 and float matches float64",
                   "[cuda-emu][layernorm][bf16]", bf16, float) {
  uint64_t seed = 2000;
  for (int64_t R : kBf16Rows)
    for (int64_t C : kBf16Cols) check_layer_norm_backward<TestType>(R, C, Bf16LnGrads::All, 0, seed += 10);
  for (int64_t C : {7, 64, 197}) check_layer_norm_backward<TestType>(33, C, Bf16LnGrads::All, 1, seed += 10);
  // warps owning several rows: the prefetched next row, partial last blocks
  for (int64_t C : {8, 65, 192, 384})
    for (int64_t rpb : {5, 37}) check_layer_norm_backward<TestType>(101, C, Bf16LnGrads::All, 0, seed += 10, rpb);
  check_layer_norm_backward<TestType>(77, 768, Bf16LnGrads::All, 0, seed += 10, 30);  // no prefetch
  check_layer_norm_backward<TestType>(33, 200, Bf16LnGrads::NoDx, 0, seed += 10);
  check_layer_norm_backward<TestType>(33, 7, Bf16LnGrads::OnlyDx, 0, seed += 10);
  check_layer_norm_backward<TestType>(33, 64, Bf16LnGrads::OnlyWeight, 0, seed += 10, 9);
  check_layer_norm_backward<TestType>(3, 1100, Bf16LnGrads::All, 0, seed += 10);
  check_layer_norm_backward<TestType>(5, 1100, Bf16LnGrads::All, 1, seed += 10, 2);
  check_layer_norm_backward<TestType>(2, 1100, Bf16LnGrads::NoDx, 0, seed += 10);
}

TEMPLATE_TEST_CASE("emulated softmax in bf16 and float matches float64, attention-shaped rows",
                   "[cuda-emu][softmax][bf16]", bf16, float) {
  uint64_t seed = 3000;
  for (int64_t R : {1, 3, 33, 70})
    for (int64_t n : {1, 5, 8, 64, 65, 197, 256})
      for (size_t offset : {0, 1}) check_softmax<TestType>(R, n, offset, false, seed += 10);
  check_softmax<TestType>(9, 64, 0, true, seed += 10);
  check_softmax<TestType>(9, 197, 0, true, seed += 10);
  for (size_t offset : {0, 1}) check_softmax<TestType>(2, 1100, offset, false, seed += 10);
  // one- and two-block grids: every warp loops over several row groups
  check_softmax<TestType>(61, 65, 0, false, seed += 10, 1);
  check_softmax<TestType>(61, 197, 0, false, seed += 10, 2);
  check_softmax<TestType>(61, 64, 0, false, seed += 10, 1);
  check_softmax<TestType>(5, 1100, 0, false, seed += 10, 2);
}

TEMPLATE_TEST_CASE("emulated cross_entropy in bf16 and float matches float64",
                   "[cuda-emu][cross_entropy][bf16]", bf16, float) {
  uint64_t seed = 4000;
  for (int64_t B : {1, 5, 33})
    for (int64_t K : {1, 10, 37, 1000}) {
      check_cross_entropy<TestType>(B, K, Bf16Target::Labels, 0.0, seed += 10);
      check_cross_entropy<TestType>(B, K, Bf16Target::Labels, 0.1, seed += 10);
      check_cross_entropy<TestType>(B, K, Bf16Target::Soft, 0.0, seed += 10);
    }
  check_cross_entropy<TestType>(37, 200, Bf16Target::Labels, 0.1, seed += 10, 2);
  check_cross_entropy<TestType>(37, 200, Bf16Target::Soft, 0.0, seed += 10, 1);
}

TEST_CASE("emulated bf16 16-byte loads and stores round trip every bit pattern of a chunk",
          "[cuda-emu][bf16]") {
  // load_vec/store_vec split a float4 into 8 bf16 with bit operations: every bf16
  // (infinities, NaNs, subnormals, signed zeros) must come back with its bits.
  alignas(16) bf16 in[8], out[8];
  for (uint32_t base = 0; base < 0x10000u; base += 8) {
    for (int i = 0; i < 8; ++i) in[i] = bf16::from_bits(static_cast<uint16_t>(base + i));
    float v[8];
    k::rows::load_vec<8>(in, v);
    for (int i = 0; i < 8; ++i) {
      const float expect = static_cast<float>(in[i]);
      if (std::isnan(expect)) {
        REQUIRE(std::isnan(v[i]));
      } else {
        REQUIRE(std::memcmp(&v[i], &expect, sizeof(float)) == 0);
      }
    }
    k::rows::store_vec<8>(out, v);
    for (int i = 0; i < 8; ++i) {
      if (std::isnan(static_cast<float>(in[i])))
        REQUIRE(std::isnan(static_cast<float>(out[i])));
      else
        REQUIRE(out[i].bits == in[i].bits);
    }
  }
}
