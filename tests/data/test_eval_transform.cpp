// The evaluation transform (timm's resize to floor(size / crop_pct), centre
// crop) against the two steps written out by hand.
#include <cmath>

#include "support/check.hpp"
#include "support/noise_image.hpp"
#include "vit/data/eval_transform.hpp"

using namespace vit;
using namespace vit::data;
using test::noise_image;

TEST_CASE("eval_resize_size is timm's math.floor(size / crop_pct)", "[data][eval_transform]") {
  CHECK(eval_resize_size(224, 0.875) == 256);
  CHECK(eval_resize_size(224, 0.9) == 248);
  CHECK(eval_resize_size(224, 1.0) == 224);
  CHECK(eval_resize_size(384, 1.0) == 384);
  CHECK(eval_resize_size(32, 0.875) == 36);
  CHECK(eval_resize_size(224, 0.95) == 235);
  REQUIRE_THROWS_WITH(eval_resize_size(224, 0.0), Catch::Contains("crop_pct 0 is outside (0, 1]"));
  REQUIRE_THROWS_WITH(eval_resize_size(224, 1.5), Catch::Contains("crop_pct 1.5 is outside"));
  REQUIRE_THROWS_WITH(eval_resize_size(0, 0.875), Catch::Contains("size 0"));
}

TEST_CASE("eval_transform resizes the shorter side, then centre-crops", "[data][eval_transform]") {
  // (height, width) of landscape, portrait, square and upscaled inputs.
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{
           {50, 80}, {81, 47}, {40, 40}, {20, 31}, {36, 57}}) {
    INFO(h << "x" << w);
    const Image img = noise_image(3, h, w, uint64_t(h * w));
    const Image out = eval_transform(img, 32, 0.875);
    REQUIRE(out.channels == 3);
    REQUIRE(out.height == 32);
    REQUIRE(out.width == 32);
    // Shorter side 36; the longer int(36 * long / short), as torchvision's Resize(36).
    const int64_t rh = h <= w ? 36 : int64_t(36.0 * double(h) / double(w));
    const int64_t rw = h <= w ? int64_t(36.0 * double(w) / double(h)) : 36;
    const Image resized = resize(img, rh, rw);
    // CenterCrop: int(round((side - 32) / 2.0)), Python rounding half to even.
    const auto off = [](int64_t side) { return int64_t(std::nearbyint((side - 32) / 2.0)); };
    const int64_t top = off(rh), left = off(rw);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x)
          REQUIRE(out.at(c, y, x) == resized.at(c, top + y, left + x));
  }
  // (57 - 32) / 2 = 12.5 rounds to 12 (half to even), not 13.
  const Image img = noise_image(1, 36, 57, 5);
  const Image out = eval_transform(img, 32, 0.875);
  CHECK(out.at(0, 0, 0) == img.at(0, 2, 12));
}

TEST_CASE("eval_transform with crop_pct 1 keeps the whole shorter side", "[data][eval_transform]") {
  const Image img = noise_image(3, 24, 30, 6);
  const Image out = eval_transform(img, 24, 1.0);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 24; ++y)
      for (int64_t x = 0; x < 24; ++x) REQUIRE(out.at(c, y, x) == img.at(c, y, 3 + x));
}
