// Checkpoints: model, optimizer moments and train state survive a round trip
// exactly, and training continued from a checkpoint is bitwise the training
// that never stopped (with dropout and drop-path on, so RNG state matters).
#include "support/check.hpp"

#include "support/temp_dir.hpp"

using namespace vit;

namespace {
nn::VitConfig tiny() {
  nn::VitConfig c;
  c.name = "tiny", c.image_size = 8, c.patch_size = 4, c.in_chans = 3;
  c.dim = 8, c.depth = 2, c.heads = 2, c.mlp_dim = 16, c.num_classes = 3, c.seed = 9;
  c.drop_rate = 0.1, c.drop_path_rate = 0.2;
  return c;
}
void train_steps(nn::VisionTransformer<float>& m, optim::AdamW<float>& opt, int from, int to) {
  for (int s = from; s < to; ++s) {
    const TensorF x = test::randn<float>({4, 3, 8, 8}, 100 + s);
    opt.zero_grad();
    cross_entropy(m.forward(x), std::vector<int64_t>{0, 1, 2, 1}, 0.1).backward();
    opt.step();
  }
}
}  // namespace

TEST_CASE("checkpoint round trip and bitwise resume", "[io][checkpoint]") {
  nn::VisionTransformer<float> a(tiny());
  optim::AdamW<float> opt_a(optim::default_param_groups(a.named_parameters(), 0.05), {1e-2});
  train_steps(a, opt_a, 0, 3);

  io::TrainState st;
  st.step = 3, st.epoch = 1, st.batch_in_epoch = 2, st.best_top1 = 0.5, st.optimizer = "adamw";
  st.dropout_seed = a.dropout_generator().seed();
  st.dropout_offset = a.dropout_generator().offset();
  const test::TempDir dir("ckpt");
  const std::string path = dir / "last.safetensors";
  io::save_checkpoint(path, a, {"x", "y", "z"}, &opt_a, &st, {{"vit.normalization", "n"}});

  const auto ck = io::load_checkpoint<float>(path);
  REQUIRE(ck.config.has_value());
  CHECK(ck.config->dim == 8);
  CHECK(ck.config->drop_path_rate == 0.2);
  CHECK(ck.class_names == std::vector<std::string>{"x", "y", "z"});
  REQUIRE(ck.state.has_value());
  CHECK(ck.state->epoch == 1);
  CHECK(ck.state->batch_in_epoch == 2);
  CHECK(ck.state->dropout_offset == st.dropout_offset);
  CHECK(ck.metadata.at("vit.normalization") == "n");
  CHECK(ck.metadata.at("format") == "pt");
  CHECK(ck.optimizer.size() == 2 * a.named_parameters().size());

  nn::VisionTransformer<float> b(*ck.config);
  io::load_model_weights(b, ck);
  optim::AdamW<float> opt_b(optim::default_param_groups(b.named_parameters(), 0.05), {1e-2});
  opt_b.load_named_state(ck.optimizer);
  opt_b.set_steps(ck.state->step);
  b.dropout_generator().set_state(ck.state->dropout_seed, ck.state->dropout_offset);
  for (auto& [n, p] : b.named_parameters()) test::require_close(p, a.state_dict().at(n), 0, 0);

  train_steps(a, opt_a, 3, 6);
  train_steps(b, opt_b, 3, 6);
  for (auto& [n, p] : b.named_parameters()) test::require_close(p, a.state_dict().at(n), 0, 0);
}

TEST_CASE("checkpoint errors name the file and the field", "[io][checkpoint]") {
  nn::VisionTransformer<float> a(tiny());
  const test::TempDir dir("ckpt");
  const std::string path = dir / "bad.safetensors";
  io::SafetensorsWriter w;
  auto cfg = io::config_to_json(a.config);
  cfg["depth"] = "two";
  w.set_metadata(io::kConfigKey, cfg.dump());
  for (auto& [n, p] : a.named_parameters()) w.add(n, p);
  w.write(path);
  REQUIRE_THROWS_WITH(io::load_checkpoint<float>(path),
                      Catch::Contains("bad.safetensors (vit.config): field 'depth' has the wrong type"));

  // Weights only (as converted from timm): no config, no state; a wrong shape is named.
  io::SafetensorsWriter plain;
  for (auto& [n, p] : a.named_parameters())
    plain.add(n, n == "head.weight" ? TensorF::zeros({4, 8}) : p.detach());
  plain.write(path);
  const auto ck = io::load_checkpoint<float>(path);
  CHECK_FALSE(ck.config.has_value());
  CHECK_FALSE(ck.state.has_value());
  nn::VisionTransformer<float> b(tiny());
  REQUIRE_THROWS_WITH(io::load_model_weights(b, ck),
                      Catch::Contains("bad.safetensors: load_state_dict: tensor 'head.weight' has shape (4,8)"));
}
