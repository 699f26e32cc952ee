// The bf16 instances of the elementwise kernel families under the CPU
// stand-in (emu.hpp), with the launchers' geometry: the flat maps (add, sub,
// mul, scale, tanh, GELU, fill), the row-broadcast bias add, the fused
// bias+GELU forward and backward (bias gradient into bf16 and into float),
// column sums and the total sum, the strided kernels (broadcast, copy,
// reduce, permute), patchify, the dropout mask and its application, and the
// dtype conversions. Every output is NaN-poisoned before the launch and
// checked against float64: ||got - ref|| / ||ref|| < 1e-2 with any NaN or Inf
// failing; sizes with every tail after the 8-wide vectors, pointers off
// 16-byte alignment (the scalar path), odd rows and columns, N = 1, 65, 197,
// and one-block grids (the grid-stride loops). Where the kernel's float math
// is the CPU's, the bf16 result is also checked bit for bit against
// bf16(float result): one rounding, round to nearest even.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "emu_check.hpp"
#include "kernels/convert.cuh"
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/gelu.cuh"
#include "kernels/patchify.cuh"
#include "kernels/strided.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::bf16;
using vit::test::random_vector;

const bf16 kNaN = bf16::from_bits(0x7fc0);

using vit::test::require_relative_l2;

/// n + offset elements of T, NaN-poisoned; the kernels see them from `offset` on.
template <class T>
struct Buf {
  std::vector<T> v;
  size_t offset;
  Buf(size_t n, size_t off) : v(n + off, poison()), offset(off) {}
  Buf(const std::vector<T>& values, size_t off) : v(off, poison()), offset(off) {
    v.insert(v.end(), values.begin(), values.end());
  }
  static T poison() {
    if constexpr (std::is_same_v<T, bf16>) return kNaN;
    else return std::numeric_limits<T>::quiet_NaN();
  }
  T* get() { return v.data() + offset; }
  std::vector<double> values() const {
    std::vector<double> r;
    for (size_t i = offset; i < v.size(); ++i) r.push_back(float(v[i]));
    return r;
  }
  bool head_untouched() const {
    for (size_t i = 0; i < offset; ++i)
      if (!std::isnan(float(v[i]))) return false;
    return true;
  }
};

std::vector<bf16> random_bf16(size_t n, uint64_t seed, double std = 1.0) {
  std::vector<bf16> r;
  for (float f : random_vector(n, seed, std)) r.push_back(bf16(f));
  return r;
}
std::vector<double> widen(const std::vector<bf16>& v) {
  std::vector<double> r;
  for (bf16 b : v) r.push_back(float(b));
  return r;
}

double gelu_ref(double v, bool tanh_approx) {
  if (tanh_approx) return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
  return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
}
double gelu_grad_ref(double v, bool tanh_approx) {
  if (tanh_approx) {
    const double u = 0.7978845608028654 * (v + 0.044715 * v * v * v), t = std::tanh(u);
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * v * v);
  }
  return 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
}

const int64_t kSizes[] = {1, 7, 8, 9, 15, 17, 64, 65, 197, 1027};
const size_t kOffsets[] = {0, 1, 3, 8};  // elements: 8 bf16 = 16 bytes keeps the vector path

template <class Op>
void run_binary(const bf16* a, const bf16* b, bf16* out, int64_t n, int64_t max_blocks, Op op) {
  const auto g = k::map_launch<bf16>(n, max_blocks);
  vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<Op, bf16, bf16, bf16>, a, b, out, n, op);
}
template <class Op>
void run_unary(const bf16* x, bf16* out, int64_t n, int64_t max_blocks, Op op) {
  const auto g = k::map_launch<bf16>(n, max_blocks);
  vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<Op, bf16, bf16>, x, out, n, op);
}

}  // namespace

TEST_CASE("emu bf16 flat maps: one rounding of the float result, every tail", "[cuda-emu][bf16][elementwise]") {
  uint64_t seed = 9000;
  for (int64_t n : kSizes)
    for (size_t off : kOffsets)
      for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
        INFO("n " << n << ", offset " << off << ", max blocks " << max_blocks);
        const auto a = random_bf16(n, seed += 10), b = random_bf16(n, seed + 1);
        const auto ad = widen(a), bd = widen(b);
        std::vector<double> sum(n), diff(n), prod(n), scaled(n), th(n), thg(n);
        for (int64_t i = 0; i < n; ++i) {
          sum[i] = ad[i] + bd[i], diff[i] = ad[i] - bd[i], prod[i] = ad[i] * bd[i];
          scaled[i] = -0.3 * ad[i], th[i] = std::tanh(ad[i]), thg[i] = ad[i] * (1 - bd[i] * bd[i]);
        }
        Buf<bf16> da(a, off), db(b, off);
        auto check = [&](auto op, const std::vector<double>& ref, const char* what, auto exact) {
          Buf<bf16> out(n, off);
          if constexpr (std::is_invocable_v<decltype(op), float, float>)
            run_binary(da.get(), db.get(), out.get(), n, max_blocks, op);
          else
            run_unary(da.get(), out.get(), n, max_blocks, op);
          require_relative_l2(out.values(), ref, what);
          CHECK(out.head_untouched());
          for (int64_t i = 0; i < n; ++i) REQUIRE(out.get()[i].bits == bf16(exact(i)).bits);
        };
        check(k::EwAdd{}, sum, "add", [&](int64_t i) { return float(a[i]) + float(b[i]); });
        check(k::EwSub{}, diff, "sub", [&](int64_t i) { return float(a[i]) - float(b[i]); });
        check(k::EwMul{}, prod, "mul", [&](int64_t i) { return float(a[i]) * float(b[i]); });
        check(k::EwScale{-0.3f}, scaled, "scale", [&](int64_t i) { return -0.3f * float(a[i]); });
        check(k::EwTanh{}, th, "tanh", [&](int64_t i) { return tanhf(float(a[i])); });
        check(k::EwTanhGrad{}, thg, "tanh backward",
              [&](int64_t i) { return float(a[i]) * (1.f - float(b[i]) * float(b[i])); });
        for (bool t : {false, true}) {
          std::vector<double> f(n), gr(n);
          for (int64_t i = 0; i < n; ++i) f[i] = gelu_ref(ad[i], t), gr[i] = ad[i] * gelu_grad_ref(bd[i], t);
          Buf<bf16> out(n, off), dx(n, off);
          if (t) {
            run_unary(da.get(), out.get(), n, max_blocks, k::GeluForwardOp<true>{});
            run_binary(da.get(), db.get(), dx.get(), n, max_blocks, k::GeluBackwardOp<true>{});
          } else {
            run_unary(da.get(), out.get(), n, max_blocks, k::GeluForwardOp<false>{});
            run_binary(da.get(), db.get(), dx.get(), n, max_blocks, k::GeluBackwardOp<false>{});
          }
          require_relative_l2(out.values(), f, t ? "gelu tanh" : "gelu");
          require_relative_l2(dx.values(), gr, t ? "gelu tanh backward" : "gelu backward");
          for (int64_t i = 0; i < n; ++i) REQUIRE(out.get()[i].bits == bf16(k::gelu_value(float(a[i]), t)).bits);
        }
        // in place: a + b into a
        run_binary(da.get(), db.get(), da.get(), n, max_blocks, k::EwAdd{});
        require_relative_l2(da.values(), sum, "add in place");

        Buf<bf16> filled(n, off);
        const auto g = k::map_launch<bf16>(n, max_blocks);
        vit_emu::launch(g.grid, g.block, g.smem, k::ew_fill_kernel_t<bf16>, filled.get(), 1.7f, n);
        for (int64_t i = 0; i < n; ++i) REQUIRE(filled.get()[i].bits == bf16(1.7f).bits);
        CHECK(filled.head_untouched());
      }
}

TEST_CASE("emu bf16 row-broadcast bias add and fused bias+GELU forward", "[cuda-emu][bf16][gelu]") {
  uint64_t seed = 9500;
  for (int64_t R : {1, 65, 197})
    for (int64_t C : {1, 8, 13, 24, 264})
      for (size_t off : {0, 1, 8})
        for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
          INFO("R " << R << ", C " << C << ", offset " << off << ", max blocks " << max_blocks);
          const auto x = random_bf16(R * C, seed += 10), b = random_bf16(C, seed + 1, 0.5);
          Buf<bf16> dx(x, off), dbias(b, off);
          const auto g = k::map_launch<bf16>(R * C, max_blocks);
          Buf<bf16> sum(R * C, off);
          vit_emu::launch(g.grid, g.block, g.smem, k::row_bias_map_kernel<bf16, k::EwIdentity>, dx.get(),
                          dbias.get(), sum.get(), R, C, k::EwIdentity{});
          for (int64_t i = 0; i < R * C; ++i)
            REQUIRE(sum.get()[i].bits == bf16(float(x[i]) + float(b[i % C])).bits);
          for (bool t : {false, true}) {
            Buf<bf16> out(R * C, off);
            if (t)
              vit_emu::launch(g.grid, g.block, g.smem, k::row_bias_map_kernel<bf16, k::GeluForwardOp<true>>,
                              dx.get(), dbias.get(), out.get(), R, C, k::GeluForwardOp<true>{});
            else
              vit_emu::launch(g.grid, g.block, g.smem, k::row_bias_map_kernel<bf16, k::GeluForwardOp<false>>,
                              dx.get(), dbias.get(), out.get(), R, C, k::GeluForwardOp<false>{});
            std::vector<double> ref(R * C);
            for (int64_t i = 0; i < R * C; ++i) ref[i] = gelu_ref(double(float(x[i])) + float(b[i % C]), t);
            require_relative_l2(out.values(), ref, "bias_gelu forward");
            CHECK(out.head_untouched());
          }
        }
}

namespace {

/// The launcher's bias+GELU backward: the fused kernel, then (several row
/// chunks) the fixed-order finish into dbias.
template <class T, class TA, int V, bool kTanh>
void run_bias_gelu_backward(const T* dout, const T* x, const T* bias, T* dx, TA* dbias, int64_t R,
                            int64_t C) {
  const auto g = k::bias_gelu_backward_launch(R, C, V);
  if (g.chunks == 1) {
    vit_emu::launch(g.grid, g.block, g.smem, k::bias_gelu_backward_kernel<T, TA, V, kTanh>, dout, x, bias,
                    dx, dbias, static_cast<float*>(nullptr), R, C, g.rows_per_chunk);
    return;
  }
  std::vector<float> partials(static_cast<size_t>(g.chunks * C), std::numeric_limits<float>::quiet_NaN());
  vit_emu::launch(g.grid, g.block, g.smem, k::bias_gelu_backward_kernel<T, TA, V, kTanh>, dout, x, bias, dx,
                  static_cast<TA*>(nullptr), partials.data(), R, C, g.rows_per_chunk);
  vit_emu::launch(g.finish_grid, g.finish_block, 0, k::column_sums_finish_kernel_t<TA>,
                  static_cast<const float*>(partials.data()), dbias, g.chunks, C);
}

template <class T, class TA, bool kTanh>
void bias_gelu_backward_case(int64_t R, int64_t C, size_t off, uint64_t seed) {
  INFO("R " << R << ", C " << C << ", offset " << off << ", tanh " << kTanh << ", dbias "
            << (std::is_same_v<TA, float> ? "float" : "bf16") << ", x " << (std::is_same_v<T, float> ? "float" : "bf16"));
  auto make = [](const std::vector<bf16>& v) {
    std::vector<T> r;
    for (bf16 b : v) r.push_back(T(float(b)));
    return r;
  };
  const auto dout = random_bf16(R * C, seed), x = random_bf16(R * C, seed + 1), b = random_bf16(C, seed + 2, 0.5);
  const auto db0 = random_bf16(C, seed + 3);
  Buf<T> bd(make(dout), off), bx(make(x), off), bb(make(b), off), bdx(R * C, off);
  std::vector<TA> dbias;
  for (bf16 v : db0) dbias.push_back(TA(float(v)));
  std::vector<double> ref_dx(R * C), ref_db = widen(db0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = r * C + c;
      ref_dx[i] = double(float(dout[i])) * gelu_grad_ref(double(float(x[i])) + float(b[c]), kTanh);
      ref_db[c] += ref_dx[i];
    }
  constexpr int V = k::kVecOf<T>;
  const bool vec = C % V == 0 && k::ew_aligned16(bd.get()) && k::ew_aligned16(bx.get()) &&
                   k::ew_aligned16(bb.get()) && k::ew_aligned16(bdx.get());
  if (vec) run_bias_gelu_backward<T, TA, V, kTanh>(bd.get(), bx.get(), bb.get(), bdx.get(), dbias.data(), R, C);
  else run_bias_gelu_backward<T, TA, 1, kTanh>(bd.get(), bx.get(), bb.get(), bdx.get(), dbias.data(), R, C);
  require_relative_l2(bdx.values(), ref_dx, vec ? "bias_gelu dx (vector path)" : "bias_gelu dx (scalar path)");
  CHECK(bdx.head_untouched());
  std::vector<double> got_db;
  for (TA v : dbias) got_db.push_back(float(v));
  require_relative_l2(got_db, ref_db, "bias_gelu dbias");
}

}  // namespace

TEST_CASE("emu fused bias+GELU backward: dx and the fused bias gradient", "[cuda-emu][bf16][gelu]") {
  uint64_t seed = 9700;
  for (int64_t R : {1, 65, 197})
    for (int64_t C : {1, 13, 24, 264})
      for (size_t off : {0, 1}) {
        bias_gelu_backward_case<bf16, bf16, false>(R, C, off, seed += 10);
        bias_gelu_backward_case<bf16, bf16, true>(R, C, off, seed += 10);
        bias_gelu_backward_case<bf16, float, false>(R, C, off, seed += 10);
        bias_gelu_backward_case<float, float, false>(R, C, off, seed += 10);
        bias_gelu_backward_case<float, float, true>(R, C, off, seed += 10);
      }
}

TEST_CASE("emu bf16 column sums and total sum accumulate in float", "[cuda-emu][bf16][elementwise]") {
  uint64_t seed = 9900;
  for (int64_t R : {1, 65, 197, 4001})
    for (int64_t C : {1, 13, 40}) {
      INFO("R " << R << ", C " << C);
      const auto x = random_bf16(R * C, seed += 10), a0 = random_bf16(C, seed + 1);
      std::vector<double> ref = widen(a0);
      for (int64_t i = 0; i < R * C; ++i) ref[i % C] += float(x[i]);
      const auto g = k::column_sums_launch(R, C);
      for (bool float_acc : {false, true}) {
        std::vector<bf16> accb = a0;
        const std::vector<double> a0d = widen(a0);
        std::vector<float> accf(a0d.begin(), a0d.end());
        std::vector<float> partials(static_cast<size_t>(g.chunks * C), std::numeric_limits<float>::quiet_NaN());
        auto run = [&](auto* acc) {
          using TA = std::remove_pointer_t<decltype(acc)>;
          if (g.chunks == 1) {
            vit_emu::launch(g.grid, g.block, g.smem, k::column_sums_partial_kernel_t<bf16, TA>, x.data(), acc,
                            static_cast<float*>(nullptr), R, C, g.rows_per_chunk);
          } else {
            vit_emu::launch(g.grid, g.block, g.smem, k::column_sums_partial_kernel_t<bf16, TA>, x.data(),
                            static_cast<TA*>(nullptr), partials.data(), R, C, g.rows_per_chunk);
            vit_emu::launch(g.finish_grid, g.finish_block, 0, k::column_sums_finish_kernel_t<TA>,
                            static_cast<const float*>(partials.data()), acc, g.chunks, C);
          }
        };
        std::vector<double> got;
        if (float_acc) {
          run(accf.data());
          got.assign(accf.begin(), accf.end());
        } else {
          run(accb.data());
          got = widen(accb);
        }
        require_relative_l2(got, ref, float_acc ? "column sums into float" : "column sums into bf16");
      }
      // total sum, two stages when there are several blocks
      const int64_t n = R * C;
      double total = 0;
      for (bf16 v : x) total += float(v);
      const auto s = k::sum_all_launch(n);
      bf16 out = kNaN;
      if (s.grid.x == 1) {
        vit_emu::launch(s.grid, s.block, s.smem, k::sum_all_partial_kernel_t<bf16, bf16>, x.data(), n, &out);
      } else {
        std::vector<float> part(s.grid.x, std::numeric_limits<float>::quiet_NaN());
        vit_emu::launch(s.grid, s.block, s.smem, k::sum_all_partial_kernel_t<bf16, float>, x.data(), n, part.data());
        vit_emu::launch(dim3(1), s.block, 0, k::sum_all_partial_kernel_t<float, bf16>,
                        static_cast<const float*>(part.data()), static_cast<int64_t>(s.grid.x), &out);
      }
      require_relative_l2({double(float(out))}, {total}, "sum_all");
    }
}

TEST_CASE("emu bf16 strided kernels: broadcast, copy, reduce, permute", "[cuda-emu][bf16][strided]") {
  // out (3,65,7) = a (3,1,7) op b (65,1) through the strided kernel
  vit::cuda::StridedLayout l;
  l.ndim = 3;
  const int64_t sz[3] = {3, 65, 7};
  for (int d = 0; d < 3; ++d) l.size[d] = sz[d];
  l.stride_a[0] = 7, l.stride_a[1] = 0, l.stride_a[2] = 1;
  l.stride_b[0] = 0, l.stride_b[1] = 1, l.stride_b[2] = 0;
  const auto a = random_bf16(21, 9801), b = random_bf16(65, 9802);
  const int64_t n = 3 * 65 * 7;
  std::vector<double> ref(n), cref(n);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 65; ++j)
      for (int64_t c = 0; c < 7; ++c) {
        ref[(i * 65 + j) * 7 + c] = double(float(a[i * 7 + c])) * float(b[j]);
        cref[(i * 65 + j) * 7 + c] = 0.5 * float(a[i * 7 + c]);
      }
  const auto c = k::strided_coalesce(l);
  for (int64_t max_blocks : {k::kStridedMaxBlocks, int64_t(1)}) {
    const auto g = k::strided_launch(n, max_blocks);
    Buf<bf16> out(n, 0), copied(n, 0), plain(n, 0);
    vit_emu::launch(g.grid, g.block, g.smem, k::strided_binary_kernel<k::EwMul, bf16>, a.data(), b.data(), out.get(),
                    c, n, k::EwMul{});
    require_relative_l2(out.values(), ref, "broadcast mul");
    vit_emu::launch(g.grid, g.block, g.smem, k::strided_copy_kernel_t<bf16, true>, a.data(), copied.get(), c, n, 0.5f);
    require_relative_l2(copied.values(), cref, "broadcast copy, scaled");
    vit_emu::launch(g.grid, g.block, g.smem, k::strided_copy_kernel_t<bf16, false>, a.data(), plain.get(), c, n, 1.f);
    for (int64_t i = 0; i < n; ++i) REQUIRE(plain.get()[i].bits == a[(i / (65 * 7)) * 7 + i % 7].bits);
  }
  // reduce (3,65,7) over dims 0 and 2, scaled: out (65)
  const auto x = random_bf16(n, 9803);
  const int64_t xs[3] = {3, 65, 7};
  const bool keep[3] = {false, true, false};
  const auto p = k::reduce_plan(3, xs, keep);
  Buf<bf16> red(65, 0);
  vit_emu::launch(p.grid, p.block, 0, k::reduce_sum_kernel_t<bf16>, x.data(), red.get(), p.kept, p.n_out, p.reduced,
                  p.n_reduced, 0.25f);
  std::vector<double> rref(65, 0.0);
  for (int64_t i = 0; i < n; ++i) rref[(i / 7) % 65] += 0.25 * float(x[i]);
  require_relative_l2(red.values(), rref, "reduce_sum");
  // permute (3,65,7) -> (7,3,65): exact
  const int perm[3] = {2, 0, 1};
  vit::cuda::StridedLayout pl;
  REQUIRE(k::permute_layout(3, xs, perm, pl));
  const auto pc = k::strided_coalesce(pl);
  const auto g = k::strided_launch(n);
  Buf<bf16> po(n, 0);
  vit_emu::launch(g.grid, g.block, g.smem, k::strided_copy_kernel_t<bf16, false>, x.data(), po.get(), pc, n, 1.f);
  for (int64_t q = 0; q < 7; ++q)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 65; ++j) REQUIRE(po.get()[(q * 3 + i) * 65 + j].bits == x[(i * 65 + j) * 7 + q].bits);
}

TEST_CASE("emu bf16 patchify and unpatchify copy exactly", "[cuda-emu][bf16][patch_embed]") {
  const int64_t B = 2, ch = 3, H = 12, W = 8, P = 4, total = B * ch * H * W;
  const auto x = random_bf16(total, 9850);
  std::vector<bf16> ref(total);
  vit::ops::patchify(x.data(), ref.data(), B, ch, H, W, P);
  for (int64_t max_blocks : {k::kPatchifyMaxBlocks, int64_t(1)}) {
    (void)max_blocks;
    const auto g = k::patchify_launch(total);
    Buf<bf16> cols(total, 0), back(total, 0);
    vit_emu::launch(g.grid, g.block, g.smem, k::patchify_kernel<int32_t, bf16>, x.data(), cols.get(),
                    int32_t(total), int32_t(ch), int32_t(H), int32_t(W), int32_t(P));
    for (int64_t i = 0; i < total; ++i) REQUIRE(cols.get()[i].bits == ref[i].bits);
    vit_emu::launch(g.grid, g.block, g.smem, k::unpatchify_kernel<int64_t, bf16>,
                    static_cast<const bf16*>(cols.get()), back.get(), total, ch, H, W, P);
    for (int64_t i = 0; i < total; ++i) REQUIRE(back.get()[i].bits == x[i].bits);
  }
}

TEST_CASE("emu bf16 dropout: float masks applied with one rounding", "[cuda-emu][bf16][dropout]") {
  const double p = 0.3;
  const float keep = static_cast<float>(1.0 / (1.0 - p));
  for (int64_t n : {1, 9, 65, 1027})
    for (int64_t inner : {1, 8, 13})
      for (size_t off : {0, 1, 8}) {
        INFO("n " << n << ", inner " << inner << ", offset " << off);
        const int64_t groups = (n + inner - 1) / inner;
        std::vector<float> mask(groups, std::numeric_limits<float>::quiet_NaN());
        const auto ml = k::dropout_launch(groups);
        vit_emu::launch(ml.grid, ml.block, ml.smem, k::dropout_mask_kernel_t<float>, mask.data(), groups,
                        uint64_t(7), uint64_t(100), static_cast<const uint64_t*>(nullptr), k::keep_threshold(p), keep);
        std::vector<bf16> maskb(groups, kNaN);
        vit_emu::launch(ml.grid, ml.block, ml.smem, k::dropout_mask_kernel_t<bf16>, maskb.data(), groups,
                        uint64_t(7), uint64_t(100), static_cast<const uint64_t*>(nullptr), k::keep_threshold(p), keep);
        for (int64_t i = 0; i < groups; ++i) REQUIRE(maskb[i].bits == bf16(mask[i]).bits);
        const auto x = random_bf16(n, 9870 + n);
        Buf<bf16> bx(x, off), out(n, off);
        const auto l = k::apply_group_mask_geometry<bf16>(bx.get(), out.get(), n, inner);
        vit_emu::launch(l.grid, l.block, l.smem, l.kernel, static_cast<const bf16*>(bx.get()),
                        static_cast<const float*>(mask.data()), out.get(), n, inner);
        std::vector<double> ref(n);
        for (int64_t i = 0; i < n; ++i) {
          ref[i] = double(float(x[i])) * mask[i / inner];
          REQUIRE(out.get()[i].bits == bf16(float(x[i]) * mask[i / inner]).bits);
        }
        if (n > 8) require_relative_l2(out.values(), ref, "dropout");
        CHECK(out.head_untouched());
      }
}

TEST_CASE("emu dtype conversions round to nearest even exactly as vit::bf16", "[cuda-emu][bf16][cast]") {
  std::vector<float> v = {1.f + 0x1p-8f, 1.f + 3 * 0x1p-8f, -1.f - 0x1p-8f, 0.f, -0.f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                          1e-40f, 3.4e38f, 3.3961e38f, 65504.f};
  for (float f : random_vector(1027, 9890, 50.0)) v.push_back(f);
  for (size_t off_in : {0, 1, 4})
    for (size_t off_out : {0, 1, 8})
      for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
        for (int64_t n : {int64_t(1), int64_t(9), int64_t(v.size())}) {
          INFO("n " << n << ", offsets " << off_in << " " << off_out << ", max blocks " << max_blocks);
          const std::vector<float> in(v.begin(), v.begin() + n);
          Buf<float> fin(in, off_in);
          Buf<bf16> out(n, off_out);
          const auto g = k::convert_launch(n, max_blocks);
          vit_emu::launch(g.grid, g.block, g.smem, k::convert_kernel<float, bf16>,
                          static_cast<const float*>(fin.get()), out.get(), n);
          for (int64_t i = 0; i < n; ++i) {
            INFO("value " << in[i]);
            REQUIRE(out.get()[i].bits == bf16(in[i]).bits);
          }
          CHECK(out.head_untouched());
          // back to float (exact), then the master-gradient accumulation
          Buf<float> wide(n, off_in);
          vit_emu::launch(g.grid, g.block, g.smem, k::convert_kernel<bf16, float>,
                          static_cast<const bf16*>(out.get()), wide.get(), n);
          for (int64_t i = 0; i < n; ++i) {
            const float w = wide.get()[i], e = float(out.get()[i]);
            REQUIRE((std::memcmp(&w, &e, 4) == 0));
          }
          std::vector<float> acc0 = random_vector(n, 9891, 1.0);
          Buf<float> acc(acc0, off_in);
          vit_emu::launch(g.grid, g.block, g.smem, k::accumulate_widened_kernel<bf16>,
                          static_cast<const bf16*>(out.get()), acc.get(), n);
          for (int64_t i = 0; i < n; ++i) {
            const float want = acc0[i] + float(out.get()[i]), got = acc.get()[i];
            REQUIRE((std::memcmp(&want, &got, 4) == 0));
          }
        }
      }
}
