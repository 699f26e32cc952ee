// Checkpoints: one safetensors file holding a ViT under timm's tensor names,
// optionally the optimizer's moments ("optimizer.<param>.<state>"), and in
// __metadata__ the model config, the class names and whatever string entries
// the caller adds. A trainer keeps its own bookkeeping (step, data cursor,
// RNG state) in such an entry: the library carries it and does not read it.
// A weights-only file (no optimizer, no extra entries) loads straight into
// timm with strict=True; the extra metadata keys are ignored there.
#pragma once

#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vit/io/safetensors.hpp"
#include "vit/nn/model_stats.hpp"
#include "vit/nn/presets.hpp"
#include "vit/nn/vision_transformer.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::io {

inline const char* kConfigKey = "vit.config";
inline const char* kClassesKey = "vit.classes";
inline const char* kOptimizerPrefix = "optimizer.";

inline nlohmann::json config_to_json(const nn::VitConfig& c) {
  return {{"name", c.name},
          {"image_size", c.image_size},
          {"in_chans", c.in_chans},
          {"patch_size", c.patch_size},
          {"dim", c.dim},
          {"depth", c.depth},
          {"heads", c.heads},
          {"mlp_dim", c.mlp_dim},
          {"num_classes", c.num_classes},
          {"qkv_bias", c.qkv_bias},
          {"drop_rate", c.drop_rate},
          {"drop_path_rate", c.drop_path_rate},
          {"attn_drop_rate", c.attn_drop_rate},
          {"representation_size", c.representation_size},
          {"layer_norm_eps", c.layer_norm_eps},
          {"gelu", c.gelu == GeluApprox::Tanh ? "tanh" : "erf"},
          {"pos_embed", nn::pos_embed_name(c.pos_embed)},
          {"seed", c.seed}};
}

namespace detail {
/// j[key] as V, or a vit::Error naming the source and the key.
template <class V>
V json_field(const nlohmann::json& j, const char* key, const std::string& source) {
  VIT_CHECK(j.is_object() && j.contains(key), source, ": missing field '", key, "'");
  try {
    return j.at(key).get<V>();
  } catch (const nlohmann::json::exception&) {
    VIT_CHECK(false, source, ": field '", key, "' has the wrong type (", j.at(key).type_name(), ")");
  }
  return V{};
}
inline nlohmann::json parse_json(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    VIT_CHECK(false, source, ": not valid JSON (", e.what(), ")");
  }
  return {};
}
}  // namespace detail

/// A VitConfig from its JSON form; every missing or mistyped field is an error
/// naming `source`, and the result is validated.
inline nn::VitConfig config_from_json(const nlohmann::json& j, const std::string& source) {
  using detail::json_field;
  nn::VitConfig c;
  c.name = json_field<std::string>(j, "name", source);
  c.image_size = json_field<int64_t>(j, "image_size", source);
  c.in_chans = json_field<int64_t>(j, "in_chans", source);
  c.patch_size = json_field<int64_t>(j, "patch_size", source);
  c.dim = json_field<int64_t>(j, "dim", source);
  c.depth = json_field<int64_t>(j, "depth", source);
  c.heads = json_field<int64_t>(j, "heads", source);
  c.mlp_dim = json_field<int64_t>(j, "mlp_dim", source);
  c.num_classes = json_field<int64_t>(j, "num_classes", source);
  c.qkv_bias = json_field<bool>(j, "qkv_bias", source);
  c.drop_rate = json_field<double>(j, "drop_rate", source);
  c.drop_path_rate = json_field<double>(j, "drop_path_rate", source);
  // Absent in checkpoints written before attention dropout existed: 0, as they trained.
  c.attn_drop_rate = j.contains("attn_drop_rate") ? json_field<double>(j, "attn_drop_rate", source) : 0.0;
  c.representation_size = json_field<int64_t>(j, "representation_size", source);
  c.layer_norm_eps = json_field<double>(j, "layer_norm_eps", source);
  const auto gelu = json_field<std::string>(j, "gelu", source);
  VIT_CHECK(gelu == "erf" || gelu == "tanh", source, ": gelu must be \"erf\" or \"tanh\", got \"",
            gelu, "\"");
  c.gelu = gelu == "tanh" ? GeluApprox::Tanh : GeluApprox::None;
  // Absent in checkpoints written before sin-cos existed: learned, as they trained.
  if (j.contains("pos_embed")) {
    const auto pos = json_field<std::string>(j, "pos_embed", source);
    VIT_CHECK(pos == "learned" || pos == "sincos", source,
              ": pos_embed must be \"learned\" or \"sincos\", got \"", vit::detail::printable(pos), "\"");
    c.pos_embed = nn::pos_embed_kind(pos);
  }
  c.seed = json_field<uint64_t>(j, "seed", source);
  // Bound sizes before anything allocates from them (the file may be hostile).
  VIT_CHECK(c.image_size <= 4096 && c.dim <= 65536 && c.depth <= 1024 && c.mlp_dim <= 262144 &&
                c.num_classes <= 1000000 && c.in_chans <= 64 && c.representation_size <= 65536,
            source, ": model config has implausible sizes");
  try {
    nn::validate(c);
  } catch (const Error& e) {
    VIT_CHECK(false, source, ": ", e.what());
  }
  return c;
}

/// Writes model (+ optimizer state when given, + `more_state` beside it)
/// atomically, with `metadata` added to __metadata__ as is (a trainer's state,
/// the normalisation); its keys may not be the checkpoint's own (format,
/// vit.config, vit.classes).
template <class T>
void save_checkpoint(const std::string& path, const nn::VisionTransformer<T>& model,
                     const std::vector<std::string>& class_names,
                     const optim::Optimizer<T>* optimizer = nullptr,
                     const std::map<std::string, std::string>& metadata = {},
                     const std::vector<std::pair<std::string, Tensor<T>>>& more_state = {}) {
  SafetensorsWriter w;
  for (const auto& [k, v] : metadata) {
    VIT_CHECK(k != "format" && k != kConfigKey && k != kClassesKey, "save_checkpoint: metadata key '",
              k, "' is the checkpoint's own");
    w.set_metadata(k, v);
  }
  w.set_metadata("format", "pt");  // what timm/safetensors.torch write and expect
  w.set_metadata(kConfigKey, config_to_json(model.config).dump());
  w.set_metadata(kClassesKey, nlohmann::json(class_names).dump());
  // .to(CPU) is the tensor itself on the CPU, a host copy of a model on the GPU.
  for (const auto& [name, p] : model.named_parameters()) w.add(name, p.to(Device::CPU));
  if (optimizer)
    for (const auto& [name, t] : optimizer->named_state())
      w.add(kOptimizerPrefix + name, t.to(Device::CPU));
  // Training state beside the optimizer's (e.g. an EMA of the weights), under
  // the same prefix, so readers of the weights leave it aside as they do the moments.
  for (const auto& [name, t] : more_state) w.add(kOptimizerPrefix + name, t.to(Device::CPU));
  w.write(path);
}

/// A checkpoint read back: everything optional except the model tensors.
template <class T>
struct Checkpoint {
  std::string path;
  std::optional<nn::VitConfig> config;       // absent in weights from timm
  std::vector<std::string> class_names;      // empty when absent
  std::map<std::string, Tensor<T>> model;    // timm names
  std::vector<std::pair<std::string, Tensor<T>>> optimizer;  // "<param>.<state>"
  std::map<std::string, std::string> metadata;  // all of __metadata__, the caller's entries too
};

/// Class names, when a file has them, must be one per output of the head:
/// eval and predict index them by class.
template <class T>
void check_class_count(const Checkpoint<T>& ck, int64_t num_classes) {
  VIT_CHECK(ck.class_names.empty() || static_cast<int64_t>(ck.class_names.size()) == num_classes,
            ck.path, ": ", ck.class_names.size(), " class names for a model with ", num_classes,
            " classes");
}

/// The checkpoint held in an already validated safetensors file; errors name
/// f.source(). The config and class names are parsed and checked (other
/// metadata entries are the caller's to read); tensors convert to T.
template <class T>
Checkpoint<T> checkpoint_from(const SafetensorsFile& f) {
  const std::string& path = f.source();
  Checkpoint<T> ck;
  ck.path = path;
  const auto& meta = f.metadata();
  ck.metadata = meta;
  if (auto it = meta.find(kConfigKey); it != meta.end())
    ck.config = config_from_json(detail::parse_json(it->second, path + " (" + kConfigKey + ")"),
                                 path + " (" + kConfigKey + ")");
  if (auto it = meta.find(kClassesKey); it != meta.end()) {
    const std::string src = path + " (" + kClassesKey + ")";
    const auto j = detail::parse_json(it->second, src);
    VIT_CHECK(j.is_array(), src, ": class names must be a JSON array of strings");
    for (const auto& n : j) {
      VIT_CHECK(n.is_string(), src, ": class names must be a JSON array of strings");
      ck.class_names.push_back(n.get<std::string>());
    }
  }
  const std::string prefix = kOptimizerPrefix;
  for (const auto& info : f.tensors()) {
    Tensor<T> t = f.tensor<T>(info.name);
    // A NaN or Inf weight (a run that diverged, a corrupt file) would only
    // surface later as NaN logits or skipped steps: refuse it here.
    const T* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i)
      VIT_CHECK(std::isfinite(p[i]), path, ": tensor '", vit::detail::printable(info.name),
                "' holds a non-finite value (", p[i], ") at element ", i);
    if (info.name.rfind(prefix, 0) == 0)
      ck.optimizer.emplace_back(info.name.substr(prefix.size()), std::move(t));
    else
      ck.model.emplace(info.name, std::move(t));
  }
  if (ck.config) check_class_count(ck, ck.config->num_classes);
  return ck;
}

/// Reads and validates the checkpoint file at `path` (see checkpoint_from).
template <class T>
Checkpoint<T> load_checkpoint(const std::string& path) {
  return checkpoint_from<T>(SafetensorsFile::read(path));
}

/// Copies the checkpoint's tensors into `model`: every parameter must be there
/// with its shape, and no unknown tensor may appear. Errors name the file.
template <class T>
void load_model_weights(nn::VisionTransformer<T>& model, const Checkpoint<T>& ck) {
  try {
    model.load_state_dict(ck.model, /*strict=*/true);
  } catch (const Error& e) {
    VIT_CHECK(false, ck.path, ": ", e.what());
  }
}

/// A model built from a checkpoint and loaded with its weights (every tensor
/// name and shape must match). The architecture is the file's own config, or,
/// for files that carry none (weights converted from timm), the preset
/// `preset_name` with the class count of the file's head. A config asking for
/// far more parameters than the file holds is refused before anything is
/// allocated, so a hostile file cannot make us allocate much beyond its size.
template <class T>
std::unique_ptr<nn::VisionTransformer<T>> model_from_checkpoint(const Checkpoint<T>& ck,
                                                                const std::string& preset_name) {
  nn::VitConfig cfg;
  if (ck.config) {
    cfg = *ck.config;
    if (!preset_name.empty()) {  // named anyway: it must be what the file holds
      const nn::VitConfig p = nn::vit_preset(preset_name);
      VIT_CHECK(p.image_size == cfg.image_size && p.in_chans == cfg.in_chans &&
                    p.patch_size == cfg.patch_size && p.dim == cfg.dim && p.depth == cfg.depth &&
                    p.heads == cfg.heads && p.mlp_dim == cfg.mlp_dim,
                ck.path, ": holds a '", cfg.name, "' model, not the architecture '", preset_name,
                "' named by --model");
    }
  } else {
    VIT_CHECK(!preset_name.empty(), ck.path,
              ": the file carries no model config (weights from timm?); name the architecture "
              "with --model");
    cfg = nn::vit_preset(preset_name);
    const auto it = ck.model.find("head.weight");
    VIT_CHECK(it != ck.model.end() && it->second.dim() == 2, ck.path,
              ": missing tensor 'head.weight'");
    cfg.num_classes = it->second.shape()[0];  // the class count is the head's, not the preset's
    check_class_count(ck, cfg.num_classes);
    try {
      nn::validate(cfg);
    } catch (const Error& e) {
      VIT_CHECK(false, ck.path, ": ", e.what());
    }
  }
  int64_t in_file = 0;
  for (const auto& [name, t] : ck.model) in_file += t.numel();
  const int64_t expected = nn::model_stats(cfg, 1).parameters;
  // Small differences get the strict loader's message naming the tensor.
  VIT_CHECK(expected <= 2 * in_file + (int64_t(1) << 20), ck.path, ": holds ", in_file,
            " model parameters but its ", ck.config ? "config" : "architecture '" + preset_name + "'",
            " has ", expected);
  auto model = std::make_unique<nn::VisionTransformer<T>>(cfg);
  load_model_weights(*model, ck);
  return model;
}

}  // namespace vit::io
