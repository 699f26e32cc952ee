// Fuzz target: a checkpoint file loaded into a model, as `vit eval`, `predict`
// and `train --resume` do: safetensors, then the vit.config / vit.classes
// metadata, the trainer's vit.train_state entry (examples/vit/train_state.hpp,
// which owns its meaning), then every tensor's name and shape checked against
// a model. Two models: the file's own config when it has one (model_from_checkpoint,
// which must refuse configs far larger than the file), and a fixed tiny one.
#include <vit/io/checkpoint.hpp>

#include "../../examples/vit/train_state.hpp"
#include "fuzz_target.hpp"

namespace {
vit::nn::VitConfig tiny_config() {
  vit::nn::VitConfig c;
  c.name = "fuzz-tiny";
  c.image_size = 8, c.in_chans = 1, c.patch_size = 4;
  c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 16, c.num_classes = 3;
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vit::nn::VisionTransformer<float> tiny(tiny_config());
  try {
    const auto file = vit::io::SafetensorsFile::parse(std::vector<uint8_t>(data, data + size), "fuzz");
    const auto ck = vit::io::checkpoint_from<float>(file);
    try {
      (void)vitcli::state_from_checkpoint(ck);  // as `vit train --resume` reads it
    } catch (const vit::Error&) {
    }
    bool loaded = false;
    if (ck.config) {
      try {
        (void)vit::io::model_from_checkpoint(ck, "");
        loaded = true;
      } catch (const vit::Error&) {
      }
    }
    vit::io::load_model_weights(tiny, ck);
    if (loaded) ++vit_fuzz::accepted;
  } catch (const vit::Error&) {
  }
  return 0;
}
