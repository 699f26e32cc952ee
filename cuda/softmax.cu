// Launchers of the row softmax kernels (cuda/kernels/softmax.cuh): argument
// checks, the kernels header's geometry, one stream, no host sync. The float
// and bf16 overloads share one template per launcher.
#include "common.cuh"
#include "kernels/softmax.cuh"
#include "vit/cuda/softmax.hpp"

namespace vit::cuda {
namespace {

template <class T>
void forward_impl(const T* x, T* out, int64_t R, int64_t n) {
  VIT_CHECK(R >= 0 && n >= 0, "softmax_forward (cuda): negative size R ", R, ", n ", n);
  if (R == 0) return;
  VIT_CHECK(n > 0, "softmax_forward (cuda): ", R, " rows of length 0");
  VIT_CHECK(x && out, "softmax_forward (cuda): null x or out");
  const bool vec_ok = kernels::rows::aligned16(x) && kernels::rows::aligned16(out);
  const auto l = kernels::softmax_forward_geometry<T>(R, n, vec_ok);
  detail::launch(l.kernel, l.grid, l.block, l.smem, x, out, R, n);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void backward_impl(const T* y, const T* dy, T* dx, int64_t R, int64_t n) {
  VIT_CHECK(R >= 0 && n >= 0, "softmax_backward (cuda): negative size R ", R, ", n ", n);
  if (R == 0 || n == 0) return;
  VIT_CHECK(y && dy && dx, "softmax_backward (cuda): null y, dy or dx");
  const bool vec_ok =
      kernels::rows::aligned16(y) && kernels::rows::aligned16(dy) && kernels::rows::aligned16(dx);
  const auto l = kernels::softmax_backward_geometry<T>(R, n, vec_ok);
  detail::launch(l.kernel, l.grid, l.block, l.smem, y, dy, dx, R, n);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void softmax_forward(const float* x, float* out, int64_t R, int64_t n) {
  forward_impl(x, out, R, n);
}
void softmax_forward(const bf16* x, bf16* out, int64_t R, int64_t n) { forward_impl(x, out, R, n); }

void softmax_backward(const float* y, const float* dy, float* dx, int64_t R, int64_t n) {
  backward_impl(y, dy, dx, R, n);
}
void softmax_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t R, int64_t n) {
  backward_impl(y, dy, dx, R, n);
}

}  // namespace vit::cuda
