// Launchers of cuda/kernels/convert.cuh (declared in include/vit/cuda/convert.hpp):
// argument checks, one flat map each, one stream, no host sync.
#include "common.cuh"
#include "kernels/convert.cuh"
#include "vit/cuda/convert.hpp"

namespace vit::cuda {

namespace {

template <class TI, class TO>
void convert_impl(const TI* x, TO* out, int64_t n) {
  VIT_CHECK(n >= 0, "cuda::convert: negative size ", n);
  if (n == 0) return;
  VIT_CHECK(x && out, "cuda::convert: null pointer");
  const auto g = kernels::convert_launch(n);
  detail::launch(kernels::convert_kernel<TI, TO>, g.grid, g.block, g.smem, x, out, n);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void convert(const float* x, bf16* out, int64_t n) { convert_impl(x, out, n); }
void convert(const bf16* x, float* out, int64_t n) { convert_impl(x, out, n); }

void accumulate_widened(const bf16* g, float* acc, int64_t n) {
  VIT_CHECK(n >= 0, "cuda::accumulate_widened: negative size ", n);
  if (n == 0) return;
  VIT_CHECK(g && acc, "cuda::accumulate_widened: null pointer");
  const auto l = kernels::convert_launch(n);
  detail::launch(kernels::accumulate_widened_kernel<bf16>, l.grid, l.block, l.smem, g, acc, n);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
