// One optimisation step of `vit train` (see train_step.hpp). The order of
// operations is the run's numerics: a resumed run is bitwise the
// uninterrupted one only while it stays the same.
#include "train_step.hpp"

namespace vitcli {

TrainStep::TrainStep(const StepContext& c, int64_t batch, int64_t num_classes)
    : c_(c), guard_(c.device) {
  const vit::nn::VitConfig& cfg = c.model.config;
  images_ = vit::TensorF::empty({batch, cfg.in_chans, cfg.image_size, cfg.image_size}, c.device);
  labels_ = vit::Tensor<int32_t>::empty({batch}, c.device);
  labels_host_ = vit::Tensor<int32_t>::empty({batch});
  if (c.soft_targets) soft_targets_ = vit::TensorF::empty({batch, num_classes}, c.device);
  c_.optimizer.set_skip_flag(guard_.skip_flag());
  captured_ = std::make_unique<vit::optim::CapturedStep>(
      c.model.dropout_generator(), [this] { step(); }, c.cuda_graph && c.device == vit::Device::CUDA);
}

void TrainStep::step() {
  c_.optimizer.zero_grad();
  const vit::TensorF logits = c_.model.forward(images_);
  loss_ = c_.soft_targets ? vit::cross_entropy(logits, soft_targets_)
                          : vit::cross_entropy(logits, labels_, c_.label_smoothing);
  if (poison_) loss_ = vit::scale(loss_, NAN);
  loss_.backward();
  const vit::TensorF norm = vit::optim::clip_grad_norm_in_step(c_.optimizer, c_.params, c_.clip);
  guard_.check(loss_, norm);
  c_.optimizer.step();
  guard_.accumulate(logits, labels_, loss_);
}

void TrainStep::run(const vit::data::Batch& batch, bool poison_loss) {
  // The batch into the step's own buffers (queued copies on the GPU).
  VIT_CHECK(batch.images.shape() == images_.shape(), "train step: batch ", batch.images.shape(),
            " but the step was made for ", images_.shape());
  images_.copy_from(batch.images);
  for (int64_t i = 0; i < batch.size(); ++i)
    labels_host_.data()[i] = static_cast<int32_t>(batch.labels[i]);
  labels_.copy_from(labels_host_);
  if (c_.soft_targets) soft_targets_.copy_from(batch.soft_targets);
  c_.optimizer.stage_lr();
  poison_ = poison_loss;
  if (poison_loss) step();  // outside the graph: the graph holds the healthy step
  else captured_->run();
}

}  // namespace vitcli
