// Launchers of the bias + GELU kernels (cuda/kernels/gelu.cuh): argument checks,
// the kernels header's geometry, one stream, no host sync. dbias goes through a
// scratch buffer of per-row-chunk partials summed by a second kernel in fixed
// order: no float atomics, so the gradient is bitwise repeatable.
#include "common.cuh"
#include "kernels/gelu.cuh"
#include "vit/cuda/gelu.hpp"

namespace vit::cuda {
namespace {

bool aligned16(const void* p) { return p == nullptr || kernels::rows::aligned16(p); }

}  // namespace

void bias_gelu_forward(const float* x, const float* bias, float* out, int64_t R, int64_t C,
                       bool tanh_approx) {
  VIT_CHECK(R >= 0 && C >= 0, "bias_gelu_forward (cuda): negative size R ", R, ", C ", C);
  if (R == 0 || C == 0) return;
  VIT_CHECK(x && out, "bias_gelu_forward (cuda): null x or out");
  const bool vec4_ok = aligned16(x) && aligned16(bias) && aligned16(out);
  const auto l = kernels::bias_gelu_forward_geometry(R, C, bias != nullptr, vec4_ok);
  detail::launch(l.kernel, l.grid, l.block, l.smem, x, bias, out, l.n_vec, C, tanh_approx);
  VIT_CUDA_LAUNCH_CHECK();
}

void bias_gelu_backward(const float* dout, const float* x, const float* bias, float* dx,
                        float* dbias, int64_t R, int64_t C, bool tanh_approx) {
  VIT_CHECK(R >= 0 && C >= 0, "bias_gelu_backward (cuda): negative size R ", R, ", C ", C);
  if (R == 0 || C == 0) return;
  VIT_CHECK(dout && x && dx, "bias_gelu_backward (cuda): null dout, x or dx");
  const bool vec4_ok = aligned16(dout) && aligned16(x) && aligned16(bias) && aligned16(dx);
  if (!dbias) {
    const auto l = kernels::bias_gelu_backward_geometry(R, C, bias != nullptr, vec4_ok);
    detail::launch(l.kernel, l.grid, l.block, l.smem, dout, x, bias, dx, l.n_vec, C,
                                                            tanh_approx);
    VIT_CUDA_LAUNCH_CHECK();
    return;
  }
  const auto l = kernels::bias_gelu_backward_dbias_geometry(R, C, vec4_ok);
  detail::Scratch partials(static_cast<size_t>(l.partial_rows * C));
  detail::launch(l.kernel, l.grid, l.block, l.smem, dout, x, bias, dx, partials.p, R, C,
                                                          l.rows_per_chunk, tanh_approx);
  VIT_CUDA_LAUNCH_CHECK();
  const auto s = kernels::column_partials_geometry(C);
  detail::launch(s.kernel, s.grid, s.block, s.smem, partials.p, l.partial_rows, C, dbias,
                                                          nullptr, C);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
