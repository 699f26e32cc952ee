// attention_probabilities: per block and head, softmax(q kᵀ/√D) against a
// naive computation from each block's q and k (the model's own modules run
// block by block), rows summing to 1, and logits equal to model.forward.
#include "support/check.hpp"
#include "support/tiny_vit.hpp"

#include <cmath>

using namespace vit;

namespace {
// P[b,h,i,j] from the block's input tokens t (B,N,C), by the textbook formula.
std::vector<double> naive_probs(const nn::Block<double>& blk, const TensorD& t, int64_t H) {
  const TensorD qkv = blk.attn.qkv.forward(blk.norm1.forward(t));
  const int64_t B = t.shape()[0], N = t.shape()[1], C = t.shape()[2], D = C / H;
  std::vector<double> P(static_cast<size_t>(B * H * N * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        std::vector<double> s(N);
        double z = 0;
        for (int64_t j = 0; j < N; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += qkv.at({b, i, h * D + d}) * qkv.at({b, j, C + h * D + d});
          z += s[j] = std::exp(dot / std::sqrt(double(D)));
        }
        for (int64_t j = 0; j < N; ++j) P[((b * H + h) * N + i) * N + j] = s[j] / z;
      }
  return P;
}
}  // namespace

TEST_CASE("attention_probabilities match q,k of every block", "[nn][attention_maps]") {
  nn::VitConfig c = test::tiny_vit_config();
  c.depth = 3;
  nn::VisionTransformer<double> m(c);
  m.eval();
  const int64_t B = 2, N = 5, H = 2;
  const TensorD x = test::randn<double>({B, 2, 8, 8}, 21);
  const auto r = nn::attention_probabilities(m, x);

  NoGradGuard ng;
  test::require_close(r.logits, m.forward(x), 0, 0);  // the same ops in the same order
  REQUIRE(r.per_block.size() == 3);
  TensorD t = add(concat<double>({expand(m.cls_token, {B, 1, c.dim}), m.patch_embed.forward(x)}, 1),
                  m.pos_embed);
  for (size_t l = 0; l < r.per_block.size(); ++l) {
    const TensorD& P = r.per_block[l];
    REQUIRE(P.shape() == Shape{B, H, N, N});
    CHECK(P.device() == Device::CPU);
    const auto ref = naive_probs(*m.blocks[l], t, H);
    for (int64_t k = 0; k < P.numel(); ++k) REQUIRE(P.data()[k] == Approx(ref[k]).margin(1e-13));
    for (int64_t row = 0; row < B * H * N; ++row) {
      double s = 0;
      for (int64_t j = 0; j < N; ++j) s += P.data()[row * N + j];
      REQUIRE(s == Approx(1.0).margin(1e-13));
    }
    t = m.blocks[l]->forward(t);
  }
}

TEST_CASE("attention_probabilities ignore dropout whatever the mode", "[nn][attention_maps]") {
  nn::VitConfig c = test::tiny_vit_config();
  c.drop_rate = 0.3, c.attn_drop_rate = 0.4, c.drop_path_rate = 0.2;
  c.representation_size = 6;
  nn::VisionTransformer<float> m(c);  // left in training mode
  const TensorF x = test::randn<float>({3, 2, 8, 8}, 4);
  const auto train_mode = nn::attention_probabilities(m, x);
  CHECK(m.is_training());  // the call does not switch modes
  m.eval();
  const auto eval_mode = nn::attention_probabilities(m, x);
  NoGradGuard ng;
  test::require_close(train_mode.logits, m.forward(x), 0, 0);
  for (size_t l = 0; l < eval_mode.per_block.size(); ++l)
    test::require_close(train_mode.per_block[l], eval_mode.per_block[l], 0, 0);
  REQUIRE(train_mode.logits.shape() == Shape{3, 3});
}

TEST_CASE("attention_probabilities refuse a bad input", "[nn][attention_maps]") {
  nn::VisionTransformer<float> m(test::tiny_vit_config());
  REQUIRE_THROWS_WITH(nn::attention_probabilities(m, TensorF::zeros({2, 8, 8})),
                      Catch::Contains("need a batch B,ch,H,W"));
  REQUIRE_THROWS_WITH(nn::attention_probabilities(m, TensorF::zeros({1, 3, 8, 8})),
                      Catch::Contains("PatchEmbedding: input"));
}
