// Whole-model checks: every parameter gradient of a tiny ViT (all options on:
// pre-logits, tanh GELU off/on) by finite differences in double; a tiny ViT
// fits a fixed batch with AdamW; the same seed and threads give bitwise equal
// losses with dropout and stochastic depth active; timm names, shapes and sizes.
#include "support/check.hpp"
#include "support/tiny_vit.hpp"

using namespace vit;

namespace {
nn::VitConfig tiny_config() { return test::tiny_vit_config(); }
const std::vector<int64_t> kLabels = {0, 2, 1};
}  // namespace

TEST_CASE("every parameter gradient of a tiny ViT matches finite differences", "[nn][vit]") {
  for (auto gelu : {GeluApprox::None, GeluApprox::Tanh}) {
    nn::VitConfig c = tiny_config();
    c.gelu = gelu;
    c.representation_size = 5;  // exercise the pre-logits Linear + Tanh
    nn::VisionTransformer<double> model(c);
    model.eval();
    const TensorD x = test::randn<double>({3, 2, 8, 8}, 3);
    auto loss_value = [&] {
      NoGradGuard ng;
      return cross_entropy(model.forward(x), kLabels, 0.1).item();
    };
    model.zero_grad();
    cross_entropy(model.forward(x), kLabels, 0.1).backward();
    for (auto& [name, p] : model.named_parameters()) {
      INFO("parameter " << name);
      TensorD numeric = TensorD::empty(p.shape());
      for (int64_t i = 0; i < p.numel(); ++i) {
        const double saved = p.data()[i], eps = 1e-6;
        p.data()[i] = saved + eps;
        const double fp = loss_value();
        p.data()[i] = saved - eps;
        const double fm = loss_value();
        p.data()[i] = saved;
        numeric.data()[i] = (fp - fm) / (2 * eps);
      }
      test::require_close(p.grad(), numeric, 1e-8, 1e-5);
    }
  }
}

TEST_CASE("a tiny ViT drives the loss on a fixed batch close to zero with AdamW", "[nn][vit]") {
  nn::VisionTransformer<float> model(tiny_config());
  const TensorF x = test::randn<float>({3, 2, 8, 8}, 5);
  optim::AdamW<float> opt(optim::default_param_groups(model.named_parameters(), 0.01), {1e-2});
  float first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    opt.zero_grad();
    TensorF loss = cross_entropy(model.forward(x), kLabels);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  INFO("loss " << first << " -> " << last);
  REQUIRE(first > 0.5);
  REQUIRE(last < 0.01);
}

namespace {
std::vector<float> run_losses(int threads) {
  set_num_threads(threads);
  nn::VitConfig c = tiny_config();
  c.drop_rate = 0.1, c.drop_path_rate = 0.2;  // randomness must be reproducible too
  nn::VisionTransformer<float> model(c);
  const TensorF x = test::randn<float>({3, 2, 8, 8}, 9);
  optim::AdamW<float> opt(optim::default_param_groups(model.named_parameters(), 0.05), {1e-3});
  std::vector<float> losses;
  for (int step = 0; step < 10; ++step) {
    opt.zero_grad();
    TensorF loss = cross_entropy(model.forward(x), kLabels, 0.1);
    loss.backward();
    optim::clip_grad_norm(model.parameters(), 1.0);
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}
}  // namespace

TEST_CASE("the same seed and thread count give bitwise identical losses", "[nn][vit][determinism]") {
  for (int threads : {1, 2}) {
    const auto a = run_losses(threads), b = run_losses(threads);
    REQUIRE(a == b);  // exact float equality, step by step
  }
  set_num_threads(2);
}

TEST_CASE("a different seed gives a different model", "[nn][vit][determinism]") {
  nn::VitConfig c = tiny_config();
  nn::VisionTransformer<float> a(c);
  c.seed = 12;
  nn::VisionTransformer<float> b(c);
  REQUIRE(a.pos_embed.to_vector() != b.pos_embed.to_vector());
}

TEST_CASE("parameter names and shapes are timm's", "[nn][vit][presets]") {
  auto model = nn::create_vit<float>("cifar-tiny");
  const auto sd = model->state_dict();
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"cls_token", {1, 1, 192}},
      {"pos_embed", {1, 65, 192}},
      {"patch_embed.proj.weight", {192, 3, 4, 4}},
      {"patch_embed.proj.bias", {192}},
      {"blocks.0.norm1.weight", {192}},
      {"blocks.0.attn.qkv.weight", {576, 192}},
      {"blocks.0.attn.qkv.bias", {576}},
      {"blocks.0.attn.proj.weight", {192, 192}},
      {"blocks.5.norm2.bias", {192}},
      {"blocks.5.mlp.fc1.weight", {384, 192}},
      {"blocks.5.mlp.fc2.weight", {192, 384}},
      {"norm.weight", {192}},
      {"head.weight", {10, 192}},
      {"head.bias", {10}},
  };
  for (const auto& [name, shape] : expected) {
    INFO(name);
    REQUIRE(sd.count(name) == 1);
    REQUIRE(sd.at(name).shape() == shape);
  }
  REQUIRE(sd.size() == 4 + 12 * 6 + 4);  // cls, pos, patch w/b; 12 per block; norm, head
  REQUIRE(sd.count("blocks.6.norm1.weight") == 0);
}

TEST_CASE("preset sizes match the published parameter counts", "[nn][vit][presets]") {
  // timm: vit_base_patch16_224 has 86,567,656 parameters; vit_tiny_patch16_224 5,717,416;
  // vit_small_patch16_224 22,050,664 (1000 classes).
  const std::vector<std::pair<std::string, int64_t>> counts = {
      {"vit_tiny_patch16_224", 5717416}, {"vit-s16", 22050664}, {"vit-b16", 86567656}};
  for (const auto& [name, n] : counts) {
    INFO(name);
    REQUIRE(nn::VisionTransformer<float>(nn::vit_preset(name)).num_parameters() == n);
  }
  const auto c = nn::vit_preset("fmnist-tiny");
  REQUIRE((c.image_size == 28 && c.in_chans == 1 && c.patch_size == 4 && c.dim == 128 &&
           c.depth == 6 && c.heads == 4 && c.mlp_dim == 256 && c.num_classes == 10));
  REQUIRE(nn::vit_preset("vit-h14").patch_size == 14);
  REQUIRE(nn::create_vit<float>("cifar-small", 100)->head->weight.shape() == Shape{100, 384});
}

TEST_CASE("initialisation follows timm", "[nn][vit][init]") {
  auto model = nn::create_vit<float>("cifar-tiny", 0, 3);
  auto stats = [](const TensorF& t) {
    double s = 0, s2 = 0;
    for (float v : t.to_vector()) s += v, s2 += double(v) * v;
    const double m = s / t.numel();
    return std::pair<double, double>(m, std::sqrt(s2 / t.numel() - m * m));
  };
  const auto [qm, qs] = stats(model->blocks[0]->attn.qkv.weight);
  REQUIRE(std::abs(qm) < 1e-3);
  REQUIRE(std::abs(qs - 0.02) < 1e-3);
  REQUIRE(stats(model->pos_embed).second == Approx(0.02).margin(2e-3));
  for (float v : model->blocks[0]->attn.qkv.bias.to_vector()) REQUIRE(v == 0.0f);
  for (float v : model->norm.weight.to_vector()) REQUIRE(v == 1.0f);
  // patch_embed.proj keeps nn.Conv2d's default U(±1/sqrt(fan_in)), fan_in = 3·4·4
  for (float v : model->patch_embed.weight.to_vector()) REQUIRE(std::abs(v) <= 1.0 / std::sqrt(48.0));
}

TEST_CASE("misuse of the model gives clear errors", "[nn][vit][errors]") {
  REQUIRE_THROWS_WITH(nn::vit_preset("vit-xl99"), Catch::Contains("unknown model preset 'vit-xl99'"));
  auto model = nn::create_vit<float>("cifar-tiny");
  REQUIRE_THROWS_WITH(model->forward(TensorF::zeros({2, 3, 28, 28})),
                      Catch::Contains("input (2,3,28,28) but the model expects (B,3,32,32)"));
  nn::VitConfig c = tiny_config();
  c.heads = 3;
  REQUIRE_THROWS_WITH(nn::VisionTransformer<float>(c), Catch::Contains("not divisible by heads 3"));
  std::map<std::string, TensorF> sd = model->state_dict();
  sd["head.weight"] = TensorF::zeros({5, 192});
  REQUIRE_THROWS_WITH(model->load_state_dict(sd),
                      Catch::Contains("'head.weight' has shape (5,192) but the model expects (10,192)"));
  sd.erase("head.weight");
  REQUIRE_THROWS_WITH(model->load_state_dict(sd), Catch::Contains("missing tensor 'head.weight'"));
}

TEST_CASE("eval mode turns dropout and drop-path off", "[nn][vit]") {
  nn::VitConfig c = tiny_config();
  c.drop_rate = 0.5, c.drop_path_rate = 0.5;
  nn::VisionTransformer<float> model(c);
  const TensorF x = test::randn<float>({3, 2, 8, 8}, 2);
  model.eval();
  NoGradGuard ng;
  const auto a = model.forward(x).to_vector(), b = model.forward(x).to_vector();
  REQUIRE(a == b);
  model.train();
  REQUIRE(model.forward(x).to_vector() != model.forward(x).to_vector());
}
