// model_stats: parameter count against a built model, FLOPs against a hand
// count for ViT-B/16, activation bytes against what the allocator really holds
// after a training forward.
#include "support/check.hpp"

using namespace vit;

TEST_CASE("model_stats parameters match built models", "[nn][stats]") {
  for (const char* name : {"cifar-tiny", "fmnist-tiny", "cifar-deep"}) {
    auto m = nn::create_vit<float>(name);
    CHECK(nn::model_stats(m->config, 1).parameters == m->num_parameters());
  }
  nn::VitConfig c = nn::vit_preset("cifar-tiny");
  c.representation_size = 32;
  nn::VisionTransformer<float> m(c);
  CHECK(nn::model_stats(c, 1).parameters == m.num_parameters());
  CHECK(nn::model_stats(nn::vit_preset("vit-b16"), 1).parameters == 86567656);
}

TEST_CASE("model_stats FLOPs of ViT-B/16", "[nn][stats]") {
  // 17.6 GFLOPs (multiply-adds ×2) as usually quoted for ViT-B/16 at 224.
  const auto s = nn::model_stats(nn::vit_preset("vit-b16"), 1);
  CHECK(s.forward_flops / 1e9 == Approx(35.1).epsilon(0.01));  // 2 × 17.56 GMACs
  CHECK(s.tokens == 197);
}

TEST_CASE("model_stats activation bytes match the allocator", "[nn][stats]") {
  for (double drop : {0.0, 0.1}) {
    nn::VitConfig c = nn::vit_preset("cifar-tiny");
    c.depth = 2, c.drop_rate = drop;
    nn::VisionTransformer<float> m(c);
    const int64_t B = 8;
    const TensorF x = test::randn<float>({B, 3, 32, 32}, 1);
    auto& alloc = CpuCachingAllocator::instance();
    const size_t before = alloc.stats().bytes_in_use;
    TensorF logits = m.forward(x);
    const double held = static_cast<double>(alloc.stats().bytes_in_use - before);
    const double estimate = nn::model_stats(c, B).activation_bytes;
    INFO("drop " << drop << ": allocator " << held << " bytes, estimate " << estimate);
    CHECK(estimate == Approx(held).epsilon(0.01));
  }
}
