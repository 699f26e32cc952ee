// One optimisation step of `vit train`, apart from everything around it
// (schedule, data cursor, logging, checkpoints): the seam where the step
// can move wholly onto the device without the loop changing shape.
#pragma once

#include <cmath>
#include <vector>
#include <vit/vit.hpp>

#include "train_state.hpp"

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
};

struct StepResult {
  double loss;       // the batch's mean loss
  double grad_norm;  // the global gradient norm before clipping
  /// A non-finite loss or gradient norm skips the update.
  bool updated() const { return std::isfinite(loss) && std::isfinite(grad_norm); }
};

/// One step on `batch` at the optimizer's current learning rate: zero_grad,
/// forward, loss, backward, clip, update. A step whose loss or gradient norm
/// is not finite leaves the weights as they were (its gradients are zeroed);
/// one that updates adds its loss and top-1 hits to `window` and `epoch`.
/// `poison_loss` makes the loss NaN, as a diverging batch would (for tests).
StepResult train_step(const StepContext& c, const vit::data::Batch& batch, bool poison_loss,
                      StepSums& window, StepSums& epoch);

}  // namespace vitcli
