// The fixed 2-D sin-cos position embedding (MAE): values against the formula,
// a parameter in the state dict that never trains, regenerated (not
// interpolated) when fine-tuning moves it to another grid, never replaced by
// a learned one.
#include "support/check.hpp"
#include "support/tiny_vit.hpp"

#include <cmath>

using namespace vit;

TEST_CASE("sincos_pos_embed is MAE's get_2d_sincos_pos_embed", "[nn][pos_embed]") {
  const int64_t G = 3, D = 8, Q = D / 4;
  const TensorD p = nn::sincos_pos_embed<double>(G, G, D);
  REQUIRE(p.shape() == Shape{1, 1 + G * G, D});
  for (int64_t c = 0; c < D; ++c) CHECK(p.at({0, 0, c}) == 0.0);  // cls row
  for (int64_t i = 0; i < G; ++i)
    for (int64_t j = 0; j < G; ++j)
      for (int64_t k = 0; k < Q; ++k) {
        const double w = std::pow(10000.0, -double(k) / Q);
        const int64_t tok = 1 + i * G + j;  // column j first, as MAE's meshgrid(w, h)
        CHECK(p.at({0, tok, k}) == Approx(std::sin(j * w)).margin(1e-15));
        CHECK(p.at({0, tok, Q + k}) == Approx(std::cos(j * w)).margin(1e-15));
        CHECK(p.at({0, tok, 2 * Q + k}) == Approx(std::sin(i * w)).margin(1e-15));
        CHECK(p.at({0, tok, 3 * Q + k}) == Approx(std::cos(i * w)).margin(1e-15));
      }
  // MAE's util/pos_embed.py worked by hand for embed_dim=8, grid 3, token 1+1·3+2 (i=1, j=2).
  const std::vector<double> row5 = {0.9092974268, 0.0199986667, -0.4161468365, 0.9998000067,
                                    0.8414709848, 0.0099998333, 0.5403023059, 0.9999500004};
  for (int64_t c = 0; c < D; ++c) CHECK(p.at({0, 6, c}) == Approx(row5[c]).margin(1e-9));
  REQUIRE_THROWS_WITH(nn::sincos_pos_embed<float>(2, 2, 6), Catch::Contains("divisible by 4"));
}

TEST_CASE("a sin-cos model keeps pos_embed fixed and in its state dict", "[nn][pos_embed]") {
  nn::VitConfig c = test::tiny_vit_config();
  nn::VisionTransformer<double> learned(c);
  c.pos_embed = nn::PosEmbedKind::SinCos;
  nn::VisionTransformer<double> m(c);
  test::require_close(m.pos_embed, nn::sincos_pos_embed<double>(2, 2, 8), 0, 0);
  CHECK_FALSE(m.pos_embed.requires_grad());
  // Every other tensor initialises as the learned model's (same draws).
  test::require_close(m.blocks[1]->mlp.fc2.weight, learned.blocks[1]->mlp.fc2.weight, 0, 0);
  CHECK(m.state_dict().count("pos_embed") == 1);
  bool listed = false;
  for (const auto& [name, p] : nn::trainable_parameters(m)) listed = listed || name == "pos_embed";
  CHECK_FALSE(listed);
  // Backward reaches the tokens and weights, not pos_embed.
  const TensorD x = test::randn<double>({2, 2, 8, 8}, 3);
  cross_entropy(m.forward(x), std::vector<int64_t>{0, 2}).backward();
  CHECK(m.cls_token.grad().defined());
  CHECK_FALSE(m.pos_embed.grad().defined());

  c.dim = 6, c.heads = 2, c.mlp_dim = 12;
  REQUIRE_THROWS_WITH(nn::VisionTransformer<double>(c), Catch::Contains("dim divisible by 4, got 6"));
  REQUIRE(nn::pos_embed_kind("sincos") == nn::PosEmbedKind::SinCos);
  REQUIRE(nn::pos_embed_kind("learned") == nn::PosEmbedKind::Learned);
  REQUIRE_THROWS_WITH(nn::pos_embed_kind("rope"),
                      Catch::Contains("pos_embed must be \"learned\" or \"sincos\", got \"rope\""));
}

TEST_CASE("fine-tuning a sin-cos model to another grid regenerates pos_embed", "[nn][pos_embed]") {
  nn::VitConfig c = test::tiny_vit_config();
  c.pos_embed = nn::PosEmbedKind::SinCos;
  nn::VisionTransformer<double> src(c);
  c.image_size = 12;  // 2x2 -> 3x3 patches
  nn::VisionTransformer<double> dst(c);
  const auto rep = nn::load_pretrained(dst, src.state_dict());
  CHECK(rep.pos_embed_resampled);
  CHECK(rep.notes.front() == "pos_embed regenerated as the fixed sin-cos table of the 3x3 grid "
                             "(the file's is for another grid)");
  test::require_close(dst.pos_embed, nn::sincos_pos_embed<double>(3, 3, 8), 0, 0);
  CHECK_FALSE(dst.pos_embed.requires_grad());
  test::require_close(dst.blocks[0]->attn.qkv.weight, src.blocks[0]->attn.qkv.weight, 0, 0);

  // The same grid: the table loads as any tensor, nothing to say.
  nn::VisionTransformer<double> same(c);
  const auto rep_same = nn::load_pretrained(same, dst.state_dict());
  CHECK(rep_same.notes.empty());
  CHECK(rep_same.loaded == static_cast<int64_t>(same.named_parameters().size()));
  // A learned pos_embed is not taken into a sin-cos model: its table stays.
  nn::VitConfig lc = c;
  lc.pos_embed = nn::PosEmbedKind::Learned;
  nn::VisionTransformer<double> learned(lc);
  const auto rep_learned = nn::load_pretrained(same, learned.state_dict());
  CHECK_FALSE(rep_learned.pos_embed_resampled);
  CHECK(rep_learned.notes.front().find("kept as the fixed sin-cos table of the 3x3 grid (the file's is "
                                       "not that table)") != std::string::npos);
  test::require_close(same.pos_embed, nn::sincos_pos_embed<double>(3, 3, 8), 0, 0);
}
