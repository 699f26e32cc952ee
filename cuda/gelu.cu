// Launchers of the GELU kernels (cuda/kernels/gelu.cuh), float and bf16: argument
// checks, the flat maps of maps.cuh with the form chosen at compile time, the
// fused bias+GELU forward and backward, one stream, no host sync.
#include "common.cuh"
#include "kernels/gelu.cuh"
#include "vit/cuda/gelu.hpp"

namespace vit::cuda {

namespace {

template <class T>
void gelu_forward_impl(const T* x, T* out, int64_t n, bool tanh_approx) {
  VIT_CHECK(n >= 0, "gelu_forward (cuda): negative size ", n);
  if (n == 0) return;
  VIT_CHECK(x && out, "gelu_forward (cuda): null x or out");
  const auto g = kernels::map_launch<T>(n);
  if (tanh_approx)
    detail::launch(kernels::ew_unary_kernel<kernels::GeluForwardOp<true>, T, T>, g.grid, g.block,
                   g.smem, x, out, n, kernels::GeluForwardOp<true>{});
  else
    detail::launch(kernels::ew_unary_kernel<kernels::GeluForwardOp<false>, T, T>, g.grid, g.block,
                   g.smem, x, out, n, kernels::GeluForwardOp<false>{});
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void gelu_backward_impl(const T* dout, const T* x, T* dx, int64_t n, bool tanh_approx) {
  VIT_CHECK(n >= 0, "gelu_backward (cuda): negative size ", n);
  if (n == 0) return;
  VIT_CHECK(dout && x && dx, "gelu_backward (cuda): null dout, x or dx");
  const auto g = kernels::map_launch<T>(n);
  if (tanh_approx)
    detail::launch(kernels::ew_binary_kernel<kernels::GeluBackwardOp<true>, T, T, T>, g.grid,
                   g.block, g.smem, dout, x, dx, n, kernels::GeluBackwardOp<true>{});
  else
    detail::launch(kernels::ew_binary_kernel<kernels::GeluBackwardOp<false>, T, T, T>, g.grid,
                   g.block, g.smem, dout, x, dx, n, kernels::GeluBackwardOp<false>{});
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void bias_gelu_forward_impl(const T* x, const T* bias, T* out, int64_t R, int64_t C,
                            bool tanh_approx) {
  VIT_CHECK(R >= 0 && C >= 0, "bias_gelu_forward (cuda): bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;
  VIT_CHECK(x && bias && out, "bias_gelu_forward (cuda): null x, bias or out");
  const auto g = kernels::map_launch<T>(R * C);
  if (tanh_approx)
    detail::launch(kernels::row_bias_map_kernel<T, kernels::GeluForwardOp<true>>, g.grid, g.block,
                   g.smem, x, bias, out, R, C, kernels::GeluForwardOp<true>{});
  else
    detail::launch(kernels::row_bias_map_kernel<T, kernels::GeluForwardOp<false>>, g.grid, g.block,
                   g.smem, x, bias, out, R, C, kernels::GeluForwardOp<false>{});
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T, class TA, int V, bool kTanh>
void bias_gelu_backward_run(const kernels::BiasGeluBackwardLaunch& g, const T* dout, const T* x,
                            const T* bias, T* dx, TA* dbias, int64_t R, int64_t C) {
  if (g.chunks == 1 || !dbias) {
    detail::launch(kernels::bias_gelu_backward_kernel<T, TA, V, kTanh>, g.grid, g.block, g.smem,
                   dout, x, bias, dx, dbias, static_cast<float*>(nullptr), R, C, g.rows_per_chunk);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  detail::Scratch partials(static_cast<size_t>(g.chunks * C));
  detail::launch(kernels::bias_gelu_backward_kernel<T, TA, V, kTanh>, g.grid, g.block, g.smem, dout,
                 x, bias, dx, static_cast<TA*>(nullptr), partials.p, R, C, g.rows_per_chunk);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::column_sums_finish_kernel_t<TA>, g.finish_grid, g.finish_block, 0,
                 static_cast<const float*>(partials.p), dbias, g.chunks, C);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T, class TA>
void bias_gelu_backward_impl(const T* dout, const T* x, const T* bias, T* dx, TA* dbias, int64_t R,
                             int64_t C, bool tanh_approx) {
  VIT_CHECK(R >= 0 && C >= 0, "bias_gelu_backward (cuda): bad shape (", R, ",", C, ")");
  if (R == 0 || C == 0) return;  // dbias += 0
  VIT_CHECK(dout && x && bias, "bias_gelu_backward (cuda): null dout, x or bias");
  if (!dx && !dbias) return;
  constexpr int V = kernels::kVecOf<T>;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vec = C % V == 0 && aligned(dout) && aligned(x) && aligned(bias) && (!dx || aligned(dx));
  const auto g = kernels::bias_gelu_backward_launch(R, C, vec ? V : 1);
  if (vec && tanh_approx) bias_gelu_backward_run<T, TA, V, true>(g, dout, x, bias, dx, dbias, R, C);
  else if (vec) bias_gelu_backward_run<T, TA, V, false>(g, dout, x, bias, dx, dbias, R, C);
  else if (tanh_approx) bias_gelu_backward_run<T, TA, 1, true>(g, dout, x, bias, dx, dbias, R, C);
  else bias_gelu_backward_run<T, TA, 1, false>(g, dout, x, bias, dx, dbias, R, C);
}

}  // namespace

void gelu_forward(const float* x, float* out, int64_t n, bool tanh_approx) {
  gelu_forward_impl(x, out, n, tanh_approx);
}
void gelu_forward(const bf16* x, bf16* out, int64_t n, bool tanh_approx) {
  gelu_forward_impl(x, out, n, tanh_approx);
}

void gelu_backward(const float* dout, const float* x, float* dx, int64_t n, bool tanh_approx) {
  gelu_backward_impl(dout, x, dx, n, tanh_approx);
}
void gelu_backward(const bf16* dout, const bf16* x, bf16* dx, int64_t n, bool tanh_approx) {
  gelu_backward_impl(dout, x, dx, n, tanh_approx);
}

void bias_gelu_forward(const float* x, const float* bias, float* out, int64_t R, int64_t C,
                       bool tanh_approx) {
  bias_gelu_forward_impl(x, bias, out, R, C, tanh_approx);
}
void bias_gelu_forward(const bf16* x, const bf16* bias, bf16* out, int64_t R, int64_t C,
                       bool tanh_approx) {
  bias_gelu_forward_impl(x, bias, out, R, C, tanh_approx);
}

void bias_gelu_backward(const float* dout, const float* x, const float* bias, float* dx,
                        float* dbias, int64_t R, int64_t C, bool tanh_approx) {
  bias_gelu_backward_impl(dout, x, bias, dx, dbias, R, C, tanh_approx);
}
void bias_gelu_backward(const bf16* dout, const bf16* x, const bf16* bias, bf16* dx, bf16* dbias,
                        int64_t R, int64_t C, bool tanh_approx) {
  bias_gelu_backward_impl(dout, x, bias, dx, dbias, R, C, tanh_approx);
}
void bias_gelu_backward(const bf16* dout, const bf16* x, const bf16* bias, bf16* dx, float* dbias,
                        int64_t R, int64_t C, bool tanh_approx) {
  bias_gelu_backward_impl(dout, x, bias, dx, dbias, R, C, tanh_approx);
}

}  // namespace vit::cuda
