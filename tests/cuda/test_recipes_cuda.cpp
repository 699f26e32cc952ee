// The recommended training recipes of docs/training.md, end to end on the GPU:
// the threaded loader with the recipe's augmentation, a tiny ViT with the
// recipe's dropout and drop-path, the trainer's step (loss, backward, clip
// into the optimizer, the device-side non-finite guard, AdamW, device-side
// metrics). The same steps run on a CPU twin from the same weights and
// batches: dropout and drop-path masks are a function of (seed, counter,
// element), so both draw the same masks and the losses must agree step by
// step to float rounding; the GPU run must also learn (loss down) and never
// skip a step.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>
#include <vit/vit.hpp>

using namespace vit;

namespace {

struct Recipe {
  explicit Recipe(const char* n) : name(n) {}
  const char* name;
  data::AugmentConfig augment;
  bool mixup = false;
  double dropout = 0.0, drop_path = 0.0, label_smoothing = 0.1;
};

/// 96 images 3x16x16 in 4 classes: a bright quadrant per class plus noise.
data::Dataset synthetic_data() {
  data::Dataset d;
  d.channels = 3, d.height = 16, d.width = 16;
  d.class_names = {"a", "b", "c", "d"};
  Generator g(3);
  for (int64_t i = 0; i < 96; ++i) {
    const int32_t y = static_cast<int32_t>(i % 4);
    d.labels.push_back(y);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t r = 0; r < 16; ++r)
        for (int64_t col = 0; col < 16; ++col) {
          const bool lit = (r < 8) == (y < 2) && (col < 8) == (y % 2 == 0);
          const double v = (lit ? 180 : 60) + 40 * g.normal(g.reserve(1));
          d.pixels.push_back(static_cast<uint8_t>(std::clamp(v, 0.0, 255.0)));
        }
  }
  return d;
}

nn::VitConfig tiny_config(const Recipe& r) {
  nn::VitConfig c;
  c.image_size = 16, c.in_chans = 3, c.patch_size = 4;
  c.dim = 32, c.depth = 2, c.heads = 2, c.mlp_dim = 64, c.num_classes = 4;  // head dim 16
  c.drop_rate = r.dropout, c.drop_path_rate = r.drop_path;
  c.seed = 11;
  return c;
}

/// One model, its optimizer and guard on one device: the trainer's step.
struct Run {
  nn::VisionTransformer<float> model;
  optim::AdamW<float> opt;
  optim::StepGuard<float> guard;
  std::vector<TensorF> params;
  Device dev;

  Run(const nn::VitConfig& cfg, Device d)
      : model(cfg), opt(init(model, d), {3e-3}), guard(d), dev(d) {
    params = model.parameters();
    opt.set_skip_flag(guard.skip_flag());
    model.train();
  }
  static std::vector<optim::ParamGroup<float>> init(nn::VisionTransformer<float>& m, Device d) {
    m.to(d);
    return optim::default_param_groups(m.named_parameters(), 0.05);
  }
  double step(const data::Batch& b, const Recipe& r) {
    opt.zero_grad();
    Tensor<int32_t> labels = Tensor<int32_t>::empty({b.size()});
    for (int64_t i = 0; i < b.size(); ++i) labels.data()[i] = static_cast<int32_t>(b.labels[i]);
    labels = labels.to(dev);
    const TensorF logits = model.forward(b.images.to(dev));
    TensorF loss = r.mixup ? cross_entropy(logits, b.soft_targets.to(dev))
                           : cross_entropy(logits, labels, r.label_smoothing);
    loss.backward();
    const TensorF norm = optim::clip_grad_norm_in_step(opt, params, 1.0);
    guard.check(loss, norm);
    opt.step();
    guard.accumulate(logits, labels, loss);
    return loss.item();  // the test reads every loss; the trainer does not
  }
};

void run_recipe(const Recipe& r) {
  INFO("recipe " << r.name);
  const data::Dataset ds = synthetic_data();
  data::LoaderConfig lc;
  lc.batch_size = 16, lc.seed = 5, lc.augment = true, lc.augment_config = r.augment;
  lc.normalization = data::Normalization{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  lc.mixup = r.mixup;
  lc.mixup_config.num_classes = 4, lc.mixup_config.label_smoothing = r.label_smoothing;
  data::Loader loader(ds, lc);
  loader.start(0, 0);
  const nn::VitConfig cfg = tiny_config(r);
  Run gpu(cfg, Device::CUDA), cpu(cfg, Device::CPU);
  std::vector<double> losses;
  for (int step = 0; step < 36; ++step) {
    const data::Batch& b = loader.next();
    const double lg = gpu.step(b, r);
    if (step < 6) {  // lockstep: the same masks, batches and weights on both devices
      const double lc_ = cpu.step(b, r);
      INFO("step " << step << ": gpu " << lg << ", cpu " << lc_);
      REQUIRE(std::abs(lg - lc_) <= 1e-3 * std::max(1.0, std::abs(lc_)));
    }
    REQUIRE(std::isfinite(lg));
    losses.push_back(lg);
  }
  const auto counts = gpu.guard.read();
  CHECK(counts.nonfinite_steps == 0);
  CHECK(counts.updates == 36);
  CHECK(gpu.opt.steps() == 36);
  CHECK(counts.images == 36 * 16);
  double first = 0, last = 0;
  for (int i = 0; i < 6; ++i) first += losses[i], last += losses[losses.size() - 1 - i];
  INFO("mean loss of the first 6 steps " << first / 6 << ", of the last 6 " << last / 6);
  CHECK(last < first);
}

}  // namespace

TEST_CASE("recipe: baseline crop and flip trains on the GPU as on the CPU", "[cuda][recipe]") {
  Recipe r{"baseline"};
  r.augment.crop_padding = 2;
  run_recipe(r);
}

TEST_CASE("recipe: RandAugment trains on the GPU as on the CPU", "[cuda][recipe]") {
  Recipe r{"randaugment"};
  r.augment.randaugment_n = 2, r.augment.randaugment_m = 9;
  run_recipe(r);
}

TEST_CASE("recipe: drop-path 0.1 and dropout 0.1 train on the GPU as on the CPU", "[cuda][recipe]") {
  Recipe r{"drop-path"};
  r.drop_path = 0.1, r.dropout = 0.1;
  run_recipe(r);
}

TEST_CASE("recipe: mixup and cutmix soft targets train on the GPU as on the CPU", "[cuda][recipe]") {
  Recipe r{"mixup-cutmix"};
  r.mixup = true;
  run_recipe(r);
}

TEST_CASE("recipe: random erasing trains on the GPU as on the CPU", "[cuda][recipe]") {
  Recipe r{"erasing"};
  r.augment.erasing_prob = 0.25;
  run_recipe(r);
}

TEST_CASE("recipe: a non-finite loss is skipped on the device and counted", "[cuda][recipe]") {
  Recipe r{"nan"};
  const nn::VitConfig cfg = tiny_config(r);
  Run gpu(cfg, Device::CUDA);
  const data::Dataset ds = synthetic_data();
  data::LoaderConfig lc;
  lc.batch_size = 16, lc.augment = false;
  lc.normalization = data::Normalization{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  data::Loader loader(ds, lc);
  loader.start(0, 0);
  gpu.step(loader.next(), r);
  std::map<std::string, std::vector<float>> before;  // copies, not views
  for (const auto& [name, t] : gpu.model.state_dict()) before[name] = t.to_vector();
  // A poisoned step: the loss is NaN, the weights must not move.
  gpu.opt.zero_grad();
  const data::Batch& b = loader.next();
  TensorF loss = scale(cross_entropy(gpu.model.forward(b.images.to(Device::CUDA)), b.labels, 0.1), NAN);
  loss.backward();
  gpu.guard.check(loss, optim::clip_grad_norm_in_step(gpu.opt, gpu.params, 1.0));
  gpu.opt.step();
  const auto c = gpu.guard.read();
  CHECK(c.nonfinite_steps == 1);
  CHECK(c.nonfinite_run == 1);
  CHECK(gpu.opt.steps() == 1);
  for (const auto& [name, t] : gpu.model.state_dict()) {
    INFO(name);
    CHECK(t.to_vector() == before.at(name));
  }
}
