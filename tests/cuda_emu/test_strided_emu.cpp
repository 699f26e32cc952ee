// The strided kernels (cuda/kernels/strided.cuh) under the CPU stand-in
// (emu.hpp), dispatched as cuda/strided.cu dispatches them (coalesce, then the
// flat float4 kernels when the operands turn out contiguous, else the strided
// ones), against plain CPU loops over coordinates: broadcasts of every kind,
// odd sizes, 8 dims, 0-dim (scalar) outputs, size-0 dims, reductions over any
// set of dims (including none, all, and an empty reduced set) and permutes.
// Outputs are NaN-poisoned before every launch.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "emu_check.hpp"
#include "kernels/strided.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::cuda::BinaryKind;
using vit::cuda::kMaxDims;
using vit::cuda::StridedLayout;
using vit::test::poisoned;
using vit::test::random_vector;
using vit::test::require_close;
using Dims = std::vector<int64_t>;

int64_t count(const Dims& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}

Dims strides_of(const Dims& s) {
  Dims st(s.size());
  int64_t stride = 1;
  for (size_t d = s.size(); d-- > 0;) st[d] = stride, stride *= s[d];
  return st;
}

/// numpy broadcasting of two shapes.
Dims broadcast(const Dims& a, const Dims& b) {
  const size_t nd = std::max(a.size(), b.size());
  Dims out(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t x = d + a.size() >= nd ? a[d + a.size() - nd] : 1;
    const int64_t y = d + b.size() >= nd ? b[d + b.size() - nd] : 1;
    REQUIRE((x == y || x == 1 || y == 1));
    out[d] = x == 1 ? y : x;
  }
  return out;
}

/// The stride of `in` (broadcast to `out`) per output dim, 0 where broadcast:
/// what the op layer puts in a StridedLayout.
Dims broadcast_strides(const Dims& in, const Dims& out) {
  const size_t lead = out.size() - in.size();
  const Dims st = strides_of(in);
  Dims r(out.size(), 0);
  for (size_t d = lead; d < out.size(); ++d) r[d] = in[d - lead] == 1 ? 0 : st[d - lead];
  return r;
}

/// Index into `in` (broadcast to `out`) of output element i, by coordinates.
int64_t source_index(const Dims& in, const Dims& out, int64_t i) {
  const size_t lead = out.size() - in.size();
  const Dims st = strides_of(in);
  int64_t idx = 0;
  for (size_t d = out.size(); d-- > 0;) {
    const int64_t c = i % out[d];
    i /= out[d];
    if (d >= lead && in[d - lead] != 1) idx += c * st[d - lead];
  }
  return idx;
}

StridedLayout layout_of(const Dims& out, const Dims& sa, const Dims& sb) {
  StridedLayout l;
  l.ndim = static_cast<int>(out.size());
  for (size_t d = 0; d < out.size(); ++d)
    l.size[d] = out[d], l.stride_a[d] = sa[d], l.stride_b[d] = sb.empty() ? 0 : sb[d];
  return l;
}

float apply(BinaryKind op, float a, float b) {
  return op == BinaryKind::Add ? a + b : op == BinaryKind::Sub ? a - b : a * b;
}

// ---- the launchers' dispatch, on the emulator -------------------------------------------

template <class Op>
void emu_binary(const float* a, const float* b, float* out, const StridedLayout& layout, Op op,
                bool coalesce) {
  if (k::strided_numel(layout) == 0) return;
  const StridedLayout c = coalesce ? k::strided_coalesce(layout) : layout;
  const int64_t n = k::strided_numel(c);
  if (coalesce && k::strided_is_flat(c, true)) {
    const auto g = k::elementwise_launch(n);
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<Op>, a, b, out, n, op);
  } else {
    const auto g = k::strided_launch(n);
    vit_emu::launch(g.grid, g.block, g.smem, k::strided_binary_kernel<Op>, a, b, out, c, n, op);
  }
}

void emu_broadcast_binary(BinaryKind op, const float* a, const float* b, float* out,
                          const StridedLayout& layout, bool coalesce = true) {
  switch (op) {
    case BinaryKind::Add:
      return emu_binary(a, b, out, layout, k::EwAdd{}, coalesce);
    case BinaryKind::Sub:
      return emu_binary(a, b, out, layout, k::EwSub{}, coalesce);
    case BinaryKind::Mul:
      return emu_binary(a, b, out, layout, k::EwMul{}, coalesce);
  }
}

void emu_copy(const float* a, float* out, StridedLayout layout, float scale, bool coalesce = true,
              int64_t max_blocks = k::kStridedMaxBlocks) {
  if (k::strided_numel(layout) == 0) return;
  for (int d = 0; d < layout.ndim; ++d) layout.stride_b[d] = 0;
  const StridedLayout c = coalesce ? k::strided_coalesce(layout) : layout;
  const int64_t n = k::strided_numel(c);
  if (coalesce && k::strided_is_flat(c, false)) {
    const auto g = k::elementwise_launch(n);
    vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<k::EwScale>, a, out, n,
                    k::EwScale{scale});
  } else {
    const auto g = k::strided_launch(n, max_blocks);
    vit_emu::launch(g.grid, g.block, g.smem, k::strided_copy_kernel, a, out, c, n, scale);
  }
}

void emu_reduce_sum(const float* x, float* out, const Dims& x_size, const std::vector<bool>& keep,
                    float scale) {
  bool kp[kMaxDims] = {};
  for (size_t d = 0; d < keep.size(); ++d) kp[d] = keep[d];
  const k::ReducePlan p = k::reduce_plan(static_cast<int>(x_size.size()), x_size.data(), kp);
  if (p.n_out == 0) return;
  vit_emu::launch(p.grid, p.block, 0, k::reduce_sum_kernel, x, out, p.kept, p.n_out, p.reduced,
                  p.n_reduced, scale);
}

// ---- checks -------------------------------------------------------------------------------

void check_binary(const Dims& as, const Dims& bs, uint64_t seed) {
  const Dims out = broadcast(as, bs);
  const int64_t n = count(out);
  const std::vector<float> a = random_vector(count(as), seed),
                           b = random_vector(count(bs), seed + 1);
  const StridedLayout l = layout_of(out, broadcast_strides(as, out), broadcast_strides(bs, out));
  for (BinaryKind op : {BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul})
    for (bool coalesce : {true, false}) {
      INFO("a " << as.size() << " dims (" << count(as) << "), b " << bs.size() << " dims ("
                << count(bs) << "), op " << static_cast<int>(op) << ", coalesce " << coalesce);
      std::vector<float> ref(n), got = poisoned(n);
      for (int64_t i = 0; i < n; ++i)
        ref[i] = apply(op, a[source_index(as, out, i)], b[source_index(bs, out, i)]);
      emu_broadcast_binary(op, a.data(), b.data(), got.data(), l, coalesce);
      require_close(got, ref, 0, 0, "broadcast_binary");
    }
}

void check_copy(const Dims& as, const Dims& out, float scale, uint64_t seed) {
  const int64_t n = count(out);
  const std::vector<float> a = random_vector(count(as), seed);
  const StridedLayout l = layout_of(out, broadcast_strides(as, out), {});
  std::vector<float> ref(n);
  for (int64_t i = 0; i < n; ++i) ref[i] = scale * a[source_index(as, out, i)];
  for (bool coalesce : {true, false}) {
    INFO("a " << as.size() << " dims, out " << out.size() << " dims (" << n << "), coalesce "
              << coalesce);
    std::vector<float> got = poisoned(n);
    emu_copy(a.data(), got.data(), l, scale, coalesce);
    require_close(got, ref, 0, 0, "broadcast_copy");
  }
}

void check_reduce(const Dims& xs, const std::vector<bool>& keep, float scale, uint64_t seed) {
  const int64_t n = count(xs);
  const std::vector<float> x = random_vector(n, seed);
  Dims out_shape;
  for (size_t d = 0; d < xs.size(); ++d)
    if (keep[d]) out_shape.push_back(xs[d]);
  const int64_t m = count(out_shape);
  const Dims xst = strides_of(xs), ost = strides_of(out_shape);
  std::vector<double> acc(m, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (size_t d = 0, kd = 0; d < xs.size(); ++d) {
      const int64_t c = (i / xst[d]) % xs[d];
      if (keep[d]) o += c * ost[kd++];
    }
    acc[o] += x[i];
  }
  std::vector<float> ref(m);
  for (int64_t j = 0; j < m; ++j) ref[j] = static_cast<float>(acc[j] * scale);
  std::vector<float> got = poisoned(m);
  INFO("x " << xs.size() << " dims (" << n << "), out " << m);
  emu_reduce_sum(x.data(), got.data(), xs, keep, scale);
  require_close(got, ref, 1e-5, 1e-5, "reduce_sum");
  std::vector<float> again = poisoned(m);
  emu_reduce_sum(x.data(), again.data(), xs, keep, scale);
  require_close(again, got, 0, 0, "reduce_sum repeated");
}

void check_permute(const Dims& xs, const std::vector<int>& perm, uint64_t seed) {
  const int nd = static_cast<int>(xs.size());
  const int64_t n = count(xs);
  const std::vector<float> x = random_vector(n, seed);
  Dims os(nd);
  for (int d = 0; d < nd; ++d) os[d] = xs[perm[d]];
  const Dims xst = strides_of(xs);
  std::vector<float> ref(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, src = 0;
    for (int d = nd - 1; d >= 0; --d) {
      src += (rem % os[d]) * xst[perm[d]];
      rem /= os[d];
    }
    ref[i] = x[src];
  }
  StridedLayout l;
  REQUIRE(k::permute_layout(nd, xs.data(), perm.data(), l));
  std::vector<float> got = poisoned(n);
  INFO("x " << nd << " dims (" << n << ")");
  emu_copy(x.data(), got.data(), l, 1.f);
  require_close(got, ref, 0, 0, "permute");
}

}  // namespace

TEST_CASE("emu strided_coalesce addresses the same elements as the layout it merges",
          "[cuda-emu][strided]") {
  const std::vector<std::pair<Dims, Dims>> shapes = {
      {{2, 3, 5}, {5}},
      {{3, 1, 5}, {1, 4, 1}},
      {{4, 6}, {4, 6}},
      {{1, 1, 7}, {7}},
      {{2, 1, 3, 1, 2, 1, 3, 2}, {1, 2, 1, 2, 1, 3, 1, 2}},
      {{6, 1}, {1, 6}},
      {{}, {}}};
  for (const auto& [as, bs] : shapes) {
    const Dims out = broadcast(as, bs);
    const StridedLayout l = layout_of(out, broadcast_strides(as, out), broadcast_strides(bs, out));
    const StridedLayout c = k::strided_coalesce(l);
    CHECK(c.ndim <= l.ndim);
    REQUIRE(k::strided_numel(c) == k::strided_numel(l));
    for (int64_t i = 0; i < count(out); ++i) {
      int64_t la, lb, ca, cb;
      k::strided_offsets(l, i, la, lb);
      k::strided_offsets(c, i, ca, cb);
      REQUIRE(la == ca);
      REQUIRE(lb == cb);
    }
  }
  // Contiguous operands coalesce to one flat dim; a bias broadcast does not.
  const Dims s = {4, 6, 5};
  CHECK(k::strided_is_flat(
      k::strided_coalesce(layout_of(s, strides_of(s), strides_of(s))), true));
  CHECK(!k::strided_is_flat(
      k::strided_coalesce(layout_of(s, strides_of(s), broadcast_strides({5}, s))), true));
}

TEST_CASE("emu broadcast_binary matches a coordinate loop for every broadcast",
          "[cuda-emu][strided]") {
  uint64_t seed = 9000;
  check_binary({2, 3, 5}, {5}, seed += 10);          // a bias over rows
  check_binary({5}, {2, 3, 5}, seed += 10);          // ... on the left
  check_binary({3, 1, 5}, {1, 4, 1}, seed += 10);    // both broadcast
  check_binary({5, 1}, {1, 5}, seed += 10);          // outer product shape
  check_binary({1, 33, 7}, {4, 33, 1}, seed += 10);  // odd sizes
  check_binary({4, 6}, {4, 6}, seed += 10);          // same shape: the flat kernel
  check_binary({7}, {}, seed += 10);                 // a 0-dim b
  check_binary({}, {}, seed += 10);                  // a 0-dim output
  check_binary({1, 1}, {1}, seed += 10);             // one element through size-1 dims
  check_binary({2, 1, 3, 1, 2, 1, 3, 2}, {1, 2, 1, 2, 1, 3, 1, 2}, seed += 10);  // 8 dims
  check_binary({300, 1}, {1, 7}, seed += 10);  // more elements than one block
  // size-0 dims: nothing launched, nothing to write
  for (const auto& [as, bs] : std::vector<std::pair<Dims, Dims>>{{{2, 0, 3}, {3}}, {{0}, {}}}) {
    const Dims out = broadcast(as, bs);
    std::vector<float> a(1), b(1);
    emu_broadcast_binary(BinaryKind::Add, a.data(), b.data(), nullptr,
                         layout_of(out, broadcast_strides(as, out), broadcast_strides(bs, out)));
  }
}

TEST_CASE("emu broadcast_copy expands and scales", "[cuda-emu][strided]") {
  uint64_t seed = 9500;
  check_copy({1, 4, 1}, {3, 4, 5}, 0.5f, seed += 10);
  check_copy({}, {2, 3}, 1.f, seed += 10);              // expand a scalar
  check_copy({}, {}, -2.f, seed += 10);                 // scalar to scalar
  check_copy({3, 4, 5}, {3, 4, 5}, 0.25f, seed += 10);  // flat: the scale kernel
  check_copy({7, 1, 3}, {2, 7, 5, 3}, 1.f / 35, seed += 10);
  check_copy({2, 1, 3, 1, 2, 1, 3, 2}, {2, 2, 3, 2, 2, 3, 3, 2}, 3.f, seed += 10);
  // The backward of a mean over dim 1 of (3, 4, 5): dout (3, 5) repeated over dim 1.
  {
    const Dims s = {3, 4, 5};
    const std::vector<float> dout = random_vector(15, seed += 10);
    StridedLayout l = layout_of(s, {5, 0, 1}, {});
    std::vector<float> got = poisoned(60), ref(60);
    for (int64_t i = 0; i < 60; ++i) ref[i] = 0.25f * dout[(i / 20) * 5 + i % 5];
    emu_copy(dout.data(), got.data(), l, 0.25f);
    require_close(got, ref, 0, 0, "mean backward");
  }
  // A grid of one block: the grid-stride path.
  {
    const Dims s = {37, 41};
    const std::vector<float> a = random_vector(41, seed += 10);
    std::vector<float> got = poisoned(37 * 41), ref(37 * 41);
    for (int64_t i = 0; i < 37 * 41; ++i) ref[i] = 2.f * a[i % 41];
    emu_copy(a.data(), got.data(), layout_of(s, {0, 1}, {}), 2.f, true, 1);
    require_close(got, ref, 0, 0, "broadcast_copy, one block");
  }
  std::vector<float> a(1);
  emu_copy(a.data(), nullptr, layout_of({4, 0}, {0, 1}, {}), 1.f);  // size 0: nothing
}

TEST_CASE("emu reduce_sum over any set of dims matches a double sum", "[cuda-emu][strided]") {
  uint64_t seed = 9700;
  check_reduce({3, 4, 5}, {true, false, true}, 1.f, seed += 10);
  check_reduce({3, 4, 5}, {false, false, false}, 1.f, seed += 10);      // everything: a 0-dim out
  check_reduce({3, 4, 5}, {true, true, true}, 0.5f, seed += 10);        // nothing reduced
  check_reduce({3, 4, 5}, {false, true, false}, 1.f / 15, seed += 10);  // a mean
  check_reduce({3, 4, 5}, {true, true, false}, 1.f, seed += 10);
  check_reduce({3, 1100}, {true, false}, 1.f, seed += 10);  // more than one block's threads
  check_reduce({1100, 3}, {false, true}, 1.f, seed += 10);  // strided reads
  check_reduce({2, 3, 1, 2, 3, 1, 2, 5}, {true, false, true, false, true, false, false, true}, 1.f,
               seed += 10);  // 8 dims
  check_reduce({7}, {false}, 1.f, seed += 10);
  check_reduce({}, {}, 3.f, seed += 10);  // a scalar in, a scalar out
  check_reduce({1, 1}, {false, true}, 1.f, seed += 10);
  // An empty reduced set writes zeros; an empty output launches nothing.
  check_reduce({2, 0, 3}, {true, false, true}, 1.f, seed += 10);
  check_reduce({0, 3}, {false, true}, 1.f, seed += 10);
  check_reduce({2, 0}, {false, true}, 1.f, seed += 10);
}

TEST_CASE("emu reduce_sum geometry depends on the shape only", "[cuda-emu][strided]") {
  const Dims xs = {3, 1100};
  const bool keep[] = {true, false};
  const k::ReducePlan p = k::reduce_plan(2, xs.data(), keep);
  CHECK(p.n_out == 3);
  CHECK(p.n_reduced == 1100);
  CHECK(p.block.x == 256);
  CHECK(p.grid.x == 3);
  const Dims small = {5, 3};
  const bool keep2[] = {true, false};
  CHECK(k::reduce_plan(2, small.data(), keep2).block.x == 32);
}

TEST_CASE("emu permute matches a coordinate loop", "[cuda-emu][strided]") {
  uint64_t seed = 9900;
  check_permute({2, 3, 4}, {2, 0, 1}, seed += 10);
  check_permute({2, 3, 4}, {0, 1, 2}, seed += 10);  // identity: the flat kernel
  check_permute({2, 3, 4}, {0, 2, 1}, seed += 10);
  check_permute({5, 7}, {1, 0}, seed += 10);
  check_permute({5}, {0}, seed += 10);
  check_permute({}, {}, seed += 10);  // a scalar
  check_permute({2, 1, 3, 1}, {3, 2, 1, 0}, seed += 10);
  check_permute({4, 65, 3, 3, 16}, {2, 0, 3, 1, 4}, seed += 10);  // qkv split to heads
  check_permute({2, 3, 1, 2, 3, 1, 2, 2}, {7, 6, 5, 4, 3, 2, 1, 0}, seed += 10);  // 8 dims
  check_permute({2, 0, 3}, {2, 1, 0}, seed += 10);                                // size 0: nothing
  StridedLayout l;
  const Dims xs = {2, 3, 4};
  const std::vector<int> dup = {0, 0, 1}, out_of_range = {0, 1, 3}, negative = {-1, 0, 1};
  CHECK(!k::permute_layout(3, xs.data(), dup.data(), l));
  CHECK(!k::permute_layout(3, xs.data(), out_of_range.data(), l));
  CHECK(!k::permute_layout(3, xs.data(), negative.data(), l));
  CHECK(!k::permute_layout(kMaxDims + 1, xs.data(), dup.data(), l));
}
