// The tiny ViT the whole-model tests share: 8x8 images of 2 channels, 4x4
// patches, 2 blocks, 3 classes. `dim` (2 heads) defaults to 8; the GPU's
// fused attention takes head dims from 16, so device tests ask for 32.
#pragma once

#include <vit/nn/vision_transformer.hpp>

namespace vit::test {

inline vit::nn::VitConfig tiny_vit_config(int64_t dim = 8) {
  vit::nn::VitConfig c;
  c.name = "tiny";
  c.image_size = 8, c.in_chans = 2, c.patch_size = 4;
  c.dim = dim, c.depth = 2, c.heads = 2, c.mlp_dim = dim * 3 / 2, c.num_classes = 3;
  c.seed = 11;
  return c;
}

}  // namespace vit::test
