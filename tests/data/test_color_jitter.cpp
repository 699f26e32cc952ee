// ColorJitter: each of brightness, contrast and saturation against PIL's
// ImageEnhance formulas (blend with a degenerate image in float, truncated),
// the factor ranges, the random order, and grey images.
#include <algorithm>
#include <set>

#include "support/check.hpp"
#include "support/noise_image.hpp"
#include "vit/data/color_jitter.hpp"

using namespace vit;
using namespace vit::data;
using test::noise_image;

namespace {
// Image.blend(degenerate, image, f) for one value, written out.
uint8_t blend(double degenerate, int v, float f) {
  const float t = float(degenerate) + f * float(v - degenerate);
  return t <= 0 ? 0 : t >= 255 ? 255 : uint8_t(t);
}
// PIL's convert("L"): (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
int luma(int r, int g, int b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }
ColorJitterDraw only(int op, double f) {
  ColorJitterDraw d;
  d.order = {op, (op + 1) % 3, (op + 2) % 3};
  (op == 0 ? d.brightness : op == 1 ? d.contrast : d.saturation) = f;
  return d;
}
}  // namespace

TEST_CASE("color jitter brightness scales towards black", "[data][color_jitter]") {
  const Image img = noise_image(3, 5, 7, 1);
  for (double f : {0.6, 1.3, 1.8}) {
    Image out = img;
    apply_color_jitter(out, only(0, f));
    for (size_t i = 0; i < img.data.size(); ++i)
      REQUIRE(out.data[i] == blend(0, img.data[i], float(f)));
  }
}

TEST_CASE("color jitter contrast blends with the mean grey level", "[data][color_jitter]") {
  const Image img = noise_image(3, 6, 9, 2);
  const int64_t plane = 54;
  double sum = 0;
  for (int64_t i = 0; i < plane; ++i)
    sum += luma(img.data[i], img.data[plane + i], img.data[2 * plane + i]);
  const int mean = int(sum / plane + 0.5);  // ImageStat mean, rounded as ImageEnhance.Contrast
  for (double f : {0.5, 1.4}) {
    Image out = img;
    apply_color_jitter(out, only(1, f));
    for (size_t i = 0; i < img.data.size(); ++i)
      REQUIRE(out.data[i] == blend(mean, img.data[i], float(f)));
  }
}

TEST_CASE("color jitter saturation blends with the greyscale image", "[data][color_jitter]") {
  const Image img = noise_image(3, 4, 8, 3);
  const int64_t plane = 32;
  for (double f : {0.0, 0.7, 1.5}) {
    Image out = img;
    apply_color_jitter(out, only(2, f));
    for (int64_t i = 0; i < plane; ++i) {
      const int l = luma(img.data[i], img.data[plane + i], img.data[2 * plane + i]);
      for (int64_t c = 0; c < 3; ++c)
        REQUIRE(out.data[c * plane + i] == blend(l, img.data[c * plane + i], float(f)));
    }
  }
  SECTION("grey images have no saturation to change") {
    const Image grey = noise_image(1, 4, 8, 4);
    Image out = grey;
    apply_color_jitter(out, only(2, 0.3));
    CHECK(out.data == grey.data);
  }
}

TEST_CASE("color jitter draws factors in range and a random order", "[data][color_jitter]") {
  const Image img = noise_image(3, 4, 4, 5);
  std::set<std::array<int, 3>> orders;
  for (uint64_t s = 0; s < 200; ++s) {
    Generator g(s), h(s);
    Image out = img;
    const ColorJitterDraw d = color_jitter(out, 0.4, g);
    for (double f : {d.brightness, d.contrast, d.saturation}) {
      REQUIRE(f >= 0.6 - 1e-6);
      REQUIRE(f <= 1.4 + 1e-6);
    }
    std::array<int, 3> sorted = d.order;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::array<int, 3>{0, 1, 2});
    orders.insert(d.order);
    Image again = img;
    apply_color_jitter(again, d);  // the draw says everything that was done
    REQUIRE(again.data == out.data);
    Image twice = img;
    color_jitter(twice, 0.4, h);
    REQUIRE(twice.data == out.data);  // same seed, same result
  }
  CHECK(orders.size() == 6);
  SECTION("strength above 1 keeps factors non-negative") {
    Generator g(1);
    Image out = img;
    for (int i = 0; i < 50; ++i) {
      const ColorJitterDraw d = color_jitter(out, 1.0, g);
      REQUIRE(std::min({d.brightness, d.contrast, d.saturation}) >= 0);
    }
  }
  SECTION("zero draws nothing and changes nothing") {
    Generator g(1);
    Image out = img;
    color_jitter(out, 0.0, g);
    CHECK(out.data == img.data);
    CHECK(g.offset() == 0);
    REQUIRE_THROWS_WITH(color_jitter(out, -0.1, g), Catch::Contains("strength -0.1"));
  }
}
