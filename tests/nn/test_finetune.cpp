// Fine-tuning: pos_embed resampling against timm/torch values, loading a
// pretrained state dict into a model for another task, freezing the backbone.
#include "support/check.hpp"

#include <cmath>

using namespace vit;

namespace {
nn::VitConfig tiny(int64_t image, int64_t classes) {
  nn::VitConfig c;
  c.name = "tiny", c.image_size = image, c.patch_size = 4, c.in_chans = 3;
  c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 16, c.num_classes = classes, c.seed = 3;
  return c;
}
TensorD sin_pos(int64_t grid, int64_t C) {
  TensorD p = TensorD::empty({1, 1 + grid * grid, C});
  for (int64_t k = 0; k < 1 + grid * grid; ++k)
    for (int64_t c = 0; c < C; ++c) p.data()[k * C + c] = std::sin(0.7 * k + 1.3 * c);
  return p;
}
}  // namespace

TEST_CASE("resample_pos_embed matches timm resample_abs_pos_embed", "[nn][finetune]") {
  // Reference: timm 1.0.31 resample_abs_pos_embed(x, new, old, num_prefix_tokens=1)
  // (bicubic, antialias=True) on x[k,c] = sin(0.7k + 1.3c); torch computes in float32.
  const std::vector<double> up_4_to_6 = {0, 0.96355818541719296, 0.68349760770797729, 1.0697052478790283, 0.90418058633804321, 0.82917767763137817, 1.1226307153701782, 0.3859885036945343, 1.0379605293273926, -0.14328503608703613, 0.66712373495101929, -0.65266996622085571, 0.35999965667724609, -0.9524872899055481, 0.16309008002281189, -0.096516765654087067, 0.10030844807624817, -0.14857535064220428, -0.0022471989504992962, -0.20742182433605194, -0.10062280297279358, -0.20961578190326691, -0.17512129247188568, -0.15471801161766052, -0.21277303993701935, -0.10489926487207413, -0.34027400612831116, -0.86854881048202515, -0.56040757894515991, -0.74370884895324707, -0.8169131875038147, -0.47826811671257019, -0.84943163394927979, -0.096235349774360657, -0.65145260095596313, 0.32589742541313171, -0.46451786160469055, 0.59108173847198486, -0.093757130205631256, 0.8138994574546814, 0.19122748076915741, 0.83232676982879639, 0.58368349075317383, 0.76503020524978638, 0.80878150463104248, 0.49873256683349609, 0.82145184278488159, 0.086753144860267639, 0.76627379655838013, -0.20354203879833221, 0.19803619384765625, 0.14198659360408783, 0.20685994625091553, 0.074842974543571472, 0.19630090892314911, -0.031172227114439011, 0.13444504141807556, -0.12527330219745636, 0.033677201718091965, -0.18861900269985199, -0.03829636424779892, -0.21754485368728638, 0.38982737064361572, -0.93456196784973145, 0.0087728789076209068, -1.0483225584030151, -0.5458722710609436, -1.0951285362243652, -0.93743592500686646, -0.852059006690979, -1.0875184535980225, -0.36778253316879272, -1.1062184572219849, -0.0058680246584117413};
  const std::vector<double> down_5_to_3 = {0, 0.96355818541719296, 0.07479531317949295, 0.21702802181243896, 0.20994517207145691, 0.074505023658275604, 0.11035743355751038, -0.15132129192352295, 0.061704572290182114, 0.0095575675368309021, 0.019194129854440689, -0.049794714897871017, -0.044777020812034607, -0.053472016006708145, 0.025632249191403389, -0.20147255063056946, -0.1787056177854538, -0.15554864704608917, -0.18323446810245514, 0.064292639493942261};
  test::require_close(nn::resample_pos_embed(sin_pos(4, 2), 4, 4, 6, 6),
                      TensorD::from_data({1, 37, 2}, up_4_to_6), 2e-6, 2e-6);
  test::require_close(nn::resample_pos_embed(sin_pos(5, 2), 5, 5, 3, 3),
                      TensorD::from_data({1, 10, 2}, down_5_to_3), 2e-6, 2e-6);
  // Same grid: identity.
  test::require_close(nn::resample_pos_embed(sin_pos(3, 4), 3, 3, 3, 3), sin_pos(3, 4), 1e-12, 0);
  REQUIRE_THROWS_WITH(nn::resample_pos_embed(sin_pos(3, 4), 4, 4, 2, 2),
                      Catch::Contains("does not hold 1 prefix tokens and a 4x4 grid"));
}

TEST_CASE("load_pretrained keeps the new head and resamples pos_embed", "[nn][finetune]") {
  nn::VisionTransformer<double> src(tiny(16, 7));
  nn::VitConfig cfg = tiny(24, 5);
  cfg.seed = 11;
  nn::VisionTransformer<double> dst(cfg);
  const TensorD fresh_head = dst.head->weight.clone();
  const auto rep = nn::load_pretrained(dst, src.state_dict());
  CHECK(rep.head_reinitialised);
  CHECK(rep.pos_embed_resampled);
  test::require_close(dst.head->weight, fresh_head, 0, 0);
  test::require_close(dst.blocks[0]->attn.qkv.weight, src.blocks[0]->attn.qkv.weight, 0, 0);
  test::require_close(dst.patch_embed.weight, src.patch_embed.weight, 0, 0);
  test::require_close(dst.pos_embed, nn::resample_pos_embed(src.pos_embed, 4, 4, 6, 6), 0, 0);
  CHECK(rep.loaded == static_cast<int64_t>(dst.named_parameters().size()) - 3);

  // Same task: everything loads exactly, nothing adapted.
  nn::VisionTransformer<double> same(tiny(16, 7));
  const auto rep2 = nn::load_pretrained(same, src.state_dict());
  CHECK_FALSE(rep2.head_reinitialised);
  CHECK_FALSE(rep2.pos_embed_resampled);
  test::require_close(same.head->weight, src.head->weight, 0, 0);
}

TEST_CASE("load_pretrained names the tensor at fault", "[nn][finetune]") {
  nn::VisionTransformer<double> src(tiny(16, 7));
  nn::VisionTransformer<double> dst(tiny(16, 7));
  auto sd = src.state_dict();
  auto missing = sd;
  missing.erase("blocks.0.norm1.weight");
  REQUIRE_THROWS_WITH(nn::load_pretrained(dst, missing),
                      Catch::Contains("missing tensor 'blocks.0.norm1.weight'"));
  auto wrong = sd;
  wrong["blocks.0.mlp.fc1.weight"] = TensorD::zeros({3, 8});
  REQUIRE_THROWS_WITH(nn::load_pretrained(dst, wrong),
                      Catch::Contains("'blocks.0.mlp.fc1.weight' has shape (3,8)"));
  auto extra = sd;
  extra["blocks.7.attn.qkv.weight"] = TensorD::zeros({24, 8});
  REQUIRE_THROWS_WITH(nn::load_pretrained(dst, extra),
                      Catch::Contains("'blocks.7.attn.qkv.weight' of shape (24,8) has no place"));
  auto with_pre_logits = sd;
  with_pre_logits["pre_logits.fc.weight"] = TensorD::zeros({8, 8});
  CHECK(nn::load_pretrained(dst, with_pre_logits).dropped.size() == 1);
}

TEST_CASE("load_pretrained across a pre-logits layer added or dropped", "[nn][finetune]") {
  // in21k-style file (pre-logits 6 wide) into a model without one: dropped, and
  // the head (6 inputs there, 8 here) is the model's fresh one.
  nn::VitConfig with = tiny(16, 7);
  with.representation_size = 6;
  nn::VisionTransformer<double> src(with);
  nn::VisionTransformer<double> plain(tiny(16, 7));
  const TensorD fresh = plain.head->weight.clone();
  const auto rep = nn::load_pretrained(plain, src.state_dict());
  CHECK(rep.dropped == std::vector<std::string>{"pre_logits.fc.bias", "pre_logits.fc.weight"});
  CHECK(rep.head_reinitialised);
  test::require_close(plain.head->weight, fresh, 0, 0);
  test::require_close(plain.blocks[0]->mlp.fc1.weight, src.blocks[0]->mlp.fc1.weight, 0, 0);

  // A plain file into a model with pre-logits (the tutorial's has_logits=True):
  // that layer and the head stay initialised.
  nn::VisionTransformer<double> plain_src(tiny(16, 7));
  with.seed = 5;
  nn::VisionTransformer<double> dst(with);
  const TensorD fresh_pre = dst.pre_logits->weight.clone();
  const auto rep2 = nn::load_pretrained(dst, plain_src.state_dict());
  CHECK(rep2.head_reinitialised);
  CHECK(rep2.notes.front() == "pre-logits layer initialised (the file has none)");
  test::require_close(dst.pre_logits->weight, fresh_pre, 0, 0);
  test::require_close(dst.blocks[0]->attn.qkv.weight, plain_src.blocks[0]->attn.qkv.weight, 0, 0);
  // Same pre-logits on both sides: everything loads.
  nn::VisionTransformer<double> same(with);
  CHECK(nn::load_pretrained(same, src.state_dict()).loaded ==
        static_cast<int64_t>(same.named_parameters().size()));
}

TEST_CASE("freeze_backbone trains only the head and pre-logits", "[nn][finetune]") {
  nn::VisionTransformer<double> m(tiny(16, 3));
  nn::freeze_backbone(m);
  const auto trainable = nn::trainable_parameters(m);
  REQUIRE(trainable.size() == 2);
  CHECK(trainable[0].first == "head.weight");
  CHECK(trainable[1].first == "head.bias");
  const TensorD x = test::randn<double>({2, 3, 16, 16}, 5);
  cross_entropy(m.forward(x), std::vector<int64_t>{0, 2}).backward();
  CHECK(m.head->weight.grad().defined());
  CHECK_FALSE(m.blocks[0]->attn.qkv.weight.grad().defined());
  CHECK_FALSE(m.pos_embed.grad().defined());

  // With a pre-logits layer it trains too (the fine-tuning tutorial's freeze_layers).
  nn::VitConfig c = tiny(16, 3);
  c.representation_size = 6;
  nn::VisionTransformer<double> r(c);
  nn::freeze_backbone(r);
  std::vector<std::string> names;
  for (const auto& [name, p] : nn::trainable_parameters(r)) names.push_back(name);
  CHECK(names == std::vector<std::string>{"pre_logits.fc.weight", "pre_logits.fc.bias",
                                          "head.weight", "head.bias"});
}
