// Launchers of cuda/kernels/elementwise.cuh (declared in include/vit/cuda/elementwise.hpp).
// The two-stage reductions take their partials from the caching allocator and
// give them back right after queueing the second kernel: stream order keeps the
// next user of that block behind it, so nothing synchronises.
#include "common.cuh"
#include "kernels/elementwise.cuh"
#include "vit/cuda/elementwise.hpp"

namespace vit::cuda {

namespace {

void check_n(const char* op, int64_t n) { VIT_CHECK(n >= 0, "cuda::", op, ": negative size ", n); }

template <class Op>
void binary(const char* what, const float* a, const float* b, float* out, int64_t n, Op op) {
  check_n(what, n);
  if (n == 0) return;
  VIT_CHECK(a && b && out, "cuda::", what, ": null pointer");
  const auto g = kernels::elementwise_launch(n);
  detail::launch(kernels::ew_binary_kernel<Op>, g.grid, g.block, g.smem, a, b, out, n, op);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class Op>
void unary(const char* what, const float* x, float* out, int64_t n, Op op) {
  check_n(what, n);
  if (n == 0) return;
  VIT_CHECK(x && out, "cuda::", what, ": null pointer");
  const auto g = kernels::elementwise_launch(n);
  detail::launch(kernels::ew_unary_kernel<Op>, g.grid, g.block, g.smem, x, out, n, op);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void fill(float* x, float value, int64_t n) {
  check_n("fill", n);
  if (n == 0) return;
  VIT_CHECK(x, "cuda::fill: null pointer");
  const auto g = kernels::elementwise_launch(n);
  detail::launch(kernels::ew_fill_kernel, g.grid, g.block, g.smem, x, value, n);
  VIT_CUDA_LAUNCH_CHECK();
}

void add(const float* a, const float* b, float* out, int64_t n) {
  binary("add", a, b, out, n, kernels::EwAdd{});
}

void accumulate(float* dst, const float* src, int64_t n) {
  binary("accumulate", dst, src, dst, n, kernels::EwAdd{});
}

void sub(const float* a, const float* b, float* out, int64_t n) {
  binary("sub", a, b, out, n, kernels::EwSub{});
}

void mul(const float* a, const float* b, float* out, int64_t n) {
  binary("mul", a, b, out, n, kernels::EwMul{});
}

void scale(const float* x, float s, float* out, int64_t n) {
  unary("scale", x, out, n, kernels::EwScale{s});
}

void tanh_forward(const float* x, float* y, int64_t n) {
  unary("tanh_forward", x, y, n, kernels::EwTanh{});
}

void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) {
  binary("tanh_backward", dy, y, dx, n, kernels::EwTanhGrad{});
}

void add_row_broadcast(const float* x, const float* bias, float* out, int64_t R, int64_t C) {
  VIT_CHECK(R >= 0 && C >= 0, "cuda::add_row_broadcast: bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;
  VIT_CHECK(x && bias && out, "cuda::add_row_broadcast: null pointer");
  const auto g = kernels::elementwise_launch(R * C);
  detail::launch(kernels::add_row_broadcast_kernel, g.grid, g.block, g.smem, x, bias, out, R, C);
  VIT_CUDA_LAUNCH_CHECK();
}

void column_sums_accumulate(const float* x, float* acc, int64_t R, int64_t C) {
  VIT_CHECK(R >= 0 && C >= 0, "cuda::column_sums_accumulate: bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;  // acc += 0
  VIT_CHECK(x && acc, "cuda::column_sums_accumulate: null pointer");
  const auto g = kernels::column_sums_launch(R, C);
  if (g.chunks == 1) {
    detail::launch(kernels::column_sums_partial_kernel, g.grid, g.block, g.smem, x, acc, R, C,
                   g.rows_per_chunk, 1);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  detail::Scratch partials(static_cast<size_t>(g.chunks * C));
  detail::launch(kernels::column_sums_partial_kernel, g.grid, g.block, g.smem, x, partials.p, R, C,
                 g.rows_per_chunk, 0);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::column_sums_finish_kernel, g.finish_grid, g.finish_block, 0, partials.p,
                 acc, g.chunks, C);
  VIT_CUDA_LAUNCH_CHECK();
}

void sum_all(const float* x, float* out, int64_t n) {
  check_n("sum_all", n);
  VIT_CHECK(out && (x || n == 0), "cuda::sum_all: null pointer");
  // n == 0 still launches: out[0] must be written (0).
  const auto g = kernels::sum_all_launch(n);
  if (g.grid.x == 1) {
    detail::launch(kernels::sum_all_partial_kernel, g.grid, g.block, g.smem, x, n, out);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  detail::Scratch partials(g.grid.x);
  detail::launch(kernels::sum_all_partial_kernel, g.grid, g.block, g.smem, x, n, partials.p);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::sum_all_partial_kernel, 1, g.block, 0, partials.p, g.grid.x, out);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
