// One optimisation step of `vit train` (see train_step.hpp). The order of
// operations is the run's numerics: a resumed run is bitwise the
// uninterrupted one only while it stays the same.
#include "train_step.hpp"

namespace vitcli {

TrainStep::TrainStep(const StepContext& c, int64_t batch, int64_t num_classes)
    : c_(c), guard_(c.device) {
  VIT_CHECK(c.accum_steps >= 1, "train step: accum_steps must be at least 1, got ", c.accum_steps);
  const vit::nn::VitConfig& cfg = c.model.config;
  const size_t K = static_cast<size_t>(c.accum_steps);
  images_ = vit::TensorF::empty({batch, cfg.in_chans, cfg.image_size, cfg.image_size}, c.device);
  for (size_t m = 0; m < K; ++m) labels_.push_back(vit::Tensor<int32_t>::empty({batch}, c.device));
  logits_.resize(K), losses_.resize(K);
  labels_host_ = vit::Tensor<int32_t>::empty({batch});
  if (c.soft_targets) soft_targets_ = vit::TensorF::empty({batch, num_classes}, c.device);
  c_.optimizer.set_skip_flag(guard_.skip_flag());
  if (data_parallel())
    reducer_ = std::make_unique<vit::dist::GradientReducer<float>>(*c.comm, c.params);
  // A graph replays one fixed piece of work: the plain step. Accumulation and
  // the hooks of data parallel run op by op.
  if (c.accum_steps == 1 && !data_parallel())
    captured_ = std::make_unique<vit::optim::CapturedStep>(
        c.model.dropout_generator(),
        [this] {
          micro_step(0);
          update();
        },
        c.cuda_graph && c.device == vit::Device::CUDA);
}

void TrainStep::micro_step(int64_t m) {
  const size_t i = static_cast<size_t>(m);
  if (m == 0) c_.optimizer.zero_grad();
  if (reducer_) reducer_->set_sync(m == c_.accum_steps - 1);
  // bf16: the twin's forward, float32 logits (a leaf) for a float32 loss.
  const vit::TensorF logits = c_.mixed ? c_.mixed->forward(images_) : c_.model.forward(images_);
  vit::TensorF loss = c_.soft_targets ? vit::cross_entropy(logits, soft_targets_)
                                      : vit::cross_entropy(logits, labels_[i], c_.label_smoothing);
  if (poison_) loss = vit::scale(loss, NAN);
  logits_[i] = logits, losses_[i] = loss;
  // Gradients of micro-batch means add up to the gradient of the step's mean.
  if (c_.accum_steps == 1) loss.backward();
  else vit::scale(loss, 1.0 / static_cast<double>(c_.accum_steps)).backward();
  // The bf16 graph, its gradients added into the float32 master gradients (the
  // data-parallel reducer then takes them all at finish()).
  if (c_.mixed) c_.mixed->backward();
}

void TrainStep::update() {
  if (reducer_) reducer_->finish();
  vit::TensorF loss = losses_[0];
  if (c_.accum_steps > 1 || data_parallel()) {
    // The step's loss as every rank sees it: the mean over micro-batches and ranks.
    vit::NoGradGuard no_grad;
    for (size_t m = 1; m < losses_.size(); ++m) loss = vit::add(loss, losses_[m]);
    loss = vit::scale(loss, 1.0 / static_cast<double>(c_.accum_steps));
    if (data_parallel()) {
      if (loss.shares_storage(losses_[0])) loss = loss.clone();
      c_.comm->allreduce_sum(loss);
      vit::ops::scale_forward(loss.device(), loss.data(), 1.f / static_cast<float>(c_.comm->size()),
                              loss.data(), 1);
    }
  }
  checked_loss_ = loss;
  const vit::TensorF norm = vit::optim::clip_grad_norm_in_step(c_.optimizer, c_.params, c_.clip);
  guard_.check(loss, norm);
  c_.optimizer.step();
  for (size_t m = 0; m < losses_.size(); ++m) guard_.accumulate(logits_[m], labels_[m], losses_[m]);
}

bool TrainStep::run(const vit::data::Batch& batch, bool poison_loss) {
  // The batch into the step's own buffers (queued copies on the GPU).
  VIT_CHECK(batch.images.shape() == images_.shape(), "train step: batch ", batch.images.shape(),
            " but the step was made for ", images_.shape());
  images_.copy_from(batch.images);
  for (int64_t i = 0; i < batch.size(); ++i)
    labels_host_.data()[i] = static_cast<int32_t>(batch.labels[i]);
  labels_[static_cast<size_t>(micro_)].copy_from(labels_host_);
  if (c_.soft_targets) soft_targets_.copy_from(batch.soft_targets);
  poison_ = poison_loss;
  if (captured_) {
    c_.optimizer.stage_lr();
    if (poison_loss) micro_step(0), update();  // outside the graph: the graph holds the healthy step
    else captured_->run();
    return true;
  }
  micro_step(micro_);
  if (++micro_ < c_.accum_steps) return false;
  micro_ = 0;
  c_.optimizer.stage_lr();
  update();
  return true;
}

}  // namespace vitcli
