// quickstart: the smallest complete use of the library. Builds a small ViT
// (cifar-tiny's layout at a third of its width) for four classes of synthetic
// 32x32 images (horizontal stripes, vertical stripes, checkers, a blob, each
// with a random phase or position plus pixel noise), trains it with
// AdamW + warmup/cosine + label smoothing, and prints the loss falling and the
// accuracy on held-out images. Real data sets arrive with the `vit` trainer.
#include <vit/vit.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

// One synthetic image of class `label` (0..3), values roughly in [-1, 1].
void draw(float* img, int label, vit::Generator& g) {
  const uint64_t c = g.reserve(3 * 32 * 32 + 2);
  const int phase = static_cast<int>(g.uniform(c) * 8), period = 2;
  const double cx = 8 + 16 * g.uniform(c + 1);
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        double v = 0;
        switch (label) {
          case 0: v = ((y + phase) / period) % 2 ? 1 : -1; break;               // horizontal stripes
          case 1: v = ((x + phase) / period) % 2 ? 1 : -1; break;               // vertical stripes
          case 2: v = (((x + phase) / period + (y / period)) % 2) ? 1 : -1; break;  // checkers
          default: v = std::exp(-((x - cx) * (x - cx) + (y - 16) * (y - 16)) / 40.0) * 2 - 1;  // blob
        }
        const double noise = g.uniform(c + 2 + (ch * 32 + y) * 32 + x) - 0.5;
        img[(ch * 32 + y) * 32 + x] = static_cast<float>(0.7 * v + noise);
      }
}

void make_batch(vit::TensorF& x, std::vector<int64_t>& y, vit::Generator& g) {
  const int64_t B = x.shape()[0];
  for (int64_t b = 0; b < B; ++b) {
    y[b] = static_cast<int64_t>(g.next_u64() % 4);
    draw(x.data() + b * 3 * 32 * 32, static_cast<int>(y[b]), g);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 100;
    const int64_t batch = 32;
    if (steps <= 0) throw vit::Error("usage: quickstart [STEPS > 0]");
    vit::set_num_threads(vit::num_threads());

    vit::nn::VitConfig config = vit::nn::vit_preset("cifar-tiny");
    config.dim = 64, config.heads = 4, config.mlp_dim = 128, config.depth = 4, config.num_classes = 4;
    auto model = std::make_unique<vit::nn::VisionTransformer<float>>(config);
    std::printf("ViT 32x32/4, dim 64, depth 4: %lld parameters, %d threads\n",
                static_cast<long long>(model->num_parameters()), vit::num_threads());
    vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model->named_parameters(), 0.05),
                                 {2e-3});
    vit::optim::LrSchedule sched;
    sched.base_lr = 2e-3, sched.warmup_steps = steps / 10, sched.total_steps = steps, sched.min_lr = 1e-5;

    vit::Generator data(1), held_out(2);
    vit::TensorF x = vit::TensorF::empty({batch, 3, 32, 32});
    std::vector<int64_t> y(batch);
    const auto t0 = std::chrono::steady_clock::now();
    for (int step = 0; step < steps; ++step) {
      make_batch(x, y, data);
      opt.set_lr(sched.at(step));
      opt.zero_grad();
      vit::TensorF loss = vit::cross_entropy(model->forward(x), y, /*label_smoothing=*/0.1);
      loss.backward();
      vit::optim::clip_grad_norm(model->parameters(), 1.0);
      opt.step();
      if (step % 5 == 0 || step == steps - 1)
        std::printf("step %3d  lr %.2e  loss %.4f\n", step, opt.lr(), loss.item());
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    model->eval();
    vit::NoGradGuard no_grad;
    int correct = 0, total = 0;
    for (int i = 0; i < 8; ++i) {
      make_batch(x, y, held_out);
      vit::TensorF logits = model->forward(x);
      for (int64_t b = 0; b < batch; ++b) {
        int64_t best = 0;
        for (int64_t k = 1; k < 4; ++k)
          if (logits(b, k) > logits(b, best)) best = k;
        correct += best == y[b];
        ++total;
      }
    }
    std::printf("held-out accuracy %.1f%% (%d/%d), %.1f img/s while training\n", 100.0 * correct / total,
                correct, total, steps * batch / secs);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
  }
}
