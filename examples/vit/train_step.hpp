// One optimisation step of `vit train`, apart from everything around it
// (schedule, data cursor, logging, checkpoints). The step never waits for the
// device: the batch goes into buffers that stay put, the non-finite check and
// the metric sums stay on the device (optim::StepGuard), clipping hands its
// scale to the optimizer, and a non-finite step is skipped by the optimizer's
// device-side flag. On the GPU the step is captured once as a CUDA graph and
// replayed (optim::CapturedStep). The loop reads the guard only when it logs.
//
// Data parallel and accumulation: a step is `accum_steps` micro-batches whose
// gradients add up (each loss divided by accum_steps); in a job of several
// ranks the last micro-batch's backward averages the gradients over ranks as
// it goes (dist::GradientReducer), and the finite check sees the loss averaged
// over ranks too, so every rank skips or updates alike.
#pragma once

#include <cmath>
#include <memory>
#include <vector>
#include <vit/dist/gradient_reducer.hpp>
#include <vit/nn/mixed_precision.hpp>
#include <vit/vit.hpp>

namespace vitcli {

/// What every step uses, fixed for the run.
struct StepContext {
  vit::nn::VisionTransformer<float>& model;
  vit::optim::Optimizer<float>& optimizer;
  std::vector<vit::TensorF> params;  // the trainable ones, whose gradient norm is clipped
  vit::Device device;
  bool soft_targets;       // mixup/cutmix: the batch's soft targets, else its hard labels
  double label_smoothing;  // for hard labels (soft targets carry their own)
  double clip;             // bound on the global gradient norm; INFINITY: off
  bool cuda_graph;         // capture the step as a CUDA graph (on the GPU only)
  int64_t accum_steps = 1;                 // micro-batches per optimizer step
  vit::dist::Communicator* comm = nullptr;  // the job's, for tensors on `device`; null: one process
  vit::nn::MixedPrecision* mixed = nullptr;  // --precision bf16: forward and backward in bf16
};

class TrainStep {
 public:
  TrainStep(const StepContext& c, int64_t batch, int64_t num_classes);

  /// Queues one micro-batch: forward, loss, backward (gradients add up). The
  /// last of accum_steps also queues the average over ranks, clip, the
  /// finite check, the update (skipped on the device if the loss or gradient
  /// norm is not finite) and the metric sums, and returns true.
  /// `poison_loss` makes the loss NaN, as a diverging batch would (for
  /// tests); such a step runs outside the graph.
  bool run(const vit::data::Batch& batch, bool poison_loss);

  vit::optim::StepGuard<float>& guard() { return guard_; }
  /// The last step's loss as checked (averaged over micro-batches and ranks;
  /// one element on the device): read it only where waiting is fine.
  const vit::TensorF& last_loss() const { return checked_loss_; }
  /// Whether steps are replayed as a CUDA graph.
  bool uses_graph() const { return captured_ && captured_->uses_graph(); }
  /// Seconds the last step waited for gradient sums backward did not hide.
  double last_reduce_wait_seconds() const { return reducer_ ? reducer_->last_wait_seconds() : 0; }

 private:
  void micro_step(int64_t m);  // the work run() queues for micro-batch m
  void update();               // average, clip, check, step, metrics
  bool data_parallel() const { return c_.comm && c_.comm->size() > 1; }

  StepContext c_;
  vit::optim::StepGuard<float> guard_;
  vit::TensorF images_, soft_targets_, checked_loss_;
  std::vector<vit::Tensor<int32_t>> labels_;  // per micro-batch: the metric sums read them after the update
  vit::Tensor<int32_t> labels_host_;
  std::vector<vit::TensorF> logits_, losses_;  // per micro-batch, until the metric sums
  int64_t micro_ = 0;  // the next micro-batch of the current step
  bool poison_ = false;
  std::unique_ptr<vit::dist::GradientReducer<float>> reducer_;
  std::unique_ptr<vit::optim::CapturedStep> captured_;  // one micro-batch per step only
};

}  // namespace vitcli
