// Launchers of the GELU kernels (cuda/kernels/gelu.cuh): argument checks, the
// flat maps of elementwise.cuh with the form chosen at compile time, one
// stream, no host sync.
#include "common.cuh"
#include "kernels/gelu.cuh"
#include "vit/cuda/gelu.hpp"

namespace vit::cuda {

void gelu_forward(const float* x, float* out, int64_t n, bool tanh_approx) {
  VIT_CHECK(n >= 0, "gelu_forward (cuda): negative size ", n);
  if (n == 0) return;
  VIT_CHECK(x && out, "gelu_forward (cuda): null x or out");
  const auto g = kernels::elementwise_launch(n);
  if (tanh_approx)
    detail::launch(kernels::ew_unary_kernel<kernels::GeluForwardOp<true>>, g.grid, g.block, g.smem,
                   x, out, n, kernels::GeluForwardOp<true>{});
  else
    detail::launch(kernels::ew_unary_kernel<kernels::GeluForwardOp<false>>, g.grid, g.block, g.smem,
                   x, out, n, kernels::GeluForwardOp<false>{});
  VIT_CUDA_LAUNCH_CHECK();
}

void gelu_backward(const float* dout, const float* x, float* dx, int64_t n, bool tanh_approx) {
  VIT_CHECK(n >= 0, "gelu_backward (cuda): negative size ", n);
  if (n == 0) return;
  VIT_CHECK(dout && x && dx, "gelu_backward (cuda): null dout, x or dx");
  const auto g = kernels::elementwise_launch(n);
  if (tanh_approx)
    detail::launch(kernels::ew_binary_kernel<kernels::GeluBackwardOp<true>>, g.grid, g.block,
                   g.smem, dout, x, dx, n, kernels::GeluBackwardOp<true>{});
  else
    detail::launch(kernels::ew_binary_kernel<kernels::GeluBackwardOp<false>>, g.grid, g.block,
                   g.smem, dout, x, dx, n, kernels::GeluBackwardOp<false>{});
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
