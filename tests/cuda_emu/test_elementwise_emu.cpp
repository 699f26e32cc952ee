// The flat elementwise kernels new with the op layer's device dispatch (sub,
// out-of-place scale, tanh and its backward) under the CPU stand-in
// (emu.hpp), with the launchers' geometry, against plain CPU loops: sizes with
// every tail length after the float4 part, pointers off 16-byte alignment
// (the scalar path), a one-block grid (the grid-stride path), NaN-poisoned
// outputs, and out aliasing an input.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "emu_check.hpp"
#include "kernels/elementwise.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::test::poisoned;
using vit::test::random_vector;
using vit::test::require_close;

const int64_t kLengths[] = {1, 2, 3, 4, 5, 7, 64, 1027};

/// A poisoned buffer of n + offset floats; the kernels see it from `offset` on.
struct FloatBuf {
  std::vector<float> v;
  size_t offset;
  FloatBuf(size_t n, size_t off) : v(poisoned(n + off)), offset(off) {}
  FloatBuf(const std::vector<float>& values, size_t off) : v(poisoned(off)), offset(off) {
    v.insert(v.end(), values.begin(), values.end());
  }
  float* get() { return v.data() + offset; }
  std::vector<float> values() const { return {v.begin() + offset, v.end()}; }
  bool head_untouched() const {
    for (size_t i = 0; i < offset; ++i)
      if (!std::isnan(v[i])) return false;
    return true;
  }
};

template <class Op>
void run_binary(const float* a, const float* b, float* out, int64_t n, int64_t max_blocks, Op op) {
  const auto g = k::elementwise_launch(n, max_blocks);
  vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<Op>, a, b, out, n, op);
}
template <class Op>
void run_unary(const float* x, float* out, int64_t n, int64_t max_blocks, Op op) {
  const auto g = k::elementwise_launch(n, max_blocks);
  vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<Op>, x, out, n, op);
}

}  // namespace

TEST_CASE("emu sub and out-of-place scale match the CPU exactly", "[cuda-emu][elementwise]") {
  uint64_t seed = 7000;
  for (int64_t n : kLengths)
    for (size_t offset : {0, 1})
      for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
        INFO("n " << n << ", offset " << offset << ", max blocks " << max_blocks);
        const std::vector<float> a = random_vector(n, seed += 10), b = random_vector(n, seed + 1);
        std::vector<float> diff(n), scaled(n);
        for (int64_t i = 0; i < n; ++i) diff[i] = a[i] - b[i], scaled[i] = -1.75f * a[i];

        FloatBuf da(a, offset), db(b, offset), out(n, offset);
        run_binary(da.get(), db.get(), out.get(), n, max_blocks, k::EwSub{});
        require_close(out.values(), diff, 0, 0, "sub");
        CHECK(out.head_untouched());

        FloatBuf so(n, offset);
        run_unary(da.get(), so.get(), n, max_blocks, k::EwScale{-1.75f});
        require_close(so.values(), scaled, 0, 0, "scale");
        require_close(da.values(), a, 0, 0, "scale leaves x alone");
        CHECK(so.head_untouched());

        // out aliasing an input: a - b into b, s·a into a
        run_binary(da.get(), db.get(), db.get(), n, max_blocks, k::EwSub{});
        require_close(db.values(), diff, 0, 0, "sub into b");
        run_unary(da.get(), da.get(), n, max_blocks, k::EwScale{-1.75f});
        require_close(da.values(), scaled, 0, 0, "scale in place");
      }
}

TEST_CASE("emu tanh forward and backward match the CPU op", "[cuda-emu][elementwise]") {
  uint64_t seed = 7500;
  for (int64_t n : kLengths)
    for (size_t offset : {0, 1})
      for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
        INFO("n " << n << ", offset " << offset << ", max blocks " << max_blocks);
        std::vector<float> x = random_vector(n, seed += 10, 2.0);
        if (n > 3) x[0] = 30.f, x[1] = -30.f, x[2] = 0.f;  // saturated and zero
        const std::vector<float> dy = random_vector(n, seed + 1);
        std::vector<float> y_ref(n);
        for (int64_t i = 0; i < n; ++i) y_ref[i] = static_cast<float>(std::tanh(double(x[i])));

        FloatBuf dx_in(x, offset), y(n, offset);
        run_unary(dx_in.get(), y.get(), n, max_blocks, k::EwTanh{});
        require_close(y.values(), y_ref, 1e-7, 1e-6, "tanh");
        CHECK(y.head_untouched());

        // backward from the forward's own output, as TanhNode: dx = dy·(1 − y²)
        const std::vector<float> yv = y.values();
        std::vector<float> dx_ref(n);
        for (int64_t i = 0; i < n; ++i)
          dx_ref[i] = static_cast<float>(double(dy[i]) * (1.0 - double(yv[i]) * yv[i]));
        FloatBuf ddy(dy, offset), dx(n, offset);
        run_binary(ddy.get(), y.get(), dx.get(), n, max_blocks, k::EwTanhGrad{});
        require_close(dx.values(), dx_ref, 1e-6, 1e-5, "tanh backward");
        CHECK(dx.head_untouched());
        run_binary(ddy.get(), y.get(), ddy.get(), n, max_blocks, k::EwTanhGrad{});  // dx == dy
        require_close(ddy.values(), dx.values(), 0, 0, "tanh backward in place");
      }
}
