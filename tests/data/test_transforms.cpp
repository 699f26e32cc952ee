// Training transforms: crop geometry against an explicitly padded reference,
// flips, centre crop rounding, normalisation against hand-computed values,
// every RandAugment op on hand-computed cases or exact properties (the ops
// were also checked bit-exact against Pillow 13 while writing them), random
// erasing's rectangle and probability, and that everything random is a pure
// function of the generator (same state, same output, on any thread).
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "vit/data/transforms.hpp"

using namespace vit;
using namespace vit::data;

namespace {
Image random_image(int64_t C, int64_t H, int64_t W, uint64_t seed) {
  Generator g(seed);
  Image img(C, H, W);
  for (auto& v : img.data) v = static_cast<uint8_t>(g.next_u64() & 0xFF);
  return img;
}

Image image_of(int64_t C, int64_t H, int64_t W, const std::vector<int>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == C * H * W);
  Image img(C, H, W);
  for (size_t i = 0; i < values.size(); ++i) img.data[i] = static_cast<uint8_t>(values[i]);
  return img;
}

std::vector<int> values_of(const Image& img) { return {img.data.begin(), img.data.end()}; }

// Two channels that name each pixel: channel 0 holds y + 1, channel 1 x + 1,
// so 0 can only be padding.
Image coordinate_image(int64_t H, int64_t W) {
  Image img(2, H, W);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      img.at(0, y, x) = uint8_t(y + 1), img.at(1, y, x) = uint8_t(x + 1);
  return img;
}
}  // namespace

// ---- crop / flip / centre crop ------------------------------------------------------------------

TEST_CASE("pad_and_crop equals cropping an explicitly zero-padded image", "[data][transforms]") {
  const Image src = random_image(3, 32, 32, 1);
  Image padded(3, 40, 40);  // zero-initialised
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x) padded.at(c, y + 4, x + 4) = src.at(c, y, x);
  for (auto [top, left] :
       {std::pair<int64_t, int64_t>{0, 0}, {8, 8}, {4, 4}, {1, 6}, {7, 2}, {0, 8}}) {
    INFO("offset " << top << "," << left);
    const Image out = pad_and_crop(src, 32, 32, 4, top, left);
    REQUIRE(out.channels == 3);
    REQUIRE(out.height == 32);
    REQUIRE(out.width == 32);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x)
          REQUIRE(out.at(c, y, x) == padded.at(c, y + top, x + left));
  }
  CHECK(pad_and_crop(src, 32, 32, 4, 4, 4).data == src.data);
  CHECK_THROWS_AS(pad_and_crop(src, 32, 32, 4, 9, 0), Error);
  CHECK_THROWS_AS(pad_and_crop(src, 32, 32, 4, 0, -1), Error);
}

TEST_CASE("pad_and_crop on a hand-written 2x2 image", "[data][transforms]") {
  const Image src = image_of(1, 2, 2, {1, 2, 3, 4});
  CHECK(values_of(pad_and_crop(src, 2, 2, 1, 0, 0)) == std::vector<int>{0, 0, 0, 1});
  CHECK(values_of(pad_and_crop(src, 2, 2, 1, 2, 2)) == std::vector<int>{4, 0, 0, 0});
  CHECK(values_of(pad_and_crop(src, 2, 3, 1, 1, 0)) == std::vector<int>{0, 1, 2, 0, 3, 4});
}

TEST_CASE("random_crop draws every offset 0..2p and returns that window", "[data][transforms]") {
  const Image src = coordinate_image(32, 32);
  std::set<int64_t> tops, lefts;
  for (uint64_t seed = 0; seed < 600; ++seed) {
    Generator g(seed);
    const Image out = random_crop(src, 32, 4, g);
    CHECK(g.offset() == 2);  // one draw for the row, one for the column
    // The centre pixel is never padding (shift <= 4): it names its source.
    const int64_t top = out.at(0, 16, 16) - 1 - 16 + 4, left = out.at(1, 16, 16) - 1 - 16 + 4;
    REQUIRE(top >= 0);
    REQUIRE(top <= 8);
    REQUIRE(left >= 0);
    REQUIRE(left <= 8);
    REQUIRE(out.data == pad_and_crop(src, 32, 32, 4, top, left).data);
    tops.insert(top), lefts.insert(left);
  }
  CHECK(tops.size() == 9);
  CHECK(lefts.size() == 9);

  SECTION("no padding, same size: a copy and no draw") {
    Generator g(3);
    CHECK(random_crop(src, 32, 0, g).data == src.data);
    CHECK(g.offset() == 0);
  }
  SECTION("a smaller crop without padding stays inside") {
    for (uint64_t seed = 0; seed < 50; ++seed) {
      Generator g(seed);
      const Image out = random_crop(src, 24, 0, g);
      REQUIRE(out.height == 24);
      REQUIRE(out.at(0, 0, 0) >= 1);
      REQUIRE(out.at(0, 0, 0) <= 9);
      REQUIRE(out.at(1, 23, 23) >= 24);
      REQUIRE(out.at(1, 23, 23) <= 32);
    }
  }
  SECTION("a crop larger than the padded image is refused") {
    Generator g(0);
    CHECK_THROWS_AS(random_crop(src, 41, 4, g), Error);
  }
}

TEST_CASE("hflip mirrors rows and is its own inverse", "[data][transforms]") {
  Image img = image_of(2, 2, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  hflip(img);
  CHECK(values_of(img) == std::vector<int>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10});
  const Image src = random_image(3, 32, 31, 2);
  Image twice = src;
  hflip(twice);
  CHECK(twice.data != src.data);
  hflip(twice);
  CHECK(twice.data == src.data);
}

TEST_CASE("random_hflip respects p = 0, p = 1 and flips about half the time at 0.5",
          "[data][transforms]") {
  const Image src = random_image(1, 4, 5, 3);
  Image flipped = src;
  hflip(flipped);
  int flips = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Generator g0(seed), g1(seed), gh(seed);
    Image a = src, b = src, c = src;
    CHECK_FALSE(random_hflip(a, 0.0, g0));
    CHECK(a.data == src.data);
    CHECK(random_hflip(b, 1.0, g1));
    CHECK(b.data == flipped.data);
    const bool did = random_hflip(c, 0.5, gh);
    CHECK(c.data == (did ? flipped.data : src.data));
    flips += did;
  }
  CHECK(flips > 70);
  CHECK(flips < 130);
}

TEST_CASE("center_crop rounds half to even and zero-pads larger crops", "[data][transforms]") {
  const auto numbered = [](int64_t H, int64_t W) {
    Image img(1, H, W);
    for (int64_t i = 0; i < H * W; ++i) img.data[i] = uint8_t(i + 1);
    return img;
  };
  const Image five = numbered(5, 5);
  CHECK(center_crop(five, 3).at(0, 0, 0) == five.at(0, 1, 1));
  CHECK(center_crop(five, 2).at(0, 0, 0) == five.at(0, 2, 2));  // round(1.5) = 2
  const Image three = numbered(3, 3);
  CHECK(center_crop(three, 2).at(0, 0, 0) == three.at(0, 0, 0));  // round(0.5) = 0
  const Image rect = numbered(4, 6);
  CHECK(values_of(center_crop(rect, 2, 2)) == std::vector<int>{9, 10, 15, 16});
  const Image two = numbered(2, 2);
  CHECK(values_of(center_crop(two, 4)) ==
        std::vector<int>{0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0});
  // Odd padding: (5-2)//2 = 1 before, 2 after.
  CHECK(values_of(center_crop(two, 5)) == std::vector<int>{0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 4,
                                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("resize_shorter_side keeps the aspect ratio as torchvision Resize(int)",
          "[data][transforms]") {
  const Image wide = random_image(3, 20, 50, 4);
  const Image a = resize_shorter_side(wide, 8);
  CHECK(a.height == 8);
  CHECK(a.width == 20);
  const Image tall = random_image(1, 30, 7, 5);
  const Image b = resize_shorter_side(tall, 5);
  CHECK(b.width == 5);
  CHECK(b.height == 21);  // int(5 * 30 / 7) = int(21.43)
  CHECK(resize_shorter_side(wide, 20).data == wide.data);
  CHECK(resize_shorter_side(wide, 8).data == resize(wide, 8, 20).data);
}

// ---- normalisation and pipelines
// -----------------------------------------------------------------

TEST_CASE("to_normalized_float is (px/255 - mean)/std per channel", "[data][transforms]") {
  const Image img = image_of(3, 1, 2, {0, 255, 128, 64, 10, 200});
  const Normalization n = cifar10_normalization();
  std::vector<float> out(6);
  to_normalized_float(img, n.mean.data(), n.std.data(), out.data());
  const double mean[3] = {0.4914, 0.4822, 0.4465}, stdv[3] = {0.2470, 0.2435, 0.2616};
  const int px[6] = {0, 255, 128, 64, 10, 200};
  for (int i = 0; i < 6; ++i) {
    const int c = i / 2;
    CHECK(out[i] == Approx((px[i] / 255.0 - mean[c]) / stdv[c]).margin(1e-6));
  }
  CHECK(out[0] == Approx(-0.4914 / 0.2470).margin(1e-6));
  CHECK(out[1] == Approx((1 - 0.4914) / 0.2470).margin(1e-6));

  std::vector<float> again(6), raw(6);
  to_normalized_float(img, n, again.data());
  normalize_only(img.data.data(), 3, 1, 2, n, raw.data());
  CHECK(again == out);
  CHECK(raw == out);

  SECTION("one entry applies to every channel") {
    const Normalization half = {{0.5f}, {0.5f}};
    normalize_only(img.data.data(), 3, 1, 2, half, raw.data());
    for (int i = 0; i < 6; ++i) CHECK(raw[i] == Approx(px[i] / 255.0 * 2 - 1).margin(1e-6));
  }
  SECTION("misuse") {
    const Normalization two = {{0.5f, 0.5f}, {0.5f, 0.5f}};
    CHECK_THROWS_AS(normalize_only(img.data.data(), 3, 1, 2, two, raw.data()), Error);
    const Normalization zero = {{0.5f}, {0.0f}};
    CHECK_THROWS_AS(to_normalized_float(img, zero, raw.data()), Error);
    const Normalization ragged = {{0.5f}, {0.5f, 0.5f, 0.5f}};
    CHECK_THROWS_AS(to_normalized_float(img, ragged, raw.data()), Error);
  }
}

TEST_CASE("named normalisations hold the published statistics", "[data][transforms]") {
  CHECK(cifar10_normalization().mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(cifar10_normalization().std == std::vector<float>{0.2470f, 0.2435f, 0.2616f});
  CHECK(cifar100_normalization().mean == std::vector<float>{0.5071f, 0.4865f, 0.4409f});
  CHECK(cifar100_normalization().std == std::vector<float>{0.2673f, 0.2564f, 0.2762f});
  CHECK(fashion_mnist_normalization().mean == std::vector<float>{0.2860f});
  CHECK(fashion_mnist_normalization().std == std::vector<float>{0.3530f});
  CHECK(mnist_normalization().mean == std::vector<float>{0.1307f});
  CHECK(mnist_normalization().std == std::vector<float>{0.3081f});
  CHECK(folder_normalization().mean == std::vector<float>{0.5f, 0.5f, 0.5f});
  CHECK(folder_normalization(1).std == std::vector<float>{0.5f});
}

TEST_CASE("augment_and_normalize with every step off is normalize_only and draws nothing",
          "[data][transforms]") {
  const Image src = random_image(3, 8, 8, 6);
  AugmentConfig off;
  off.crop_padding = 0, off.hflip = false, off.randaugment_n = 0, off.erasing_prob = 0;
  const Normalization n = cifar100_normalization();
  std::vector<float> a(src.numel()), b(src.numel());
  Generator g(9);
  augment_and_normalize(src.data.data(), 3, 8, 8, off, n, g, a.data());
  normalize_only(src.data.data(), 3, 8, 8, n, b.data());
  CHECK(a == b);
  CHECK(g.offset() == 0);
}

TEST_CASE("augment_and_normalize is crop, flip, RandAugment, normalise, erase in that order",
          "[data][transforms]") {
  const Image src = random_image(3, 32, 32, 7);
  AugmentConfig cfg;
  cfg.crop_padding = 4, cfg.hflip = true, cfg.randaugment_n = 2, cfg.randaugment_m = 9;
  cfg.erasing_prob = 0.5;
  const Normalization n = cifar10_normalization();
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Generator g(seed), h(seed);
    std::vector<float> got(src.numel()), want(src.numel());
    augment_and_normalize(src.data.data(), 3, 32, 32, cfg, n, g, got.data());
    Image img = random_crop(src, 32, 32, 4, h);
    random_hflip(img, 0.5, h);
    rand_augment(img, 2, 9, h);
    to_normalized_float(img, n, want.data());
    random_erasing(want.data(), 3, 32, 32, 0.5, h);
    REQUIRE(got == want);
    REQUIRE(g.offset() == h.offset());
  }
}

TEST_CASE("augment_and_normalize depends only on the generator, not on threads or history",
          "[data][transforms]") {
  const Image src = random_image(3, 32, 32, 8);
  AugmentConfig cfg;
  // Erasing always on: its noise makes every seed's output distinct (without
  // it two seeds can legitimately agree: same crop, no flip, both ops skipped).
  cfg.randaugment_n = 2, cfg.randaugment_mstd = 0.5, cfg.erasing_prob = 1.0;
  const Normalization n = cifar10_normalization();
  const int64_t numel = src.numel();
  const auto run = [&](uint64_t seed, float* out) {
    Generator g(seed);
    augment_and_normalize(src.data.data(), 3, 32, 32, cfg, n, g, out);
  };
  constexpr int kSamples = 16;
  std::vector<float> serial(kSamples * numel), threaded(kSamples * numel);
  for (int s = 0; s < kSamples; ++s) run(100 + s, serial.data() + s * numel);
  // Reverse order on two threads: the per-thread scratch and the order of
  // calls must not matter.
  std::thread t1([&] {
    for (int s = kSamples - 1; s >= 0; s -= 2) run(100 + s, threaded.data() + s * numel);
  });
  std::thread t2([&] {
    for (int s = kSamples - 2; s >= 0; s -= 2) run(100 + s, threaded.data() + s * numel);
  });
  t1.join(), t2.join();
  CHECK(serial == threaded);
  std::set<std::vector<float>> distinct;
  for (int s = 0; s < kSamples; ++s)
    distinct.emplace(serial.begin() + s * numel, serial.begin() + (s + 1) * numel);
  CHECK(distinct.size() == kSamples);  // 16 seeds, 16 different augmentations
}

// ---- RandAugment ops ---------------------------------------------------------------------------

TEST_CASE("geometric ops at zero are the identity", "[data][randaugment]") {
  const Image src = random_image(3, 13, 17, 10);
  for (double deg : {0.0, 360.0, -720.0}) {
    Image img = src;
    op_rotate(img, deg);
    CHECK(img.data == src.data);
  }
  Image a = src, b = src, c = src, d = src;
  op_shear_x(a, 0.0);
  op_shear_y(b, 0.0);
  op_translate_x(c, 0.0);
  op_translate_y(d, 0.0);
  CHECK(a.data == src.data);
  CHECK(b.data == src.data);
  CHECK(c.data == src.data);
  CHECK(d.data == src.data);
}

TEST_CASE("rotate by multiples of 90 degrees permutes pixels exactly", "[data][randaugment]") {
  const Image sq = random_image(3, 6, 6, 11);
  Image ccw = sq, cw = sq;
  op_rotate(ccw, 90);  // counter-clockwise: the top-right corner comes to the top-left
  op_rotate(cw, -90);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 6; ++x) {
        REQUIRE(ccw.at(c, y, x) == sq.at(c, x, 5 - y));
        REQUIRE(cw.at(c, y, x) == sq.at(c, 5 - x, y));
      }
  const Image rect = random_image(2, 4, 7, 12);
  Image half = rect;
  op_rotate(half, 180);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 7; ++x) REQUIRE(half.at(c, y, x) == rect.at(c, 3 - y, 6 - x));
}

TEST_CASE("rotate keeps the centre and fills the corners with 128", "[data][randaugment]") {
  Image img(3, 9, 9);
  std::fill(img.data.begin(), img.data.end(), uint8_t(200));
  op_rotate(img, 45);
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(img.at(c, 4, 4) == 200);
    CHECK(img.at(c, 0, 0) == 128);
    CHECK(img.at(c, 8, 8) == 128);
    CHECK(img.at(c, 0, 8) == 128);
  }
}

TEST_CASE("shear maps pixel centres by the affine matrix with bilinear sampling",
          "[data][randaugment]") {
  // factor 2: row y reads x + 2(y + 0.5) = x + 2y + 1, a whole-pixel shift.
  const Image src = random_image(2, 5, 12, 13);
  Image sx = src;
  op_shear_x(sx, 2.0);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 5; ++y)
      for (int64_t x = 0; x < 12; ++x) {
        const int64_t from = x + 2 * y + 1;
        REQUIRE(sx.at(c, y, x) == (from < 12 ? src.at(c, y, from) : 128));
      }
  const Image tall = random_image(1, 12, 5, 14);
  Image sy = tall;
  op_shear_y(sy, 2.0);
  for (int64_t y = 0; y < 12; ++y)
    for (int64_t x = 0; x < 5; ++x) {
      const int64_t from = y + 2 * x + 1;
      REQUIRE(sy.at(0, y, x) == (from < 12 ? tall.at(0, from, x) : 128));
    }
  // factor 1 on one row: half-pixel reads average neighbours, truncated, as PIL.
  Image row = image_of(1, 1, 4, {10, 21, 40, 80});
  op_shear_x(row, 1.0);
  CHECK(values_of(row) == std::vector<int>{15, 30, 60, 128});
  Image neg = image_of(1, 1, 4, {10, 21, 40, 80});
  op_shear_x(neg, -1.0);
  // The first centre lands on the left edge (0.0, inside): edge-clamped, not filled.
  CHECK(values_of(neg) == std::vector<int>{10, 15, 30, 60});
}

TEST_CASE("translate by whole pixels shifts exactly and fills with 128", "[data][randaugment]") {
  const Image src = random_image(3, 7, 9, 15);
  for (int64_t k : {3, -2, 8, -9}) {
    INFO("shift " << k);
    Image tx = src, ty = src;
    op_translate_x(tx, static_cast<double>(k));
    op_translate_y(ty, static_cast<double>(k));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 7; ++y)
        for (int64_t x = 0; x < 9; ++x) {
          const int64_t fx = x + k, fy = y + k;
          REQUIRE(tx.at(c, y, x) == (fx >= 0 && fx < 9 ? src.at(c, y, fx) : 128));
          REQUIRE(ty.at(c, y, x) == (fy >= 0 && fy < 7 ? src.at(c, fy, x) : 128));
        }
  }
  Image half = image_of(1, 1, 3, {10, 20, 40});
  op_translate_x(half, 0.5);
  CHECK(values_of(half) == std::vector<int>{15, 30, 128});
  Image custom_fill = image_of(1, 1, 3, {10, 20, 40});
  op_translate_x(custom_fill, 1.0, 0);
  CHECK(values_of(custom_fill) == std::vector<int>{20, 40, 0});
}

TEST_CASE("invert, posterize, solarize and solarize_add on hand-computed values",
          "[data][randaugment]") {
  const Image src = image_of(1, 1, 6, {0, 10, 100, 127, 183, 255});
  Image inv = src;
  op_invert(inv);
  CHECK(values_of(inv) == std::vector<int>{255, 245, 155, 128, 72, 0});
  op_invert(inv);
  CHECK(inv.data == src.data);

  Image p8 = src, p4 = src, p1 = src, p0 = src;
  op_posterize(p8, 8);
  op_posterize(p4, 4);
  op_posterize(p1, 1);
  op_posterize(p0, 0);
  CHECK(p8.data == src.data);
  CHECK(values_of(p4) == std::vector<int>{0, 0, 96, 112, 176, 240});
  CHECK(values_of(p1) == std::vector<int>{0, 0, 0, 0, 128, 128});
  CHECK(values_of(p0) == std::vector<int>{0, 0, 0, 0, 0, 0});

  Image s128 = src, s256 = src;
  op_solarize(s128, 128);
  op_solarize(s256, 256);
  CHECK(values_of(s128) == std::vector<int>{0, 10, 100, 127, 72, 0});
  CHECK(s256.data == src.data);

  Image add = src;
  op_solarize_add(add, 50);
  CHECK(values_of(add) == std::vector<int>{50, 60, 150, 177, 183, 255});
  Image sat = src;
  op_solarize_add(sat, 200);
  CHECK(values_of(sat) == std::vector<int>{200, 210, 255, 255, 183, 255});
}

TEST_CASE("brightness, colour and contrast blend with PIL's degenerate images",
          "[data][randaugment]") {
  const Image src = image_of(1, 1, 4, {0, 3, 100, 200});
  Image b1 = src, bh = src, bu = src;
  op_brightness(b1, 1.0);
  op_brightness(bh, 0.5);
  op_brightness(bu, 1.5);
  CHECK(b1.data == src.data);
  CHECK(values_of(bh) == std::vector<int>{0, 1, 50, 100});   // truncated, not rounded
  CHECK(values_of(bu) == std::vector<int>{0, 4, 150, 255});  // clipped

  // Red, green, blue and grey pixels; PIL luma (299, 587, 114)/1000 in 16-bit fixed point.
  const Image rgb = image_of(3, 1, 4, {255, 0, 0, 90, 0, 255, 0, 90, 0, 0, 255, 90});
  Image c0 = rgb, c1 = rgb, ch = rgb;
  op_color(c0, 0.0);
  op_color(c1, 1.0);
  op_color(ch, 0.5);
  CHECK(c1.data == rgb.data);
  CHECK(values_of(c0) == std::vector<int>{76, 150, 29, 90, 76, 150, 29, 90, 76, 150, 29, 90});
  // 76 + 0.5 (255 - 76) = 165.5 -> 165; 76 + 0.5 (0 - 76) = 38
  CHECK(ch.at(0, 0, 0) == 165);
  CHECK(ch.at(1, 0, 0) == 38);
  Image grey = random_image(1, 5, 5, 16), grey0 = grey;
  op_color(grey, 0.0);
  CHECK(grey.data == grey0.data);  // no colour to remove from one channel

  Image k = image_of(1, 1, 2, {0, 100}), k0 = k, k1 = k, k2 = k;
  op_contrast(k, 0.5);  // mean 50
  op_contrast(k0, 0.0);
  op_contrast(k1, 1.0);
  op_contrast(k2, 1.9);
  CHECK(values_of(k) == std::vector<int>{25, 75});
  CHECK(values_of(k0) == std::vector<int>{50, 50});
  CHECK(values_of(k1) == std::vector<int>{0, 100});
  CHECK(values_of(k2) == std::vector<int>{0, 145});  // 50 + 1.9 * 50 = 145, -45 clipped
  // Three channels: the mean is of the luma, (76 + 0) / 2 = 38 for red and black.
  Image rk = image_of(3, 1, 2, {255, 0, 0, 0, 0, 0});
  op_contrast(rk, 0.0);
  CHECK(values_of(rk) == std::vector<int>{38, 38, 38, 38, 38, 38});
}

TEST_CASE("sharpness blends with PIL's SMOOTH filter, borders untouched", "[data][randaugment]") {
  // 3x3 of 26 with a 0 centre: smooth centre = 0.5 + 8 * 26 / 13 = 16.5 -> 16.
  const Image src = image_of(1, 3, 3, {26, 26, 26, 26, 0, 26, 26, 26, 26});
  Image s0 = src, s1 = src, sh = src, s2 = src;
  op_sharpness(s0, 0.0);
  op_sharpness(s1, 1.0);
  op_sharpness(sh, 0.5);
  op_sharpness(s2, 2.0);
  CHECK(values_of(s0) == std::vector<int>{26, 26, 26, 26, 16, 26, 26, 26, 26});
  CHECK(s1.data == src.data);
  CHECK(sh.at(0, 1, 1) == 8);
  CHECK(s2.at(0, 1, 1) == 0);  // 16 + 2 (0 - 16) < 0
  // A 3-channel image smooths each channel on its own.
  Image three(3, 3, 3);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 9; ++i) three.data[c * 9 + i] = src.data[i] * uint8_t(c + 1) / 2;
  op_sharpness(three, 0.0);
  CHECK(three.at(0, 1, 1) == 8);  // 13s around 0: 0.5 + 8 = 8.5
  CHECK(three.at(1, 1, 1) == 16);
  CHECK(three.at(2, 1, 1) == 24);  // 39s: 0.5 + 8 * 39 / 13 = 24.5
}

TEST_CASE("equalize and autocontrast on known histograms", "[data][randaugment]") {
  // 255 zeros, 255 hundreds, 2 two-hundreds: step = (512 - 2) / 255 = 2;
  // LUT n/step with n = 1, 256, 511 -> 0, 128, 255.
  Image eq(1, 16, 32);
  for (int64_t i = 0; i < 512; ++i) eq.data[i] = i < 255 ? 0 : i < 510 ? 100 : 200;
  op_equalize(eq);
  for (int64_t i = 0; i < 512; ++i) REQUIRE(eq.data[i] == (i < 255 ? 0 : i < 510 ? 128 : 255));
  // Per channel: a constant channel is left alone.
  Image two(2, 1, 4);
  const std::vector<int> v = {10, 10, 50, 90, 7, 7, 7, 7};
  for (int i = 0; i < 8; ++i) two.data[i] = uint8_t(v[i]);
  Image two_eq = two;
  op_equalize(two_eq);
  CHECK(values_of(two_eq) == values_of(two));  // step = (4 - 1) / 255 = 0: identity, like PIL

  // lo 10, hi 61: scale 5, offset -50.
  Image ac = image_of(2, 1, 4, {10, 20, 30, 61, 99, 99, 99, 99});
  op_auto_contrast(ac);
  CHECK(values_of(ac) == std::vector<int>{0, 50, 100, 255, 99, 99, 99, 99});
}

TEST_CASE("RandAugment levels map as timm's increasing ops", "[data][randaugment]") {
  const Image src = random_image(3, 32, 32, 17);
  const auto same = [&](RandAugmentOp op, double m, bool neg, auto&& direct) {
    Image a = src, b = src;
    apply_rand_augment_op(a, op, m, neg);
    direct(b);
    return a.data == b.data;
  };
  using Op = RandAugmentOp;
  CHECK(same(Op::Rotate, 10, false, [](Image& i) { op_rotate(i, 30); }));
  CHECK(same(Op::Rotate, 9, true, [](Image& i) { op_rotate(i, -27); }));
  CHECK(same(Op::Rotate, 15, false, [](Image& i) { op_rotate(i, 30); }));  // clamped to 10
  CHECK(same(Op::PosterizeIncreasing, 9, false, [](Image& i) { op_posterize(i, 1); }));
  CHECK(same(Op::PosterizeIncreasing, 0, false, [](Image& i) { op_posterize(i, 4); }));
  CHECK(same(Op::SolarizeIncreasing, 9, false, [](Image& i) { op_solarize(i, 26); }));
  CHECK(same(Op::SolarizeAdd, 9, false, [](Image& i) { op_solarize_add(i, 99); }));
  CHECK(same(Op::ColorIncreasing, 9, true, [](Image& i) { op_color(i, 1.0 - 0.9 * 0.9); }));
  CHECK(same(Op::ContrastIncreasing, 10, true, [](Image& i) { op_contrast(i, 0.1); }));
  CHECK(same(Op::BrightnessIncreasing, 5, false, [](Image& i) { op_brightness(i, 1.45); }));
  CHECK(same(Op::SharpnessIncreasing, 10, false, [](Image& i) { op_sharpness(i, 1.9); }));
  CHECK(same(Op::ShearX, 5, true, [](Image& i) { op_shear_x(i, -0.15); }));
  CHECK(same(Op::ShearY, 10, false, [](Image& i) { op_shear_y(i, 0.3); }));
  CHECK(same(Op::TranslateXRel, 10, false, [](Image& i) { op_translate_x(i, 0.45 * 32); }));
  CHECK(same(Op::TranslateYRel, 10, true, [](Image& i) { op_translate_y(i, -0.45 * 32); }));
  CHECK(same(Op::Equalize, 3, false, [](Image& i) { op_equalize(i); }));
  CHECK(same(Op::AutoContrast, 3, false, [](Image& i) { op_auto_contrast(i); }));
  CHECK(same(Op::Invert, 3, false, [](Image& i) { op_invert(i); }));
  CHECK(rand_augment_op_is_signed(Op::TranslateYRel));
  CHECK_FALSE(rand_augment_op_is_signed(Op::SolarizeAdd));
}

TEST_CASE("rand_augment is a pure function of the generator state", "[data][randaugment]") {
  const Image src = random_image(3, 32, 32, 18);
  std::set<std::string> outputs;  // images' bytes: a set of vectors trips a g++ 12 false warning
  int unchanged = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Image a = src, b = src;
    Generator ga(seed), gb(seed);
    rand_augment(a, 2, 9, ga);
    rand_augment(b, 2, 9, gb);
    REQUIRE(a.data == b.data);
    REQUIRE(ga.offset() == gb.offset());
    unchanged += a.data == src.data;
    outputs.insert(std::string(a.data.begin(), a.data.end()));
  }
  // Both ops skipped (1/4 of images) leaves the image as is; the rest vary,
  // though the 6 unsigned ops at a fixed magnitude repeat their result.
  CHECK(unchanged > 3);
  CHECK(unchanged < 20);
  CHECK(outputs.size() > 15);

  SECTION("n = 0 changes nothing and draws nothing") {
    Image img = src;
    Generator g(1);
    rand_augment(img, 0, 9, g);
    CHECK(img.data == src.data);
    CHECK(g.offset() == 0);
  }
  SECTION("one channel works") {
    const Image grey = random_image(1, 28, 28, 19);
    std::set<std::string> seen;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      Image img = grey;
      Generator g(seed);
      rand_augment(img, 2, 9, g, 0.5);
      seen.insert(std::string(img.data.begin(), img.data.end()));
    }
    CHECK(seen.size() > 10);
  }
  SECTION("misuse") {
    Image img = src;
    Generator g(1);
    CHECK_THROWS_AS(rand_augment(img, -1, 9, g), Error);
    Image empty;
    CHECK_THROWS_AS(op_invert(empty), Error);
  }
}

// ---- random erasing ----------------------------------------------------------------------------

TEST_CASE("random_erasing respects p = 0 and p = 1 and writes one rectangle",
          "[data][random_erasing]") {
  constexpr int64_t C = 3, H = 32, W = 32;
  constexpr float kSentinel = 7.0f;  // N(0,1) noise never lands exactly here
  SECTION("p = 0 never erases") {
    for (uint64_t seed = 0; seed < 50; ++seed) {
      std::vector<float> img(C * H * W, kSentinel);
      Generator g(seed);
      CHECK(random_erasing(img.data(), C, H, W, 0.0, g).empty());
      for (float v : img) REQUIRE(v == kSentinel);
    }
  }
  SECTION("p = 1 always erases exactly the returned box") {
    double sum = 0, sum2 = 0;
    int64_t count = 0;
    for (uint64_t seed = 0; seed < 200; ++seed) {
      std::vector<float> img(C * H * W, kSentinel);
      Generator g(seed);
      const ErasedBox box = random_erasing(img.data(), C, H, W, 1.0, g);
      REQUIRE_FALSE(box.empty());
      REQUIRE(box.top >= 0);
      REQUIRE(box.left >= 0);
      REQUIRE(box.top + box.height <= H);
      REQUIRE(box.left + box.width <= W);
      REQUIRE(box.height < H);
      REQUIRE(box.width < W);
      // Unrounded sides h', w' lie within 0.5 of the box's, with h'w' in
      // [0.02, 1/3] of the image and h'/w' in [0.3, 1/0.3].
      const double h = double(box.height), w = double(box.width);
      REQUIRE((h + 0.5) * (w + 0.5) >= 0.02 * H * W);
      REQUIRE((h - 0.5) * (w - 0.5) <= H * W / 3.0);
      REQUIRE((h - 0.5) / (w + 0.5) <= 1 / 0.3);
      REQUIRE((w - 0.5) / (h + 0.5) <= 1 / 0.3);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x) {
            const bool inside = y >= box.top && y < box.top + box.height && x >= box.left &&
                                x < box.left + box.width;
            const float v = img[(c * H + y) * W + x];
            REQUIRE((v != kSentinel) == inside);
            if (inside) sum += v, sum2 += double(v) * v, ++count;
          }
    }
    const double mean = sum / count, var = sum2 / count - mean * mean;
    CHECK(std::abs(mean) < 0.02);
    CHECK(std::abs(var - 1.0) < 0.03);
  }
  SECTION("p = 0.5 erases about half the images, deterministically") {
    int erased = 0;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      std::vector<float> a(C * H * W, 0.0f), b(C * H * W, 0.0f);
      Generator ga(seed), gb(seed);
      const ErasedBox box = random_erasing(a.data(), C, H, W, 0.5, ga);
      random_erasing(b.data(), C, H, W, 0.5, gb);
      REQUIRE(a == b);
      erased += !box.empty();
    }
    CHECK(erased > 160);
    CHECK(erased < 240);
  }
  SECTION("misuse") {
    std::vector<float> img(C * H * W);
    Generator g(0);
    CHECK_THROWS_AS(random_erasing(img.data(), C, H, W, 1.5, g), Error);
    CHECK_THROWS_AS(random_erasing(nullptr, C, H, W, 0.5, g), Error);
  }
}
