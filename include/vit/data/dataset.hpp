// Dataset and Image: the in-memory forms every reader produces and every
// transform consumes. Pixels stay uint8 in CHW order (as CIFAR stores them and
// as the model wants them), so a whole CIFAR-10 or Fashion-MNIST split is a few
// hundred MB at most and conversion to float happens once per sample, in the
// loader, fused with normalisation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vit/core/error.hpp"

namespace vit::data {

/// One image, uint8, CHW (channel planes, each row-major height x width).
struct Image {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> data;  // channels * height * width

  Image() = default;
  Image(int64_t c, int64_t h, int64_t w) : channels(c), height(h), width(w), data(c * h * w) {}

  int64_t numel() const { return channels * height * width; }
  uint8_t& at(int64_t c, int64_t y, int64_t x) { return data[(c * height + y) * width + x]; }
  uint8_t at(int64_t c, int64_t y, int64_t x) const { return data[(c * height + y) * width + x]; }
};

/// A labelled image-classification split held in memory: n images of the same
/// size, uint8 CHW, back to back, in file order.
struct Dataset {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels;              // size() * image_numel()
  std::vector<int32_t> labels;              // in [0, class_names.size())
  std::vector<std::string> class_names;     // index = label

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t image_numel() const { return channels * height * width; }
  const uint8_t* image_data(int64_t i) const { return pixels.data() + i * image_numel(); }

  /// A copy of image i as an Image.
  Image image(int64_t i) const {
    VIT_CHECK(i >= 0 && i < size(), "Dataset::image: index ", i, " out of range for ", size(), " images");
    Image img(channels, height, width);
    std::copy(image_data(i), image_data(i) + image_numel(), img.data.begin());
    return img;
  }
};

}  // namespace vit::data
