// Launchers of cuda/kernels/patchify.cuh (declared in include/vit/cuda/patchify.hpp):
// shape checks, then one grid-stride kernel with 32-bit indices when they fit.
#include "common.cuh"
#include "kernels/patchify.cuh"
#include "vit/cuda/patchify.hpp"

namespace vit::cuda {

namespace {

void check_shape(const char* op, const void* in, const void* out, int64_t B, int64_t ch, int64_t H,
                 int64_t W, int64_t P) {
  VIT_CHECK(B >= 0 && ch >= 0 && H >= 0 && W >= 0 && P > 0 && H % P == 0 && W % P == 0, "cuda::", op,
            ": image (", B, ",", ch, ",", H, ",", W, ") is not divisible into ", P, "x", P, " patches");
  VIT_CHECK(B * ch * H * W == 0 || (in && out), "cuda::", op, ": null pointer");
}

template <class T>
void patchify_impl(const T* x, T* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  check_shape("patchify", x, cols, B, ch, H, W, P);
  const int64_t total = B * ch * H * W;
  if (total == 0) return;
  const auto g = kernels::patchify_launch(total);
  if (g.index32)
    detail::launch(kernels::patchify_kernel<int32_t, T>, g.grid, g.block, g.smem, x, cols,
                   static_cast<int32_t>(total), static_cast<int32_t>(ch), static_cast<int32_t>(H),
                   static_cast<int32_t>(W), static_cast<int32_t>(P));
  else
    detail::launch(kernels::patchify_kernel<int64_t, T>, g.grid, g.block, g.smem, x, cols, total,
                   ch, H, W, P);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void unpatchify_impl(const T* dcols, T* dx, int64_t B, int64_t ch, int64_t H, int64_t W,
                     int64_t P) {
  check_shape("unpatchify", dcols, dx, B, ch, H, W, P);
  const int64_t total = B * ch * H * W;
  if (total == 0) return;
  const auto g = kernels::patchify_launch(total);
  if (g.index32)
    detail::launch(kernels::unpatchify_kernel<int32_t, T>, g.grid, g.block, g.smem, dcols, dx,
                   static_cast<int32_t>(total), static_cast<int32_t>(ch), static_cast<int32_t>(H),
                   static_cast<int32_t>(W), static_cast<int32_t>(P));
  else
    detail::launch(kernels::unpatchify_kernel<int64_t, T>, g.grid, g.block, g.smem, dcols, dx,
                   total, ch, H, W, P);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void patchify(const float* x, float* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  patchify_impl(x, cols, B, ch, H, W, P);
}
void patchify(const bf16* x, bf16* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  patchify_impl(x, cols, B, ch, H, W, P);
}

void unpatchify(const float* dcols, float* dx, int64_t B, int64_t ch, int64_t H, int64_t W,
                int64_t P) {
  unpatchify_impl(dcols, dx, B, ch, H, W, P);
}
void unpatchify(const bf16* dcols, bf16* dx, int64_t B, int64_t ch, int64_t H, int64_t W,
                int64_t P) {
  unpatchify_impl(dcols, dx, B, ch, H, W, P);
}

}  // namespace vit::cuda
