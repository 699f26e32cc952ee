// Attention rollout against a plain computation: for one layer the map is the
// cls row of (A + I)/2 over the patches, with A from unfused ops.
#include "support/check.hpp"

using namespace vit;

TEST_CASE("attention rollout of one layer is the cls row of (A+I)/2", "[nn][rollout]") {
  nn::VitConfig c;
  c.name = "tiny", c.image_size = 12, c.patch_size = 4, c.in_chans = 3;
  c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 16, c.num_classes = 3, c.seed = 4;
  nn::VisionTransformer<double> m(c);
  const TensorD x = test::randn<double>({1, 3, 12, 12}, 8);
  const auto r = nn::attention_rollout(m, x);
  m.eval();
  test::require_close(r.logits, m.forward(x), 1e-12, 1e-12);
  REQUIRE(r.grid == 3);
  REQUIRE(r.map.size() == 9);

  // Reference: tokens -> norm1 -> qkv -> per-head softmax(q kᵀ/√D) with unfused ops.
  NoGradGuard ng;
  TensorD t = add(concat<double>({m.cls_token, m.patch_embed.forward(x)}, 1), m.pos_embed);
  const TensorD qkv = m.blocks[0]->attn.qkv.forward(m.blocks[0]->norm1.forward(t));  // (1,10,24)
  std::vector<double> cls_row(10, 0.0);
  for (int h = 0; h < 2; ++h) {
    std::vector<double> s(10);
    double mx = -1e300, z = 0;
    for (int j = 0; j < 10; ++j) {
      double acc = 0;
      for (int d = 0; d < 4; ++d) acc += qkv.at({0, 0, h * 4 + d}) * qkv.at({0, j, 8 + h * 4 + d});
      s[j] = acc / 2.0;
      mx = std::max(mx, s[j]);
    }
    for (int j = 0; j < 10; ++j) z += (s[j] = std::exp(s[j] - mx));
    for (int j = 0; j < 10; ++j) cls_row[j] += 0.5 * s[j] / z;
  }
  std::vector<double> expect(cls_row.begin() + 1, cls_row.end());  // (A+I)/2 off the diagonal
  const double lo = *std::min_element(expect.begin(), expect.end());
  const double hi = *std::max_element(expect.begin(), expect.end());
  for (int i = 0; i < 9; ++i) CHECK(r.map[i] == Approx((expect[i] - lo) / (hi - lo)).margin(1e-12));
}
