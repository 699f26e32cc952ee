// StepGuard: the per-step bookkeeping of a training loop, kept where the step
// runs so that the host never waits for it. After backward and clipping,
// check() sets a skip flag when the loss or the gradient norm is not finite
// (the optimizer reads it and leaves the weights as they were) and counts
// such steps; accumulate() adds the step's loss, top-1 hits and images to
// running sums. read() brings counters and sums to the host: the one wait,
// for logging steps and epoch ends. On the CPU the same code runs on host
// memory, so a trainer is written once for every device.
#pragma once

#include <algorithm>
#include <cmath>

#include "vit/core/tensor.hpp"
#include "vit/cuda/step_guard.hpp"
#include "vit/ops/dispatch.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::optim {

template <class T>
class StepGuard {
 public:
  struct Counts {
    int64_t nonfinite_steps = 0;  // skipped so far
    int64_t nonfinite_run = 0;    // consecutive skipped steps, ending with the last one
    int64_t updates = 0;          // steps whose update was applied
    int64_t longest_run = 0;      // the longest run of skipped steps so far
    double loss_sum = 0;          // Σ loss·B over the accumulated finite steps
    int64_t correct = 0;          // top-1 hits over them
    int64_t images = 0;
  };

  explicit StepGuard(Device dev = Device::CPU)
      : skip_(Tensor<float>::zeros({1}, dev)),
        counters_(Tensor<int64_t>::zeros({cuda::kStepCounters}, dev)),
        sums_(Tensor<double>::zeros({3}, dev)) {}

  Device device() const { return skip_.device(); }
  /// One float: 1 after check() found a non-finite loss or norm. Give it to
  /// the optimizer once with Optimizer::set_skip_flag.
  const Tensor<float>& skip_flag() const { return skip_; }

  /// Sets the skip flag from the loss (one element) and the gradient norm
  /// (one element, or undefined), and updates the counters.
  void check(const Tensor<T>& loss, const Tensor<T>& grad_norm) {
    VIT_CHECK(loss.numel() == 1 && loss.device() == device() &&
                  (!grad_norm.defined() || (grad_norm.numel() == 1 && grad_norm.device() == device())),
              "StepGuard::check: loss ", loss.shape(), " on ", device_name(loss.device()),
              " and grad norm on the guard's device ", device_name(device()), " expected");
    const T* norm = grad_norm.defined() ? grad_norm.data() : nullptr;
    if (device() == Device::CUDA) {
      if constexpr (ops::detail::kCudaFloat<T>)
        cuda::check_step_finite(loss.data(), norm, skip_.data(), counters_.data());
      else ops::detail::cuda_branch_missing("StepGuard");
      return;
    }
    const bool bad = !std::isfinite(static_cast<double>(loss.data()[0])) ||
                     (norm && !std::isfinite(static_cast<double>(norm[0])));
    int64_t* c = counters_.data();
    skip_.data()[0] = bad ? 1.f : 0.f;
    c[cuda::kNonfiniteSteps] += bad;
    c[cuda::kNonfiniteRun] = bad ? c[cuda::kNonfiniteRun] + 1 : 0;
    c[cuda::kUpdatesApplied] += !bad;
    c[cuda::kLongestRun] = std::max(c[cuda::kLongestRun], c[cuda::kNonfiniteRun]);
  }

  /// Adds the step's loss·B, top-1 hits of logits (B,K) against labels (B)
  /// and B to the sums, unless the step was skipped.
  void accumulate(const Tensor<T>& logits, const Tensor<int32_t>& labels, const Tensor<T>& loss) {
    VIT_CHECK(logits.dim() == 2 && labels.shape() == Shape{logits.shape()[0]} &&
                  logits.device() == device() && labels.device() == device() && loss.numel() == 1,
              "StepGuard::accumulate: logits ", logits.shape(), ", labels ", labels.shape(),
              " on the guard's device ", device_name(device()), " expected");
    const int64_t B = logits.shape()[0], K = logits.shape()[1];
    if (device() == Device::CUDA) {
      if constexpr (ops::detail::kCudaFloat<T>)
        cuda::accumulate_metrics(logits.data(), labels.data(), loss.data(), skip_.data(), B, K,
                                 sums_.data());
      else ops::detail::cuda_branch_missing("StepGuard");
      return;
    }
    if (skip_.data()[0] != 0.f) return;
    int64_t correct = 0;
    for (int64_t b = 0; b < B; ++b) {
      const T* row = logits.data() + b * K;
      correct += std::max_element(row, row + K) - row == labels.data()[b];
    }
    double* s = sums_.data();
    s[cuda::kLossSum] += static_cast<double>(loss.data()[0]) * B;
    s[cuda::kCorrect] += correct;
    s[cuda::kImages] += B;
  }

  /// Counters and sums on the host (on CUDA this waits for the queued work).
  Counts read() const {
    const std::vector<int64_t> c = counters_.to_vector();
    const std::vector<double> s = sums_.to_vector();
    Counts r;
    r.nonfinite_steps = c[cuda::kNonfiniteSteps], r.nonfinite_run = c[cuda::kNonfiniteRun];
    r.updates = c[cuda::kUpdatesApplied], r.longest_run = c[cuda::kLongestRun];
    r.loss_sum = s[cuda::kLossSum];
    r.correct = static_cast<int64_t>(std::llround(s[cuda::kCorrect]));
    r.images = static_cast<int64_t>(std::llround(s[cuda::kImages]));
    return r;
  }
  /// Zeroes the sums (a new logging window); the counters run on.
  void reset_sums() { sums_.fill_(0.0); }
  /// Sets the counters (a resumed run; the longest run restarts at the current one).
  void set_counters(int64_t nonfinite_steps, int64_t nonfinite_run, int64_t updates) {
    counters_.copy_from(Tensor<int64_t>::from_data(
        {cuda::kStepCounters}, {nonfinite_steps, nonfinite_run, updates, nonfinite_run}));
  }

 private:
  Tensor<float> skip_;
  Tensor<int64_t> counters_;
  Tensor<double> sums_;
};

}  // namespace vit::optim
