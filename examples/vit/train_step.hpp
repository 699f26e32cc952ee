// One optimisation step of `vit train`, apart from everything around it
// (schedule, data cursor, logging, checkpoints). The step never waits for the
// device: the batch goes into buffers that stay put, the non-finite check and
// the metric sums stay on the device (optim::StepGuard), clipping hands its
// scale to the optimizer, and a non-finite step is skipped by the optimizer's
// device-side flag. On the GPU the step is captured once as a CUDA graph and
// replayed (optim::CapturedStep). The loop reads the guard only when it logs.
#pragma once

#include <cmath>
#include <memory>
#include <vector>
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
};

class TrainStep {
 public:
  TrainStep(const StepContext& c, int64_t batch, int64_t num_classes);

  /// Queues one step on `batch` at the optimizer's current learning rate:
  /// zero_grad, forward, loss, backward, clip, the finite check, the update
  /// (skipped on the device if the loss or gradient norm is not finite) and
  /// the metric sums. `poison_loss` makes the loss NaN, as a diverging batch
  /// would (for tests); such a step runs outside the graph.
  void run(const vit::data::Batch& batch, bool poison_loss);

  vit::optim::StepGuard<float>& guard() { return guard_; }
  /// The last step's loss (one element on the device): read it only where waiting is fine.
  const vit::TensorF& last_loss() const { return loss_; }
  /// Whether steps are replayed as a CUDA graph.
  bool uses_graph() const { return captured_->uses_graph(); }

 private:
  void step();  // the work run() queues, as captured

  StepContext c_;
  vit::optim::StepGuard<float> guard_;
  vit::TensorF images_, soft_targets_, loss_;
  vit::Tensor<int32_t> labels_, labels_host_;
  bool poison_ = false;
  std::unique_ptr<vit::optim::CapturedStep> captured_;
};

}  // namespace vitcli
