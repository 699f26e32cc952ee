// bf16 models and mixed-precision training (nn/mixed_precision.hpp) on the
// CPU reference kernels: a VisionTransformer<bf16> against the float64 model
// with the same weights, the master gradients of MixedPrecision against the
// float64 gradients, the optimizer refreshing the bf16 weights bit for bit,
// training that learns, and bitwise repeatability.
#include "support/check.hpp"
#include "support/tiny_vit.hpp"

#include <vit/nn/mixed_precision.hpp>

using namespace vit;

namespace {

/// Copies `from`'s parameters into `to` by name, converted (rounded to bf16 when To is bf16).
template <class To, class From>
void copy_weights(const nn::VisionTransformer<From>& from, nn::VisionTransformer<To>& to) {
  auto src = from.named_parameters();
  auto dst = to.named_parameters();
  REQUIRE(src.size() == dst.size());
  for (size_t i = 0; i < src.size(); ++i) {
    REQUIRE(src[i].first == dst[i].first);
    dst[i].second.copy_from(src[i].second.template to_dtype<To>());
  }
}

/// float64 weights that bf16 holds exactly, so both models start from the same numbers.
void round_weights_to_bf16(nn::VisionTransformer<double>& m) {
  for (auto& [name, p] : m.named_parameters()) p.copy_from(p.to_dtype<bf16>().to_dtype<double>());
}

TensorD images_for(const nn::VitConfig& c, int64_t B, uint64_t seed) {
  return test::randn<double>({B, c.in_chans, c.image_size, c.image_size}, seed)
      .to_dtype<bf16>()
      .to_dtype<double>();
}

std::vector<int64_t> labels_for(int64_t B, int64_t K) {
  std::vector<int64_t> y(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) y[static_cast<size_t>(b)] = (3 * b + 1) % K;
  return y;
}

}  // namespace

TEST_CASE("a bf16 ViT's logits and gradients are the float64 model's within bf16 bounds",
          "[nn][bf16]") {
  const nn::VitConfig cfg = test::tiny_vit_config(32);
  nn::VisionTransformer<double> ref(cfg);
  round_weights_to_bf16(ref);
  nn::VisionTransformer<bf16> low(cfg);
  copy_weights(ref, low);
  ref.eval(), low.eval();
  const TensorD x = images_for(cfg, 4, 5);
  const auto y = labels_for(4, cfg.num_classes);

  const TensorD ref_logits = ref.forward(x);
  const TensorBF16 low_logits = low.forward(x.to_dtype<bf16>());
  test::require_relative_l2(low_logits, ref_logits);

  cross_entropy(ref_logits, y, 0.1).backward();
  cross_entropy(low_logits, y, 0.1).backward();
  auto rp = ref.named_parameters();
  auto lp = low.named_parameters();
  for (size_t i = 0; i < rp.size(); ++i) {
    INFO("gradient of " << rp[i].first);
    REQUIRE(lp[i].second.grad().defined());
    // Gradients pass through both blocks' bf16 activations: a few roundings each.
    test::require_relative_l2(lp[i].second.grad(), rp[i].second.grad(), 3e-2);
  }
}

TEST_CASE("MixedPrecision: float32 logits, float32 master gradients, bf16 weights refreshed by the step",
          "[nn][bf16]") {
  const nn::VitConfig cfg = test::tiny_vit_config(32);
  nn::VisionTransformer<double> ref(cfg);
  round_weights_to_bf16(ref);
  nn::VisionTransformer<float> master(cfg);
  copy_weights(ref, master);
  nn::MixedPrecision mp(master);
  // The twin starts as the master rounded.
  for (auto& [name, p] : mp.compute().named_parameters()) {
    const TensorF m = [&] {
      for (auto& [n, q] : master.named_parameters())
        if (n == name) return q;
      return TensorF();
    }();
    for (int64_t i = 0; i < p.numel(); ++i) REQUIRE(p.data()[i].bits == bf16(m.data()[i]).bits);
  }
  const TensorD x = images_for(cfg, 3, 9);
  const auto y = labels_for(3, cfg.num_classes);
  master.train(), ref.train();  // no dropout in this config: train mode is deterministic

  TensorF logits = mp.forward(x.to_dtype<float>());
  REQUIRE(logits.requires_grad());
  const TensorD ref_logits = ref.forward(x);
  test::require_relative_l2(logits, ref_logits);
  cross_entropy(logits, y).backward();
  mp.backward();
  cross_entropy(ref_logits, y).backward();
  auto mpar = master.named_parameters();
  auto rpar = ref.named_parameters();
  for (size_t i = 0; i < mpar.size(); ++i) {
    INFO("master gradient of " << mpar[i].first);
    REQUIRE(mpar[i].second.grad().defined());
    test::require_relative_l2(mpar[i].second.grad(), rpar[i].second.grad(), 3e-2);
  }
  // Twin gradients are zeroed for the next backward; a second backward adds.
  for (auto& [name, p] : mp.compute().named_parameters())
    for (int64_t i = 0; i < p.grad().numel(); ++i) REQUIRE(float(p.grad().data()[i]) == 0.f);
  const TensorF g1 = mpar[0].second.grad().clone();
  TensorF logits2 = mp.forward(x.to_dtype<float>());
  cross_entropy(logits2, y).backward();
  mp.backward();
  for (int64_t i = 0; i < g1.numel(); ++i)
    REQUIRE(mpar[0].second.grad().data()[i] == g1.data()[i] + g1.data()[i]);

  optim::AdamW<float> opt(optim::default_param_groups(master.named_parameters(), 0.05), {.lr = 1e-3});
  mp.attach(opt);
  opt.step();
  auto cpar = mp.compute().named_parameters();
  for (size_t i = 0; i < mpar.size(); ++i) {
    INFO("bf16 copy of " << mpar[i].first << " after the step");
    const TensorF& m = mpar[i].second;
    for (int64_t k = 0; k < m.numel(); ++k) REQUIRE(cpar[i].second.data()[k].bits == bf16(m.data()[k]).bits);
  }
}

TEST_CASE("mixed-precision training learns a fixed batch and repeats bit for bit", "[nn][bf16]") {
  auto run = [](int steps) {
    const nn::VitConfig cfg = test::tiny_vit_config(32);
    nn::VisionTransformer<float> master(cfg);
    nn::MixedPrecision mp(master);
    optim::AdamW<float> opt(optim::default_param_groups(master.named_parameters(), 0.0), {.lr = 3e-3});
    mp.attach(opt);
    const TensorF x = images_for(cfg, 6, 21).to_dtype<float>();
    const auto y = labels_for(6, cfg.num_classes);
    std::vector<float> losses;
    for (int s = 0; s < steps; ++s) {
      opt.zero_grad();
      TensorF loss = cross_entropy(mp.forward(x), y);
      loss.backward();
      mp.backward();
      opt.step();
      losses.push_back(loss.item());
    }
    std::vector<float> weights;
    for (auto& [n, p] : master.named_parameters())
      for (int64_t i = 0; i < p.numel(); ++i) weights.push_back(p.data()[i]);
    return std::make_pair(losses, weights);
  };
  const auto a = run(40);
  INFO("loss " << a.first.front() << " -> " << a.first.back());
  CHECK(a.first.back() < 0.25 * a.first.front());
  const auto b = run(40);
  CHECK(a.first == b.first);
  CHECK(a.second == b.second);
}
