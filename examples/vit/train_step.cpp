// One optimisation step of `vit train` (see train_step.hpp). The order of
// operations is the run's numerics: a resumed run is bitwise the
// uninterrupted one only while it stays the same.
#include "train_step.hpp"

#include <algorithm>

namespace vitcli {

namespace {

/// Images whose largest logit is their label (ties: the first class wins).
int64_t top1_hits(const vit::TensorF& logits, const std::vector<int64_t>& labels) {
  const vit::TensorF host = logits.to(vit::Device::CPU);
  const int64_t n = static_cast<int64_t>(labels.size()), K = host.shape()[1];
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = host.data() + i * K;
    correct += std::max_element(row, row + K) - row == labels[i];
  }
  return correct;
}

void add(StepSums& s, double loss, int64_t images, int64_t correct) {
  s.loss_sum += loss * images, s.images += images, s.correct += correct;
}

}  // namespace

StepResult train_step(const StepContext& c, const vit::data::Batch& batch, bool poison_loss,
                      StepSums& window, StepSums& epoch) {
  c.optimizer.zero_grad();
  const vit::TensorF logits = c.model.forward(batch.images.to(c.device));
  vit::TensorF loss = c.soft_targets ? vit::cross_entropy(logits, batch.soft_targets.to(c.device))
                                     : vit::cross_entropy(logits, batch.labels, c.label_smoothing);
  if (poison_loss) loss = vit::scale(loss, NAN);
  StepResult r;
  r.loss = loss.item();
  loss.backward();
  r.grad_norm = vit::optim::clip_grad_norm(c.params, c.clip);
  if (!r.updated()) {
    c.optimizer.zero_grad();  // skip the update; the weights stay as they were
    return r;
  }
  c.optimizer.step();
  const int64_t correct = top1_hits(logits, batch.labels);
  add(window, r.loss, batch.size(), correct);
  add(epoch, r.loss, batch.size(), correct);
  return r;
}

}  // namespace vitcli
