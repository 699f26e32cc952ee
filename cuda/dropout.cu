// Launchers of cuda/kernels/dropout.cuh (declared in include/vit/cuda/dropout.hpp):
// argument checks, the keep threshold computed once here in double, one stream,
// no host sync.
#include "common.cuh"
#include "kernels/dropout.cuh"
#include "vit/cuda/dropout.hpp"

namespace vit::cuda {

namespace {

template <class T>
void dropout_mask_impl(T* mask, int64_t groups, uint64_t seed, uint64_t counter0, double p,
                       float keep_scale, const uint64_t* counter_shift) {
  VIT_CHECK(groups >= 0, "cuda::dropout_mask: negative size ", groups);
  if (groups == 0) return;
  VIT_CHECK(mask, "cuda::dropout_mask: null pointer");
  const auto g = kernels::dropout_launch(groups);
  detail::launch(kernels::dropout_mask_kernel_t<T>, g.grid, g.block, g.smem, mask, groups, seed,
                 counter0, counter_shift, kernels::keep_threshold(p), keep_scale);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void apply_group_mask_impl(const T* x, const float* mask, T* out, int64_t n, int64_t inner) {
  VIT_CHECK(n >= 0, "cuda::apply_group_mask: negative size ", n);
  if (n == 0) return;
  VIT_CHECK(inner >= 1, "cuda::apply_group_mask: group size ", inner, " (need >= 1)");
  VIT_CHECK(x && mask && out, "cuda::apply_group_mask: null pointer");
  const auto l = kernels::apply_group_mask_geometry(x, out, n, inner);
  detail::launch(l.kernel, l.grid, l.block, l.smem, x, mask, out, n, inner);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void dropout_mask(float* mask, int64_t groups, uint64_t seed, uint64_t counter0, double p,
                  float keep_scale, const uint64_t* counter_shift) {
  dropout_mask_impl(mask, groups, seed, counter0, p, keep_scale, counter_shift);
}
void dropout_mask(bf16* mask, int64_t groups, uint64_t seed, uint64_t counter0, double p,
                  float keep_scale, const uint64_t* counter_shift) {
  dropout_mask_impl(mask, groups, seed, counter0, p, keep_scale, counter_shift);
}

void apply_group_mask(const float* x, const float* mask, float* out, int64_t n, int64_t inner) {
  apply_group_mask_impl(x, mask, out, n, inner);
}
void apply_group_mask(const bf16* x, const float* mask, bf16* out, int64_t n, int64_t inner) {
  apply_group_mask_impl(x, mask, out, n, inner);
}

}  // namespace vit::cuda
