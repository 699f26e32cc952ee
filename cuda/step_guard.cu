// Launchers of cuda/kernels/step_guard.cuh (declared in include/vit/cuda/step_guard.hpp):
// argument checks, one single-block launch each, nothing read back.
#include "common.cuh"
#include "kernels/step_guard.cuh"
#include "vit/cuda/step_guard.hpp"

namespace vit::cuda {

void check_step_finite(const float* loss, const float* norm, float* skip, int64_t* counters) {
  VIT_CHECK(loss && skip && counters,
            "cuda::check_step_finite: loss, skip and counters must be device pointers (norm may be null)");
  const auto g = kernels::check_step_finite_launch();
  detail::launch(kernels::check_step_finite_kernel, g.grid, g.block, g.smem, loss, norm, skip, counters);
  VIT_CUDA_LAUNCH_CHECK();
}

void accumulate_metrics(const float* logits, const int32_t* labels, const float* loss, const float* skip,
                        int64_t B, int64_t K, double* acc) {
  VIT_CHECK(B >= 1 && K >= 1, "cuda::accumulate_metrics: need B >= 1 and K >= 1, got B=", B, " K=", K);
  VIT_CHECK(logits && labels && loss && acc,
            "cuda::accumulate_metrics: logits, labels, loss and acc must be device pointers");
  const auto g = kernels::metrics_launch();
  detail::launch(kernels::accumulate_metrics_kernel, g.grid, g.block, g.smem, logits, labels, loss, skip, B,
                 K, acc);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
