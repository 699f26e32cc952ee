// Launchers of cuda/kernels/elementwise.cuh (declared in include/vit/cuda/elementwise.hpp
// and, for add, include/vit/core/device_runtime.hpp), for float and vit::bf16
// storage: one template per launcher, the float and bf16 overloads its two
// instances (bf16: fp32 math, each result rounded once).
// The two-stage reductions take their partials from the caching allocator and
// give them back right after queueing the second kernel: stream order keeps the
// next user of that block behind it, so nothing synchronises.
#include "common.cuh"
#include "kernels/elementwise.cuh"
#include "vit/cuda/elementwise.hpp"

namespace vit::cuda {

namespace {

void check_n(const char* op, int64_t n) { VIT_CHECK(n >= 0, "cuda::", op, ": negative size ", n); }

template <class Op, class T>
void binary(const char* what, const T* a, const T* b, T* out, int64_t n, Op op) {
  check_n(what, n);
  if (n == 0) return;
  VIT_CHECK(a && b && out, "cuda::", what, ": null pointer");
  const auto g = kernels::map_launch<T>(n);
  detail::launch(kernels::ew_binary_kernel<Op, T, T, T>, g.grid, g.block, g.smem, a, b, out, n, op);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class Op, class T>
void unary(const char* what, const T* x, T* out, int64_t n, Op op) {
  check_n(what, n);
  if (n == 0) return;
  VIT_CHECK(x && out, "cuda::", what, ": null pointer");
  const auto g = kernels::map_launch<T>(n);
  detail::launch(kernels::ew_unary_kernel<Op, T, T>, g.grid, g.block, g.smem, x, out, n, op);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void fill_impl(T* x, float value, int64_t n) {
  check_n("fill", n);
  if (n == 0) return;
  VIT_CHECK(x, "cuda::fill: null pointer");
  const auto g = kernels::map_launch<T>(n);
  detail::launch(kernels::ew_fill_kernel_t<T>, g.grid, g.block, g.smem, x, value, n);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void add_row_broadcast_impl(const T* x, const T* bias, T* out, int64_t R, int64_t C) {
  VIT_CHECK(R >= 0 && C >= 0, "cuda::add_row_broadcast: bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;
  VIT_CHECK(x && bias && out, "cuda::add_row_broadcast: null pointer");
  const auto g = kernels::map_launch<T>(R * C);
  detail::launch(kernels::row_bias_map_kernel<T, kernels::EwIdentity>, g.grid, g.block, g.smem, x,
                 bias, out, R, C, kernels::EwIdentity{});
  VIT_CUDA_LAUNCH_CHECK();
}

template <class TX, class TA>
void column_sums_impl(const TX* x, TA* acc, int64_t R, int64_t C) {
  VIT_CHECK(R >= 0 && C >= 0, "cuda::column_sums_accumulate: bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;  // acc += 0
  VIT_CHECK(x && acc, "cuda::column_sums_accumulate: null pointer");
  const auto g = kernels::column_sums_launch(R, C);
  if (g.chunks == 1) {
    detail::launch(kernels::column_sums_partial_kernel_t<TX, TA>, g.grid, g.block, g.smem, x, acc,
                   static_cast<float*>(nullptr), R, C, g.rows_per_chunk);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  detail::Scratch partials(static_cast<size_t>(g.chunks * C));
  detail::launch(kernels::column_sums_partial_kernel_t<TX, TA>, g.grid, g.block, g.smem, x,
                 static_cast<TA*>(nullptr), partials.p, R, C, g.rows_per_chunk);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::column_sums_finish_kernel_t<TA>, g.finish_grid, g.finish_block, 0,
                 static_cast<const float*>(partials.p), acc, g.chunks, C);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void sum_all_impl(const T* x, T* out, int64_t n) {
  check_n("sum_all", n);
  VIT_CHECK(out && (x || n == 0), "cuda::sum_all: null pointer");
  // n == 0 still launches: out[0] must be written (0).
  const auto g = kernels::sum_all_launch(n);
  if (g.grid.x == 1) {
    detail::launch(kernels::sum_all_partial_kernel_t<T, T>, g.grid, g.block, g.smem, x, n, out);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  detail::Scratch partials(g.grid.x);
  detail::launch(kernels::sum_all_partial_kernel_t<T, float>, g.grid, g.block, g.smem, x, n,
                 partials.p);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::sum_all_partial_kernel_t<float, T>, 1, g.block, 0,
                 static_cast<const float*>(partials.p), static_cast<int64_t>(g.grid.x), out);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void fill(float* x, float value, int64_t n) { fill_impl(x, value, n); }
void fill(bf16* x, float value, int64_t n) { fill_impl(x, value, n); }

void add(const float* a, const float* b, float* out, int64_t n) {
  binary("add", a, b, out, n, kernels::EwAdd{});
}
void add(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  binary("add", a, b, out, n, kernels::EwAdd{});
}

void accumulate(float* dst, const float* src, int64_t n) {
  binary("accumulate", static_cast<const float*>(dst), src, dst, n, kernels::EwAdd{});
}
void accumulate(bf16* dst, const bf16* src, int64_t n) {
  binary("accumulate", static_cast<const bf16*>(dst), src, dst, n, kernels::EwAdd{});
}

void sub(const float* a, const float* b, float* out, int64_t n) {
  binary("sub", a, b, out, n, kernels::EwSub{});
}
void sub(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  binary("sub", a, b, out, n, kernels::EwSub{});
}

void mul(const float* a, const float* b, float* out, int64_t n) {
  binary("mul", a, b, out, n, kernels::EwMul{});
}
void mul(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  binary("mul", a, b, out, n, kernels::EwMul{});
}

void scale(const float* x, float s, float* out, int64_t n) {
  unary("scale", x, out, n, kernels::EwScale{s});
}
void scale(const bf16* x, float s, bf16* out, int64_t n) {
  unary("scale", x, out, n, kernels::EwScale{s});
}

void tanh_forward(const float* x, float* y, int64_t n) {
  unary("tanh_forward", x, y, n, kernels::EwTanh{});
}
void tanh_forward(const bf16* x, bf16* y, int64_t n) {
  unary("tanh_forward", x, y, n, kernels::EwTanh{});
}

void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) {
  binary("tanh_backward", dy, y, dx, n, kernels::EwTanhGrad{});
}
void tanh_backward(const bf16* dy, const bf16* y, bf16* dx, int64_t n) {
  binary("tanh_backward", dy, y, dx, n, kernels::EwTanhGrad{});
}

void add_row_broadcast(const float* x, const float* bias, float* out, int64_t R, int64_t C) {
  add_row_broadcast_impl(x, bias, out, R, C);
}
void add_row_broadcast(const bf16* x, const bf16* bias, bf16* out, int64_t R, int64_t C) {
  add_row_broadcast_impl(x, bias, out, R, C);
}

void column_sums_accumulate(const float* x, float* acc, int64_t R, int64_t C) {
  column_sums_impl(x, acc, R, C);
}
void column_sums_accumulate(const bf16* x, bf16* acc, int64_t R, int64_t C) {
  column_sums_impl(x, acc, R, C);
}
void column_sums_accumulate(const bf16* x, float* acc, int64_t R, int64_t C) {
  column_sums_impl(x, acc, R, C);
}

void sum_all(const float* x, float* out, int64_t n) { sum_all_impl(x, out, n); }
void sum_all(const bf16* x, bf16* out, int64_t n) { sum_all_impl(x, out, n); }

}  // namespace vit::cuda
