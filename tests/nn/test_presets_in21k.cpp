// The ImageNet-21k presets: timm 0.4's *_in21k architectures (pre-logits
// Linear+Tanh of representation_size, 21843 classes), their timm aliases,
// parameter counts and tensor shapes.
#include "support/check.hpp"

using namespace vit;

TEST_CASE("in21k presets are timm's *_in21k", "[nn][presets]") {
  struct Row {
    const char* name;
    const char* timm;
    int64_t patch, dim, depth, repr, params;
  };
  // Counts: sum of numel over timm 0.4's model.parameters(); without pre-logits
  // (timm >= 0.6's augreg in21k B/16, B/32) they are C·R + R fewer.
  const std::vector<Row> rows = {
      {"vit-b16-in21k", "vit_base_patch16_224_in21k", 16, 768, 12, 768, 103186515},
      {"vit-b32-in21k", "vit_base_patch32_224_in21k", 32, 768, 12, 768, 104843091},
      {"vit-l16-in21k", "vit_large_patch16_224_in21k", 16, 1024, 24, 1024, 326740307},
      {"vit-l32-in21k", "vit_large_patch32_224_in21k", 32, 1024, 24, 1024, 328949075},
      {"vit-h14-in21k", "vit_huge_patch14_224_in21k", 14, 1280, 32, 1280, 660385363},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const nn::VitConfig c = nn::vit_preset(r.name);
    CHECK(c.num_classes == 21843);
    CHECK(c.image_size == 224);
    CHECK(c.patch_size == r.patch);
    CHECK(c.dim == r.dim);
    CHECK(c.depth == r.depth);
    CHECK(c.representation_size == r.repr);
    CHECK(c.mlp_dim == 4 * r.dim);
    CHECK(nn::model_stats(c, 1).parameters == r.params);
    CHECK(nn::vit_preset(r.timm).name == r.name);
  }
  CHECK(nn::model_stats(nn::vit_preset("vit-b16-in21k"), 1).parameters - (768 * 768 + 768) ==
        102595923);  // timm's vit_base_patch16_224.augreg_in21k, 102.6 M
  CHECK(nn::vit_preset("vit-b16").representation_size == 0);
}

TEST_CASE("vit-b16-in21k has timm's pre-logits and head shapes", "[nn][presets]") {
  // The blocks are the 1k model's; build without them to keep the test small.
  nn::VitConfig c = nn::vit_preset("vit-b16-in21k");
  const int64_t full = nn::model_stats(c, 1).parameters;
  c.depth = 0;
  const int64_t block_params = (full - nn::model_stats(c, 1).parameters) / 12;
  nn::VisionTransformer<float> m(c);
  std::map<std::string, Shape> shapes;
  for (const auto& [name, p] : m.named_parameters()) shapes[name] = p.shape();
  CHECK(shapes.at("pre_logits.fc.weight") == Shape{768, 768});
  CHECK(shapes.at("pre_logits.fc.bias") == Shape{768});
  CHECK(shapes.at("head.weight") == Shape{21843, 768});
  CHECK(shapes.at("head.bias") == Shape{21843});
  CHECK(shapes.at("pos_embed") == Shape{1, 197, 768});
  CHECK(m.num_parameters() + 12 * block_params == 103186515);
  // A forward runs through pre-logits into the 21843-way head.
  const TensorF x = test::randn<float>({1, 3, 224, 224}, 2);
  NoGradGuard ng;
  m.eval();
  const TensorF logits = m.forward(x);
  CHECK(logits.shape() == Shape{1, 21843});
}
