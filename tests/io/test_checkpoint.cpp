// Checkpoints: model, optimizer moments and the caller's metadata survive a
// round trip exactly, and training continued from a checkpoint is bitwise the
// training that never stopped (with dropout and drop-path on, so RNG state
// matters). The trainer's own state (examples/vit/train_state.hpp) rides in
// that metadata; its round trip and refusals are checked here too.
#include "support/check.hpp"

#include "support/temp_dir.hpp"

// The trainer's state is the one user of the metadata a resume depends on.
#include "../../examples/vit/train_state.hpp"

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

  // What a trainer keeps besides tensors, as the caller's own metadata entry.
  const nlohmann::json mine = {{"step", 3},
                               {"dropout_seed", std::to_string(a.dropout_generator().seed())},
                               {"dropout_offset", std::to_string(a.dropout_generator().offset())}};
  const test::TempDir dir("ckpt");
  const std::string path = dir / "last.safetensors";
  io::save_checkpoint(path, a, {"x", "y", "z"}, &opt_a,
                      {{"vit.normalization", "n"}, {"trainer.state", mine.dump()}});

  const auto ck = io::load_checkpoint<float>(path);
  REQUIRE(ck.config.has_value());
  CHECK(ck.config->dim == 8);
  CHECK(ck.config->drop_path_rate == 0.2);
  CHECK(ck.class_names == std::vector<std::string>{"x", "y", "z"});
  CHECK(ck.metadata.at("vit.normalization") == "n");
  CHECK(ck.metadata.at("format") == "pt");
  REQUIRE(ck.metadata.count("trainer.state") == 1);
  const auto back = nlohmann::json::parse(ck.metadata.at("trainer.state"));
  CHECK(back == mine);
  CHECK(ck.optimizer.size() == 2 * a.named_parameters().size());

  nn::VisionTransformer<float> b(*ck.config);
  io::load_model_weights(b, ck);
  optim::AdamW<float> opt_b(optim::default_param_groups(b.named_parameters(), 0.05), {1e-2});
  opt_b.load_named_state(ck.optimizer);
  opt_b.set_steps(back.at("step").get<int64_t>());
  b.dropout_generator().set_state(std::stoull(back.at("dropout_seed").get<std::string>()),
                                  std::stoull(back.at("dropout_offset").get<std::string>()));
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
  CHECK_FALSE(vitcli::state_from_checkpoint(ck).has_value());
  nn::VisionTransformer<float> b(tiny());
  REQUIRE_THROWS_WITH(io::load_model_weights(b, ck),
                      Catch::Contains("bad.safetensors: load_state_dict: tensor 'head.weight' has shape (4,8)"));
}

TEST_CASE("checkpoint metadata may not replace the checkpoint's own entries", "[io][checkpoint]") {
  nn::VisionTransformer<float> a(tiny());
  const test::TempDir dir("ckpt");
  for (const char* key : {"format", "vit.config", "vit.classes"})
    REQUIRE_THROWS_WITH(io::save_checkpoint<float>(dir / "x.safetensors", a, {}, nullptr, {{key, "{}"}}),
                        Catch::Contains(std::string("metadata key '") + key + "' is the checkpoint's own"));
}

TEST_CASE("the trainer's state rides in checkpoint metadata, bit for bit as before",
          "[io][checkpoint]") {
  vitcli::TrainState st;
  st.step = 7, st.epoch = 1, st.batch_in_epoch = 2, st.optimizer = "sgd";
  st.dropout_seed = 18446744073709551615ull, st.dropout_offset = 12;
  st.epoch_sums = {12.345678901234567, 40, 17};

  // The entry last.safetensors has always had: key "vit.train_state", these
  // fields (world_size since data parallel), JSON as nlohmann dumps it
  // (sorted keys), so old runs resume.
  const auto meta = vitcli::state_metadata(st);
  REQUIRE(meta.size() == 1);
  CHECK(meta.at("vit.train_state") ==
        R"({"batch_in_epoch":2,"best_top1":-1.0,"dropout_offset":"12",)"
        R"("dropout_seed":"18446744073709551615","epoch":1,"epoch_correct":17,"epoch_images":40,)"
        R"("epoch_loss_sum":12.345678901234567,"nonfinite_run":0,"nonfinite_steps":0,)"
        R"("optimizer":"sgd","step":7,"world_size":1})");

  nn::VisionTransformer<float> a(tiny());
  const test::TempDir dir("ckpt");
  io::save_checkpoint<float>(dir / "last.safetensors", a, {"x", "y", "z"}, nullptr, meta);
  const auto back = vitcli::state_from_checkpoint(io::load_checkpoint<float>(dir / "last.safetensors"));
  REQUIRE(back.has_value());
  CHECK(back->epoch_sums.loss_sum == st.epoch_sums.loss_sum);  // bitwise: JSON keeps 17 digits
  CHECK(back->epoch_sums.images == 40);
  CHECK(back->epoch_sums.correct == 17);
  CHECK(back->dropout_seed == st.dropout_seed);
  CHECK(back->batch_in_epoch == 2);

  // Checkpoints written before the epoch sums existed still load.
  nlohmann::json old = vitcli::state_to_json(st);
  for (const char* k : {"epoch_loss_sum", "epoch_images", "epoch_correct"}) old.erase(k);
  CHECK(vitcli::state_from_json(old, "s").epoch_sums.images == 0);
  // ... and those from before data parallel were written by one rank.
  old.erase("world_size");
  CHECK(vitcli::state_from_json(old, "s").world_size == 1);

  nlohmann::json bad = vitcli::state_to_json(st);
  bad["epoch_correct"] = 41;
  REQUIRE_THROWS_WITH(vitcli::state_from_json(bad, "s"), Catch::Contains("s: train state has inconsistent epoch counts"));
  bad = vitcli::state_to_json(st);
  bad["dropout_seed"] = "-1";  // std::stoull would wrap it to 2^64 - 1
  REQUIRE_THROWS_WITH(vitcli::state_from_json(bad, "s"), Catch::Contains("'dropout_seed' is not an unsigned integer"));

  // A bad entry in a file is named by file and key.
  io::save_checkpoint<float>(dir / "bad.safetensors", a, {"x", "y", "z"}, nullptr,
                             {{"vit.train_state", bad.dump()}});
  REQUIRE_THROWS_WITH(vitcli::state_from_checkpoint(io::load_checkpoint<float>(dir / "bad.safetensors")),
                      Catch::Contains("bad.safetensors (vit.train_state): field 'dropout_seed'"));
}

TEST_CASE("checkpoints refuse NaN weights, and configs far larger than the file",
          "[io][checkpoint]") {
  nn::VisionTransformer<float> a(tiny());
  const test::TempDir dir("ckpt");

  // A NaN anywhere in a tensor: the file and tensor are named.
  TensorF head = a.state_dict().at("head.weight").clone();
  head.data()[5] = NAN;
  io::SafetensorsWriter w;
  for (auto& [n, p] : a.named_parameters()) w.add(n, n == "head.weight" ? head : p);
  w.write(dir / "nan.safetensors");
  REQUIRE_THROWS_WITH(io::load_checkpoint<float>(dir / "nan.safetensors"),
                      Catch::Contains("nan.safetensors: tensor 'head.weight' holds a non-finite value"));

  // A config claiming depth 1000 and width 4096 over a file of 8-wide weights:
  // refused before the model (gigabytes) is allocated.
  auto cfg = io::config_to_json(a.config);
  cfg["depth"] = 1000, cfg["dim"] = 4096, cfg["mlp_dim"] = 16384, cfg["heads"] = 8;
  io::SafetensorsWriter big;
  big.set_metadata(io::kConfigKey, cfg.dump());
  for (auto& [n, p] : a.named_parameters()) big.add(n, p);
  big.write(dir / "big.safetensors");
  const auto ck = io::load_checkpoint<float>(dir / "big.safetensors");
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(ck, ""),
                      Catch::Contains("big.safetensors: holds ") && Catch::Contains("model parameters but its config has"));

  // The file's own config against an architecture named explicitly.
  io::save_checkpoint(dir / "ok.safetensors", a, {"x", "y", "z"});
  const auto ok = io::load_checkpoint<float>(dir / "ok.safetensors");
  CHECK(io::model_from_checkpoint(ok, "")->num_parameters() == a.num_parameters());
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(ok, "cifar-tiny"),
                      Catch::Contains("holds a 'tiny' model, not the architecture 'cifar-tiny'"));
}

TEST_CASE("weights without a config (converted from timm) load into the preset named by --model",
          "[io][checkpoint]") {
  nn::VitConfig cfg = nn::vit_preset("fmnist-tiny");
  cfg.num_classes = 7;  // the file's head decides the class count, not the preset
  nn::VisionTransformer<float> a(cfg);
  const test::TempDir dir("ckpt");
  auto write_without_config = [&](const std::string& name, const std::string& skip,
                                  const std::vector<std::string>& classes) {
    io::SafetensorsWriter w;
    if (!classes.empty()) w.set_metadata(io::kClassesKey, nlohmann::json(classes).dump());
    for (auto& [n, p] : a.named_parameters())
      if (n != skip) w.add(n, p);
    w.write(dir / name);
    return io::load_checkpoint<float>(dir / name);
  };

  const auto ck = write_without_config("timm.safetensors", "", {});
  REQUIRE_FALSE(ck.config.has_value());
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(ck, ""), Catch::Contains("name the architecture with --model"));
  const auto m = io::model_from_checkpoint(ck, "fmnist-tiny");
  CHECK(m->config.num_classes == 7);
  for (auto& [n, p] : a.state_dict()) {
    const TensorF q = m->state_dict().at(n);
    REQUIRE(q.shape() == p.shape());
    CHECK(std::equal(p.data(), p.data() + p.numel(), q.data()));
  }
  // Another architecture of the same head: the first tensor that differs is named.
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(ck, "cifar-tiny"), Catch::Contains("timm.safetensors"));
  // A missing tensor is named.
  const auto missing = write_without_config("missing.safetensors", "blocks.3.mlp.fc1.bias", {});
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(missing, "fmnist-tiny"),
                      Catch::Contains("missing.safetensors") && Catch::Contains("blocks.3.mlp.fc1.bias"));
  // Class names that do not match the head: refused, as eval and predict index them by class.
  const auto names = write_without_config("names.safetensors", "", {"a", "b", "c"});
  REQUIRE_THROWS_WITH(io::model_from_checkpoint(names, "fmnist-tiny"),
                      Catch::Contains("names.safetensors: 3 class names for a model with 7 classes"));
}

TEST_CASE("config JSON carries gelu and pos_embed, older files read as erf and learned",
          "[io][checkpoint]") {
  nn::VitConfig c = tiny();
  c.gelu = GeluApprox::Tanh, c.pos_embed = nn::PosEmbedKind::SinCos, c.representation_size = 6;
  const auto j = io::config_to_json(c);
  CHECK(j.at("gelu") == "tanh");
  CHECK(j.at("pos_embed") == "sincos");
  const nn::VitConfig back = io::config_from_json(j, "cfg");
  CHECK(back.gelu == GeluApprox::Tanh);
  CHECK(back.pos_embed == nn::PosEmbedKind::SinCos);
  CHECK(back.representation_size == 6);
  CHECK(io::config_to_json(back) == j);

  auto old = j;
  old.erase("pos_embed");  // written before sin-cos existed
  CHECK(io::config_from_json(old, "cfg").pos_embed == nn::PosEmbedKind::Learned);
  auto bad = j;
  bad["pos_embed"] = "rope";
  REQUIRE_THROWS_WITH(io::config_from_json(bad, "run/model.safetensors"),
                      Catch::Contains("run/model.safetensors: pos_embed must be \"learned\" or \"sincos\", got \"rope\""));
  bad["pos_embed"] = 3;
  REQUIRE_THROWS_WITH(io::config_from_json(bad, "cfg"), Catch::Contains("field 'pos_embed' has the wrong type"));
}

TEST_CASE("a sin-cos model survives save and load, still fixed", "[io][checkpoint]") {
  nn::VitConfig c = tiny();
  c.pos_embed = nn::PosEmbedKind::SinCos, c.gelu = GeluApprox::Tanh;
  nn::VisionTransformer<float> a(c);
  const test::TempDir dir("ckpt");
  io::save_checkpoint(dir / "sincos.safetensors", a, {"x", "y", "z"});
  const auto ck = io::load_checkpoint<float>(dir / "sincos.safetensors");
  REQUIRE(ck.model.count("pos_embed") == 1);  // in the state dict, as timm and MAE keep it
  const auto b = io::model_from_checkpoint(ck, "");
  CHECK(b->config.pos_embed == nn::PosEmbedKind::SinCos);
  CHECK(b->config.gelu == GeluApprox::Tanh);
  CHECK_FALSE(b->pos_embed.requires_grad());
  test::require_close(b->pos_embed, nn::sincos_pos_embed<float>(2, 2, 8), 0, 0);
  const TensorF x = test::randn<float>({2, 3, 8, 8}, 6);
  a.eval(), b->eval();
  NoGradGuard ng;
  test::require_close(b->forward(x), a.forward(x), 0, 0);
}
