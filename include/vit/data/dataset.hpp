// Dataset and Image: the in-memory forms every reader produces and every
// transform consumes. Pixels stay uint8 in CHW order (as CIFAR stores them and
// as the model wants them), so a whole CIFAR-10 or Fashion-MNIST split is a few
// hundred MB at most and conversion to float happens once per sample, in the
// loader, fused with normalisation.
#pragma once

#include <algorithm>
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

/// Where image i of a Dataset of mixed sizes lies in `pixels`, and its size.
struct ImageExtent {
  int64_t offset = 0;  // first byte in Dataset::pixels
  int64_t height = 0, width = 0;
};

/// A labelled image-classification split held in memory, uint8 CHW images
/// back to back in file order. Either all of them are height x width (CIFAR,
/// MNIST: `extents` empty, image i at i * image_numel()), or each has its own
/// size (image folders keep each photo's aspect ratio: `extents` has one entry
/// per image, height and width are 0) and the loader crops them to the
/// model's size.
struct Dataset {
  int64_t channels = 0;
  int64_t height = 0;                       // 0 when the sizes vary
  int64_t width = 0;
  std::vector<uint8_t> pixels;              // every image's bytes, in order
  std::vector<int32_t> labels;              // in [0, class_names.size())
  std::vector<std::string> class_names;     // index = label
  std::vector<ImageExtent> extents;         // per image when the sizes vary; else empty

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  bool variable_size() const { return !extents.empty(); }
  /// Bytes of one image of a fixed-size set.
  int64_t image_numel() const { return channels * height * width; }
  int64_t image_height(int64_t i) const { return extents.empty() ? height : extents[i].height; }
  int64_t image_width(int64_t i) const { return extents.empty() ? width : extents[i].width; }
  const uint8_t* image_data(int64_t i) const {
    return pixels.data() + (extents.empty() ? i * image_numel() : extents[i].offset);
  }

  /// A copy of image i as an Image.
  Image image(int64_t i) const {
    VIT_CHECK(i >= 0 && i < size(), "Dataset::image: index ", i, " out of range for ", size(),
              " images");
    Image img(channels, image_height(i), image_width(i));
    std::copy(image_data(i), image_data(i) + img.numel(), img.data.begin());
    return img;
  }
};

}  // namespace vit::data
