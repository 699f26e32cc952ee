// A uint8 image of uniform noise from a seed: test input for transforms and
// folder readers, where any pixel value may occur.
#pragma once

#include <cstdint>

#include "vit/core/rng.hpp"
#include "vit/data/dataset.hpp"

namespace vit::test {

inline vit::data::Image noise_image(int64_t c, int64_t h, int64_t w, uint64_t seed) {
  vit::data::Image img(c, h, w);
  vit::Generator g(seed);
  for (auto& v : img.data) v = static_cast<uint8_t>(g.next_u64() & 255);
  return img;
}

}  // namespace vit::test
