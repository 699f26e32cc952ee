// RandomResizedCrop: the window draw against torchvision's algorithm (bounds,
// distribution, the fallback branches, determinism per seed), the resampling
// against cropping then resizing, and the region resize it is built on.
#include <cmath>
#include <set>
#include <string>

#include "support/check.hpp"
#include "support/noise_image.hpp"
#include "vit/data/random_resized_crop.hpp"
#include "vit/data/transforms.hpp"

using namespace vit;
using namespace vit::data;
using test::noise_image;

namespace {
Image crop(const Image& src, const CropWindow& c) {
  Image out(src.channels, c.height, c.width);
  for (int64_t ch = 0; ch < src.channels; ++ch)
    for (int64_t y = 0; y < c.height; ++y)
      for (int64_t x = 0; x < c.width; ++x) out.at(ch, y, x) = src.at(ch, c.top + y, c.left + x);
  return out;
}
}  // namespace

TEST_CASE("resize_region_into is crop then resize", "[data][rrc]") {
  const Image img = noise_image(3, 37, 53, 1);
  ResizeScratch scratch;
  for (const auto& [c, oh, ow] : std::vector<std::tuple<CropWindow, int64_t, int64_t>>{
           {{3, 5, 20, 30}, 16, 16},   // both passes, downscale
           {{0, 0, 37, 53}, 37, 20},   // horizontal only
           {{2, 7, 30, 11}, 12, 11},   // vertical only
           {{10, 10, 5, 7}, 19, 23},   // upscale
           {{1, 2, 8, 9}, 8, 9}}) {    // a plain copy
    INFO(c.top << "," << c.left << " " << c.height << "x" << c.width << " -> " << oh << "x" << ow);
    std::vector<uint8_t> out(static_cast<size_t>(3 * oh * ow));
    resize_region_into(img.data.data(), 3, 37, 53, c.top, c.left, c.height, c.width, oh, ow,
                       out.data(), scratch);
    CHECK(out == resize(crop(img, c), oh, ow).data);
  }
  std::vector<uint8_t> out(16);
  REQUIRE_THROWS_WITH(resize_region_into(img.data.data(), 3, 37, 53, 30, 0, 8, 4, 2, 2, out.data(),
                                         scratch),
                      Catch::Contains("resize: window 8x4 at (30,0) outside a 37x53 image"));
}

TEST_CASE("random_resized_crop windows lie inside and follow scale and ratio", "[data][rrc]") {
  const int64_t H = 240, W = 320;
  double log_ratio_sum = 0, min_share = 1, max_share = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    Generator g(static_cast<uint64_t>(i));
    const CropWindow c = random_resized_crop_window(H, W, 0.08, 1.0, 3.0 / 4, 4.0 / 3, g);
    REQUIRE(c.height >= 1);
    REQUIRE(c.width >= 1);
    REQUIRE(c.top >= 0);
    REQUIRE(c.left >= 0);
    REQUIRE(c.top + c.height <= H);
    REQUIRE(c.left + c.width <= W);
    const double share = double(c.height * c.width) / double(H * W);
    const double ratio = double(c.width) / double(c.height);
    // Rounding each side moves the area and the ratio by a little.
    CHECK(share >= 0.08 * 0.9);
    CHECK(share <= 1.0);
    CHECK(ratio >= 0.75 * 0.93);
    CHECK(ratio <= 4.0 / 3 / 0.93);
    log_ratio_sum += std::log(ratio);
    min_share = std::min(min_share, share), max_share = std::max(max_share, share);
  }
  // Fitting favours wide windows in this wide image; on a square one the
  // log-uniform ratio is symmetric about 1.
  CHECK(log_ratio_sum / n > 0);
  double square_sum = 0;
  for (int i = 0; i < n; ++i) {
    Generator g(static_cast<uint64_t>(i));
    const CropWindow c = random_resized_crop_window(256, 256, 0.08, 1.0, 3.0 / 4, 4.0 / 3, g);
    square_sum += std::log(double(c.width) / double(c.height));
  }
  CHECK(std::abs(square_sum / n) < 0.01);
  CHECK(min_share < 0.1);
  CHECK(max_share > 0.9);

  SECTION("a narrow scale gives that area share") {
    for (uint64_t s = 0; s < 200; ++s) {
      Generator g(s);
      const CropWindow c = random_resized_crop_window(H, W, 0.25, 0.25, 1.0, 1.0, g);
      CHECK(c.height == c.width);
      CHECK(std::abs(c.height - 139) <= 1);  // sqrt(0.25 * 240 * 320) = 138.6
    }
  }
}

TEST_CASE("random_resized_crop is deterministic per seed", "[data][rrc]") {
  const Image img = noise_image(3, 50, 70, 2);
  std::set<std::string> seen;  // the crops' bytes (a set of vectors trips a g++ 12 false warning)
  for (uint64_t s = 0; s < 6; ++s) {
    Generator a(s), b(s);
    const Image x = random_resized_crop(img, 24, 0.08, 1.0, 0.75, 4.0 / 3, a);
    const Image y = random_resized_crop(img, 24, 0.08, 1.0, 0.75, 4.0 / 3, b);
    REQUIRE(x.height == 24);
    REQUIRE(x.width == 24);
    CHECK(x.data == y.data);
    CHECK(a.offset() == b.offset());
    seen.insert(std::string(x.data.begin(), x.data.end()));
    // The image is the window, cropped and resized.
    Generator c(s);
    const CropWindow w = random_resized_crop_window(50, 70, 0.08, 1.0, 0.75, 4.0 / 3, c);
    CHECK(x.data == resize(crop(img, w), 24, 24).data);
  }
  CHECK(seen.size() == 6);
}

TEST_CASE("random_resized_crop falls back to a centre crop clamped to the ratio", "[data][rrc]") {
  Generator g(3);
  // Every attempt is the whole area at aspect 2, wider than the square: no fit.
  CropWindow c = random_resized_crop_window(40, 40, 1.0, 1.0, 2.0, 2.0, g);
  CHECK((c.height == 20 && c.width == 40 && c.top == 10 && c.left == 0));
  c = random_resized_crop_window(40, 40, 1.0, 1.0, 0.25, 0.25, g);
  CHECK((c.height == 40 && c.width == 10 && c.top == 0 && c.left == 15));
  c = random_resized_crop_window(41, 40, 1.0, 1.0, 2.0, 2.0, g);
  CHECK((c.height == 20 && c.top == 10));  // (41 - 20) // 2
  // The ratio range holds the image's own, but fitting attempts are rare:
  // mostly the whole image comes back.
  int whole = 0;
  for (uint64_t s = 0; s < 50; ++s) {
    Generator h(s);
    const CropWindow w = random_resized_crop_window(100, 100, 1.0, 1.0, 0.01, 100.0, h);
    REQUIRE(w.top + w.height <= 100);
    REQUIRE(w.left + w.width <= 100);
    whole += w.height == 100 && w.width == 100 && w.top == 0 && w.left == 0;
  }
  CHECK(whole >= 40);
}

TEST_CASE("random_resized_crop refuses bad parameters", "[data][rrc]") {
  Generator g(0);
  REQUIRE_THROWS_WITH(random_resized_crop_window(10, 10, 0.5, 0.2, 0.75, 1.33, g),
                      Catch::Contains("scale (0.5, 0.2)"));
  REQUIRE_THROWS_WITH(random_resized_crop_window(10, 10, 0.1, 1.0, 0.0, 1.33, g),
                      Catch::Contains("ratio (0, 1.33)"));
  REQUIRE_THROWS_WITH(random_resized_crop_window(0, 10, 0.1, 1.0, 0.5, 1.33, g),
                      Catch::Contains("image 0x10"));
}

TEST_CASE("augment_and_normalize crops any size to the output with RandomResizedCrop",
          "[data][rrc]") {
  const Image img = noise_image(3, 30, 45, 4);
  AugmentConfig cfg;
  cfg.random_resized_crop = true, cfg.hflip = false, cfg.crop_padding = 4;
  const Normalization norm{{0.5f}, {0.25f}};
  std::vector<float> out(3 * 16 * 16);
  Generator g(9), h(9);
  augment_and_normalize(img.data.data(), 3, 30, 45, 16, 16, cfg, norm, g, out.data());
  const Image want = random_resized_crop(img, 16, 0.08, 1.0, 0.75, 4.0 / 3, h);
  std::vector<float> ref(out.size());
  to_normalized_float(want, norm, ref.data());
  CHECK(out == ref);
  cfg.random_resized_crop = false;
  REQUIRE_THROWS_WITH(augment_and_normalize(img.data.data(), 3, 30, 45, 16, 16, cfg, norm, g,
                                            out.data()),
                      Catch::Contains("needs random_resized_crop"));
}
