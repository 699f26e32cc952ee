// Random erasing with a configurable area range: every erased box covers a
// share of the image within [min_area, max_area] (up to rounding of its sides).
#include "support/check.hpp"
#include "vit/data/random_erasing.hpp"

using namespace vit;
using namespace vit::data;

TEST_CASE("random_erasing keeps the box area within the range given", "[data][random_erasing]") {
  const int64_t C = 3, H = 48, W = 48;
  std::vector<float> img(size_t(C * H * W));
  const std::vector<std::pair<double, double>> ranges = {{0.1, 0.4}, {0.02, 1.0 / 3}, {0.25, 0.25}};
  for (const auto& [lo, hi] : ranges) {
    INFO(lo << " .. " << hi);
    double min_share = 1, max_share = 0;
    int erased = 0;
    for (uint64_t s = 0; s < 400; ++s) {
      Generator g(s);
      const ErasedBox b = random_erasing(img.data(), C, H, W, 1.0, g, lo, hi);
      if (b.empty()) continue;
      ++erased;
      const double share = double(b.height * b.width) / double(H * W);
      // Each side is rounded: at most half a pixel off per side.
      const double slack = (b.height + b.width + 1) / 2.0 / double(H * W);
      REQUIRE(share >= lo - slack);
      REQUIRE(share <= hi + slack);
      min_share = std::min(min_share, share), max_share = std::max(max_share, share);
    }
    CHECK(erased > 300);
    if (hi > lo) CHECK(max_share - min_share > 0.5 * (hi - lo));
  }
  Generator g(0);
  REQUIRE_THROWS_WITH(random_erasing(img.data(), C, H, W, 1.0, g, 0.5, 0.1),
                      Catch::Contains("area (0.5, 0.1)"));
  REQUIRE_THROWS_WITH(random_erasing(img.data(), C, H, W, 1.0, g, 0.0, 0.1),
                      Catch::Contains("area (0, 0.1)"));
}

TEST_CASE("random_erasing's default area is timm's", "[data][random_erasing]") {
  const int64_t C = 1, H = 32, W = 32;
  std::vector<float> a(size_t(H * W)), b(size_t(H * W));
  for (uint64_t s = 0; s < 50; ++s) {
    Generator g(s), h(s);
    const ErasedBox x = random_erasing(a.data(), C, H, W, 1.0, g);
    const ErasedBox y = random_erasing(b.data(), C, H, W, 1.0, h, 0.02, 1.0 / 3);
    REQUIRE((x.top == y.top && x.left == y.left && x.height == y.height && x.width == y.width));
  }
  CHECK(kErasingMinArea == 0.02);
  CHECK(kErasingMaxArea == 1.0 / 3);
}
