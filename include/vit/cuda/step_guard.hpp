// The per-step decisions of a training step, made on the GPU so the host never
// waits for them (cuda/step_guard.cu): whether this step's loss and gradient
// norm are finite (the optimizer's skip flag and the trainer's non-finite
// counters), and the running loss / top-1 / image sums the trainer reads only
// on logging steps. Device pointers, work queued on vit::cuda::stream(),
// nothing read back; a step built from these can be captured as a CUDA graph.
// Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// Device counters of check_step_finite (int64[kStepCounters], zero them once).
enum StepCounter : int {
  kNonfiniteSteps = 0,  ///< non-finite steps so far (skipped updates)
  kNonfiniteRun = 1,    ///< consecutive non-finite steps ending with this one (0 after a good one)
  kUpdatesApplied = 2,  ///< finite steps so far (updates applied)
  kLongestRun = 3,      ///< the longest run of consecutive non-finite steps so far
  kStepCounters = 4
};

/// One thread: skip[0] = 1 if loss[0] or (norm non-null) norm[0] is NaN or
/// ±inf, else 0; then counters[kNonfiniteSteps] += skip,
/// counters[kNonfiniteRun] = skip ? run + 1 : 0, counters[kUpdatesApplied] += !skip,
/// counters[kLongestRun] = max(itself, the run): a reader that looks only now
/// and then still sees a streak that has ended since.
/// skip is the flag the optimizer launchers' StepInputs::skip reads.
void check_step_finite(const float* loss, const float* norm, float* skip, int64_t* counters);

/// Device accumulators of accumulate_metrics (double[kMetricSlots], zero them
/// at the start of a logging window or epoch).
enum MetricSlot : int {
  kLossSum = 0,   ///< Σ loss·B over the accumulated steps
  kCorrect = 1,   ///< Σ rows whose top-1 is the label (exact integers in double)
  kImages = 2,    ///< Σ B
  kMetricSlots = 3
};

/// logits: (B,K), labels: (B) int32, loss: one float (the batch mean) -> acc.
/// Unless skip is non-null and skip[0] != 0: acc[kLossSum] += double(loss[0])·B,
/// acc[kCorrect] += the rows b whose top-1 index equals labels[b], acc[kImages] += B.
/// The top-1 index is std::max_element's: the first maximal logit (a NaN at
/// index 0 wins, a NaN elsewhere never does). One block, fixed order:
/// bitwise repeatable. B, K >= 1.
void accumulate_metrics(const float* logits, const int32_t* labels, const float* loss,
                        const float* skip, int64_t B, int64_t K, double* acc);

}  // namespace vit::cuda
