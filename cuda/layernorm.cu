// Launchers of the LayerNorm kernels (cuda/kernels/layernorm.cuh): argument
// checks, the geometry the kernels header chooses, one stream, no host sync.
// The float and bf16 overloads share one template per launcher.
// The backward's weight/bias gradients go through a scratch buffer of per-block
// float partials from the caching allocator, summed by a second kernel in fixed
// order: no float atomics, so gradients are bitwise repeatable.
#include "common.cuh"
#include "kernels/layernorm.cuh"
#include "vit/cuda/layernorm.hpp"

namespace vit::cuda {
namespace {

bool aligned16(const void* p) { return p == nullptr || kernels::rows::aligned16(p); }

template <class T>
void forward_impl(const T* x, const T* weight, const T* bias, T* out, float* mean, float* rstd,
                  int64_t R, int64_t C, float eps) {
  VIT_CHECK(R >= 0 && C >= 0, "layer_norm_forward (cuda): negative size R ", R, ", C ", C);
  if (R == 0) return;
  VIT_CHECK(C > 0, "layer_norm_forward (cuda): ", R, " rows of length 0");
  VIT_CHECK(x && weight && bias && out, "layer_norm_forward (cuda): null x, weight, bias or out");
  VIT_CHECK(eps >= 0.f, "layer_norm_forward (cuda): eps must be non-negative, got ", eps);
  const bool vec_ok = aligned16(x) && aligned16(weight) && aligned16(bias) && aligned16(out);
  const auto l = kernels::layer_norm_forward_geometry<T>(R, C, vec_ok);
  detail::launch(l.kernel, l.grid, l.block, l.smem, x, weight, bias, out, mean, rstd, R, C, eps);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void backward_impl(const T* dout, const T* x, const T* weight, const float* mean,
                   const float* rstd, T* dx, T* dweight, T* dbias, int64_t R, int64_t C) {
  VIT_CHECK(R >= 0 && C >= 0, "layer_norm_backward (cuda): negative size R ", R, ", C ", C);
  if (R == 0 || C == 0 || (!dx && !dweight && !dbias)) return;
  VIT_CHECK(dout && x && weight && mean && rstd,
            "layer_norm_backward (cuda): null dout, x, weight, mean or rstd");
  const bool vec_ok = aligned16(dout) && aligned16(x) && aligned16(weight) && aligned16(dx);
  const auto l = kernels::layer_norm_backward_geometry<T>(R, C, vec_ok);
  const bool want_params = dweight || dbias;
  detail::Scratch partials(want_params ? static_cast<size_t>(l.partial_rows * 2 * C) : 0);
  detail::launch(l.kernel, l.grid, l.block, want_params ? l.smem : 0, dout, x, weight, mean, rstd,
                 dx, want_params ? partials.p : nullptr, R, C, l.rows_per_block);
  VIT_CUDA_LAUNCH_CHECK();
  if (want_params) {
    const auto s = kernels::column_partials_geometry<T>(2 * C);
    detail::launch(s.kernel, s.grid, s.block, s.smem, static_cast<const float*>(partials.p),
                   l.partial_rows, 2 * C, dweight, dbias, C);
    VIT_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* out,
                        float* mean, float* rstd, int64_t R, int64_t C, float eps) {
  forward_impl(x, weight, bias, out, mean, rstd, R, C, eps);
}
void layer_norm_forward(const bf16* x, const bf16* weight, const bf16* bias, bf16* out,
                        float* mean, float* rstd, int64_t R, int64_t C, float eps) {
  forward_impl(x, weight, bias, out, mean, rstd, R, C, eps);
}

void layer_norm_backward(const float* dout, const float* x, const float* weight, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, int64_t R,
                         int64_t C) {
  backward_impl(dout, x, weight, mean, rstd, dx, dweight, dbias, R, C);
}
void layer_norm_backward(const bf16* dout, const bf16* x, const bf16* weight, const float* mean,
                         const float* rstd, bf16* dx, bf16* dweight, bf16* dbias, int64_t R,
                         int64_t C) {
  backward_impl(dout, x, weight, mean, rstd, dx, dweight, dbias, R, C);
}

}  // namespace vit::cuda
