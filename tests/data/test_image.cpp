// Image decoding (PNG, BMP exact; JPEG size only), PNG writing, the decode
// limits (dimensions from the header, allocation cap against a PNG bomb),
// Pillow-bilinear resize (hand-computed cases, constants, antialiasing) and the
// image-folder reader (class order, file filter, deterministic split, errors).
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>

#include "support/check.hpp"
#include "support/temp_dir.hpp"
#include "vit/data/image.hpp"
#include "vit/data/image_folder.hpp"

using namespace vit;
using namespace vit::data;
namespace fs = std::filesystem;
using Catch::Contains;

using test::TempDir;
using test::write_text;

namespace {

void sink(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(size));
}

// Interleaved HWC bytes of a CHW image, as stb_image_write wants them.
std::vector<uint8_t> to_hwc(const Image& img) {
  std::vector<uint8_t> out(img.data.size());
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t i = 0; i < img.height * img.width; ++i)
      out[i * img.channels + c] = img.data[c * img.height * img.width + i];
  return out;
}

std::string encode_bmp(const Image& img) {
  std::string s;
  const std::vector<uint8_t> hwc = to_hwc(img);
  REQUIRE(stbi_write_bmp_to_func(sink, &s, int(img.width), int(img.height), int(img.channels),
                                 hwc.data()) != 0);
  return s;
}

std::string encode_jpg(const Image& img) {
  std::string s;
  const std::vector<uint8_t> hwc = to_hwc(img);
  REQUIRE(stbi_write_jpg_to_func(sink, &s, int(img.width), int(img.height), int(img.channels),
                                 hwc.data(), 95) != 0);
  return s;
}

// A c x h x w image with distinct bytes.
Image pattern(int64_t c, int64_t h, int64_t w) {
  Image img(c, h, w);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = uint8_t((i * 37 + 11) % 256);
  return img;
}

// Channel k holds v + k everywhere.
Image constant(int64_t c, int64_t h, int64_t w, int v) {
  Image img(c, h, w);
  for (int64_t k = 0; k < c; ++k)
    std::fill(img.data.begin() + k * h * w, img.data.begin() + (k + 1) * h * w, uint8_t(v + k));
  return img;
}

Image row(std::vector<uint8_t> v) {
  Image img(1, 1, int64_t(v.size()));
  img.data = std::move(v);
  return img;
}

void put_chunk(std::string& png, const char* type, const std::string& data) {
  for (int s = 24; s >= 0; s -= 8) png.push_back(char(uint32_t(data.size()) >> s));
  const std::string body = std::string(type, 4) + data;
  png += body;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()));
  for (int s = 24; s >= 0; s -= 8) png.push_back(char(uint32_t(crc) >> s));
}

// A grey 8-bit PNG by hand: header w x h, IDAT holding `idat_raw` compressed.
std::string handmade_png(uint32_t w, uint32_t h, const std::vector<uint8_t>& idat_raw) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(char(v >> s));
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);  // depth 8, grey, deflate, no filter/interlace
  put_chunk(png, "IHDR", ihdr);
  if (!idat_raw.empty()) {
    uLongf n = compressBound(uLong(idat_raw.size()));
    std::string z(n, '\0');
    REQUIRE(compress2(reinterpret_cast<Bytef*>(z.data()), &n, idat_raw.data(),
                      uLong(idat_raw.size()), 9) == Z_OK);
    z.resize(n);
    put_chunk(png, "IDAT", z);
  }
  put_chunk(png, "IEND", "");
  return png;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("decode_image round-trips PNG and BMP exactly", "[data][image]") {
  TempDir d("image");
  const Image rgb = pattern(3, 5, 7);
  SECTION("PNG through write_png and read_image, RGB and grey") {
    write_png(d / "a.png", rgb);
    CHECK_FALSE(fs::exists(d.path / "a.png.tmp"));
    const Image back = read_image(d / "a.png", 3);
    CHECK(back.channels == 3);
    CHECK(back.height == 5);
    CHECK(back.width == 7);
    CHECK(back.data == rgb.data);
    // stb's luma: (77 r + 150 g + 29 b) >> 8.
    const Image grey = read_image(d / "a.png", 1);
    REQUIRE(grey.channels == 1);
    for (int64_t y = 0; y < 5; ++y)
      for (int64_t x = 0; x < 7; ++x)
        CHECK(int(grey.at(0, y, x)) ==
              (77 * rgb.at(0, y, x) + 150 * rgb.at(1, y, x) + 29 * rgb.at(2, y, x)) >> 8);
    // A grey PNG read as RGB repeats the plane.
    const Image g = pattern(1, 3, 4);
    write_png(d / "a.png", g);  // overwrites
    const Image g3 = read_image(d / "a.png", 3);
    for (int64_t c = 0; c < 3; ++c)
      CHECK(std::vector<uint8_t>(g3.data.begin() + c * 12, g3.data.begin() + (c + 1) * 12) ==
            g.data);
  }
  SECTION("BMP") {
    const std::string bmp = encode_bmp(rgb);
    const Image back = decode_image(bytes_of(bmp), "a.bmp", 3);
    CHECK(back.data == rgb.data);
  }
  SECTION("JPEG: lossy, so size and channel count only") {
    const std::string jpg = encode_jpg(pattern(3, 9, 17));
    const Image back = decode_image(bytes_of(jpg), "a.jpg", 3);
    CHECK(back.channels == 3);
    CHECK(back.height == 9);
    CHECK(back.width == 17);
    CHECK(decode_image(bytes_of(jpg), "a.jpg", 1).channels == 1);
  }
}

TEST_CASE("decode_image refuses bad, oversized and hostile input", "[data][image]") {
  TempDir d("image_bad");
  const std::string png = encode_png(pattern(3, 10, 20));
  SECTION("dimensions over the limits, checked from the header") {
    REQUIRE_THROWS_WITH(decode_image(bytes_of(png), "big.png", 3, {16, 1 << 20}),
                        Contains("big.png: image is 20x10 (width x height), beyond the limit"));
    REQUIRE_THROWS_WITH(decode_image(bytes_of(png), "big.png", 3, {100, 199}),
                        Contains("big.png: image is 20x10"));
    CHECK_NOTHROW(decode_image(bytes_of(png), "ok.png", 3, {20, 200}));
    // Header only, no pixel data: refused without decoding or allocating 400 MB.
    write_text(d / "huge.png", handmade_png(20000, 20000, {}));
    REQUIRE_THROWS_WITH(read_image(d / "huge.png", 3), Contains("huge.png: image is 20000x20000"));
  }
  SECTION("PNG bomb: a 1x1 header whose data inflates to 16 MiB") {
    const std::string bomb = handmade_png(1, 1, std::vector<uint8_t>(16 << 20, 0));
    CHECK(bomb.size() < 100000);
    REQUIRE_THROWS_WITH(decode_image(bytes_of(bomb), "bomb.png", 1),
                        Contains("bomb.png: decoding needs more memory than a 1x1 image can"));
    // The same construction with honest data decodes.
    const Image one = decode_image(bytes_of(handmade_png(1, 1, {0, 42})), "one.png", 1);
    CHECK(one.data == std::vector<uint8_t>{42});
  }
  SECTION("undecodable, truncated, empty, missing") {
    write_text(d / "text.png", "this is not an image at all");
    REQUIRE_THROWS_WITH(read_image(d / "text.png", 3),
                        Contains("text.png: not a decodable JPEG, PNG or BMP image ("));
    write_text(d / "cut.png", png.substr(0, png.size() / 2));
    REQUIRE_THROWS_WITH(read_image(d / "cut.png", 3), Contains("cut.png: cannot decode image ("));
    write_text(d / "empty.png", "");
    REQUIRE_THROWS_WITH(read_image(d / "empty.png", 3), Contains("empty.png: empty file"));
    REQUIRE_THROWS_WITH(read_image(d / "none.png", 3), Contains("none.png: no such file"));
    // GIF is deliberately not compiled in.
    write_text(d / "a.gif", std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14));
    REQUIRE_THROWS_WITH(read_image(d / "a.gif", 3), Contains("a.gif: not a decodable"));
  }
  SECTION("bad channel count") {
    REQUIRE_THROWS_WITH(decode_image(bytes_of(png), "x.png", 4),
                        Contains("x.png: channels must be 1 or 3, got 4"));
  }
  SECTION("write_png into a missing directory fails cleanly") {
    REQUIRE_THROWS_AS(write_png(d / "no/such/dir/a.png", pattern(1, 2, 2)), vit::Error);
  }
}

TEST_CASE("decode_image refuses JPEG Huffman tables that Debian's stb 2.27 mishandles",
          "[data][image]") {
  const std::string good = encode_jpg(pattern(3, 16, 16));
  auto decode = [](const std::string& bytes) {
    return decode_image({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "t.jpg", 3);
  };
  REQUIRE(decode(good).width == 16);
  const size_t dht = good.find("\xFF\xC4");
  const size_t sos = good.find("\xFF\xDA");
  REQUIRE(dht != std::string::npos);
  REQUIRE(sos != std::string::npos);

  // The first table's 16 code counts (after marker, length, class/id) raised
  // to 255 each: 4080 codes where stb has room for 256.
  std::string many = good;
  for (size_t k = 0; k < 16; ++k) many[dht + 5 + k] = char(0xFF);
  REQUIRE_THROWS_WITH(decode(many),
                      Catch::Contains("t.jpg: corrupt JPEG (a Huffman table declares 4080 codes"));

  // The scan's first component pointed at DC/AC table 3, which no DHT defines
  // (stb would decode with uninitialised tables).
  std::string undefined = good;
  undefined[sos + 6] = char(0x33);
  REQUIRE_THROWS_WITH(decode(undefined),
                      Catch::Contains("t.jpg: corrupt JPEG (a scan uses a Huffman table that no DHT"));

  // Fill bytes before the SOI marker are taken by stb, so by the check too.
  REQUIRE_THROWS_WITH(decode("\xFF\xFF" + many), Catch::Contains("declares 4080 codes"));
}

TEST_CASE("resize follows Pillow bilinear with antialiasing", "[data][image]") {
  SECTION("same size returns the same pixels") {
    const Image img = pattern(3, 6, 5);
    CHECK(resize(img, 6, 5).data == img.data);
  }
  SECTION("upscale 2 -> 4 by hand: half-pixel centres, edges clamped") {
    // Output centres 0.25, 0.75, 1.25, 1.75 in input pixels: 0, 25, 75, 100.
    CHECK(resize(row({0, 100}), 1, 4).data == std::vector<uint8_t>{0, 25, 75, 100});
  }
  SECTION("downscale 4 -> 2 by hand: the triangle widens to 2 input pixels") {
    // Weights 3/7, 3/7, 1/7 over pixels 0..2 and 1/7, 3/7, 3/7 over 1..3.
    CHECK(resize(row({0, 100, 200, 100}), 1, 2).data == std::vector<uint8_t>{71, 143});
  }
  SECTION("vertical only and both axes use the same filter") {
    Image col(1, 4, 1);
    col.data = {0, 100, 200, 100};
    CHECK(resize(col, 2, 1).data == std::vector<uint8_t>{71, 143});
    Image sq(1, 2, 2);
    sq.data = {0, 100, 100, 200};
    // Horizontal rows become 0 25 75 100 / 100 125 175 200; then vertically.
    CHECK(resize(sq, 4, 4).data == std::vector<uint8_t>{0, 25, 75, 100, 25, 50, 100, 125, 75, 100,
                                                        150, 175, 100, 125, 175, 200});
  }
  SECTION("constant images stay constant, per channel") {
    for (auto [h, w] : {std::pair{7, 5}, std::pair{13, 3}, std::pair{1, 1}, std::pair{40, 2}}) {
      INFO(h << "x" << w);
      const Image src = constant(3, 9, 11, 250);
      const Image out = resize(src, h, w);
      CHECK(out.data == constant(3, h, w, 250).data);
      CHECK(resize(constant(1, 9, 11, 0), h, w).data == constant(1, h, w, 0).data);
    }
  }
  SECTION("2x downscale of a checkerboard gives its average") {
    Image cb(1, 8, 8);
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 8; ++x) cb.at(0, y, x) = (x + y) % 2 ? 200 : 0;
    const Image out = resize(cb, 4, 4);
    for (int64_t y = 1; y < 3; ++y)
      for (int64_t x = 1; x < 3; ++x) CHECK(int(out.at(0, y, x)) == 100);
    for (uint8_t v : out.data) CHECK(std::abs(int(v) - 100) <= 15);
  }
  SECTION("3x downscale of a checkerboard is smoothed, not point-sampled") {
    // Without antialiasing each output centre lands on one input pixel (0 or 200).
    Image cb(1, 12, 12);
    for (int64_t y = 0; y < 12; ++y)
      for (int64_t x = 0; x < 12; ++x) cb.at(0, y, x) = (x + y) % 2 ? 200 : 0;
    for (uint8_t v : resize(cb, 4, 4).data) CHECK(std::abs(int(v) - 100) <= 20);
  }
  SECTION("bad sizes") {
    REQUIRE_THROWS_WITH(resize(pattern(1, 2, 2), 0, 3), Contains("resize: target size 0x3"));
    REQUIRE_THROWS_AS(resize(Image(), 2, 2), vit::Error);
  }
}

namespace {
void write_constant_png(const fs::path& p, int64_t h, int64_t w, int v) {
  write_png(p.string(), constant(3, h, w, v));
}
}  // namespace

TEST_CASE("read_image_folder reads classes in order and ignores other files", "[data][image]") {
  TempDir d("folder");
  const fs::path r = d.path;
  for (const char* c : {"b_cls", "a_cls", "c_cls"}) fs::create_directory(r / c);
  write_constant_png(r / "b_cls/01.png", 5, 7, 10);
  write_text((r / "b_cls/02.BMP").string(), encode_bmp(constant(3, 3, 9, 20)));
  write_constant_png(r / "b_cls/03.png", 1, 1, 30);
  write_text((r / "b_cls/notes.txt").string(), "not an image");
  fs::create_directory(r / "b_cls/nested");
  write_constant_png(r / "b_cls/nested/00.png", 2, 2, 99);  // no recursion: ignored
  write_constant_png(r / "a_cls/x.png", 8, 8, 40);
  write_text((r / "a_cls/y.jpeg").string(), encode_jpg(constant(3, 16, 16, 50)));
  write_constant_png(r / "c_cls/z.PNG", 4, 6, 60);
  write_constant_png(r / "top_level.png", 4, 4, 1);  // not in a class folder: ignored

  ImageFolderOptions opt;
  opt.image_size = 6;
  opt.val_ratio = 0;
  const ImageFolderSplit s = read_image_folder(r.string(), opt);
  CHECK(s.train.class_names == std::vector<std::string>{"a_cls", "b_cls", "c_cls"});
  CHECK(s.val.class_names == s.train.class_names);
  CHECK(s.val.size() == 0);
  REQUIRE(s.train.size() == 6);
  CHECK(s.train.labels == std::vector<int32_t>{0, 0, 1, 1, 1, 2});
  CHECK(s.train.channels == 3);
  // Aspect ratio kept: the shorter side becomes floor(6 / 0.875) = 6, the
  // longer int(6 * long / short), as torchvision's Resize(6).
  REQUIRE(s.train.variable_size());
  CHECK(s.train.height == 0);
  const std::vector<int> colour = {40, 50, 10, 20, 30, 60};
  const std::vector<std::pair<int64_t, int64_t>> hw = {{6, 6}, {6, 6}, {6, 8}, {6, 18}, {6, 6}, {6, 9}};
  for (int i = 0; i < 6; ++i) {
    INFO("image " << i);
    const Image img = s.train.image(i);
    CHECK(img.height == hw[i].first);
    CHECK(img.width == hw[i].second);
    if (i == 1) {  // the JPEG: near its colour
      for (int64_t c = 0; c < 3; ++c) CHECK(std::abs(int(img.at(c, 3, 3)) - (50 + int(c))) <= 3);
    } else {
      CHECK(img.data == constant(3, hw[i].first, hw[i].second, colour[i]).data);
    }
  }
  SECTION("one channel") {
    opt.channels = 1;
    const ImageFolderSplit g = read_image_folder(r.string(), opt);
    CHECK(g.train.channels == 1);
    // (77 v + 150 (v+1) + 29 (v+2)) >> 8 == v for these colours.
    CHECK(g.train.image(5).data == constant(1, 6, 9, 60).data);
  }
}

TEST_CASE("read_image_folder splits each class deterministically", "[data][image]") {
  TempDir d("folder_split");
  for (int c = 0; c < 2; ++c) {
    const fs::path cls = d.path / ("class" + std::to_string(c));
    fs::create_directory(cls);
    for (int i = 0; i < 5; ++i)
      write_constant_png(cls / ("img" + std::to_string(i) + ".png"), 3, 3, 100 * c + 10 * i);
  }
  fs::create_directory(d.path / "class2");
  write_constant_png(d.path / "class2/only.png", 3, 3, 222);

  auto colours = [](const Dataset& ds) {
    std::vector<int> v;
    for (int64_t i = 0; i < ds.size(); ++i) v.push_back(ds.image_data(i)[0]);
    return v;
  };
  ImageFolderOptions opt;
  opt.image_size = 2;
  opt.val_ratio = 0.4;
  const ImageFolderSplit s = read_image_folder(d.path.string(), opt);
  // round(5 * 0.4) = 2 per full class; the one-image class stays in train.
  REQUIRE(s.val.size() == 4);
  REQUIRE(s.train.size() == 7);
  CHECK(s.val.labels == std::vector<int32_t>{0, 0, 1, 1});
  CHECK(s.train.labels == std::vector<int32_t>{0, 0, 0, 1, 1, 1, 2});
  std::vector<int> all = colours(s.train), val = colours(s.val);
  // Class-then-file-name order inside each split: colours ascend.
  CHECK(std::is_sorted(all.begin(), all.end()));
  CHECK(std::is_sorted(val.begin(), val.end()));
  all.insert(all.end(), val.begin(), val.end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int>{0, 10, 20, 30, 40, 100, 110, 120, 130, 140, 222});

  // Same seed, same split; other seeds pick other files.
  CHECK(colours(read_image_folder(d.path.string(), opt).val) == val);
  std::set<std::vector<int>> splits;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    opt.seed = seed;
    splits.insert(colours(read_image_folder(d.path.string(), opt).val));
  }
  CHECK(splits.size() > 1);
}

TEST_CASE("image folder validation counts", "[data][image]") {
  CHECK(data::detail::val_count(1, 0.2) == 0);
  CHECK(data::detail::val_count(2, 0.2) == 1);  // at least one when n > 1
  CHECK(data::detail::val_count(2, 0.9) == 1);  // never the whole class
  CHECK(data::detail::val_count(10, 0.2) == 2);
  CHECK(data::detail::val_count(10, 0.0) == 0);
  CHECK(data::detail::val_count(3, 0.5) == 2);
}

TEST_CASE("read_image_folder errors name the path at fault", "[data][image]") {
  TempDir d("folder_bad");
  ImageFolderOptions opt;
  opt.image_size = 4;
  REQUIRE_THROWS_WITH(read_image_folder(d / "nope", opt), Contains("nope: no such directory"));
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt), Contains(": no class subfolders"));
  fs::create_directory(d.path / "cat");
  write_constant_png(d.path / "cat/1.png", 3, 3, 5);
  fs::create_directory(d.path / "dog");
  write_text(d / "dog/readme.txt", "no images here");
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("dog: class folder has no .jpg, .jpeg, .png or .bmp images"));
  write_text(d / "dog/broken.jpg", "not a jpeg");
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("broken.jpg: not a decodable JPEG, PNG or BMP image"));
  fs::remove(d.path / "dog/broken.jpg");
  write_constant_png(d.path / "dog/big.png", 30, 30, 7);
  opt.limits.max_dim = 16;
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("big.png: image is 30x30 (width x height), beyond the limit"));
  opt.limits.max_dim = 8192;
  CHECK(read_image_folder(d.path.string(), opt).train.size() == 2);
  opt.channels = 2;
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("channels must be 1 or 3, got 2"));
  opt.channels = 3;
  opt.val_ratio = 1.0;
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt), Contains("val_ratio 1 is outside"));
}
