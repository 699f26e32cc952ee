// IDX (MNIST / Fashion-MNIST) reader and the bounded gzip reader, on files
// generated here: exact pixels and labels raw and gzipped, and one clear error
// for a wrong magic, bad dims, truncation, trailing bytes, count mismatch,
// labels out of range, corrupt or truncated gzip, and a gzip bomb.
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "support/check.hpp"
#include "support/temp_dir.hpp"
#include "vit/data/idx.hpp"

using namespace vit;
using namespace vit::data;
namespace fs = std::filesystem;
using Catch::Contains;

using test::TempDir;
using test::write_bytes;

namespace {

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}

std::vector<uint8_t> idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(uint8_t(i * 7 % 256));
  return b;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels, uint32_t magic = 0x801) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, uint32_t(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

/// gzip via zlib's deflate (windowBits 16+15 writes the gzip wrapper), fed
/// `repeat` copies of `data` so a large output needs no large input buffer.
std::vector<uint8_t> gzip(const std::vector<uint8_t>& data, int repeat = 1, int level = 9) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 16);
  for (int r = 0; r < repeat; ++r) {
    zs.next_in = const_cast<Bytef*>(data.data());
    zs.avail_in = uInt(data.size());
    const int flush = r + 1 == repeat ? Z_FINISH : Z_NO_FLUSH;
    int ret;
    do {
      zs.next_out = buf.data();
      zs.avail_out = uInt(buf.size());
      ret = deflate(&zs, flush);
      out.insert(out.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    } while (zs.avail_out == 0 || (flush == Z_FINISH && ret != Z_STREAM_END));
  }
  deflateEnd(&zs);
  return out;
}

const std::vector<std::string> kTen = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}  // namespace

TEST_CASE("read_maybe_gzip returns raw files and inflates gzip ones", "[data][idx]") {
  TempDir d("gzip");
  std::vector<uint8_t> data;
  for (int i = 0; i < 100000; ++i) data.push_back(uint8_t(i * 31 % 253));
  write_bytes(d / "raw.bin", data);
  write_bytes(d / "z.gz", gzip(data));
  CHECK(read_maybe_gzip(d / "raw.bin", data.size()) == data);
  CHECK(read_maybe_gzip(d / "z.gz", data.size()) == data);
  SECTION("concatenated members, as gzip a b writes them") {
    std::vector<uint8_t> two = gzip(data);
    const std::vector<uint8_t> second = gzip({1, 2, 3});
    two.insert(two.end(), second.begin(), second.end());
    write_bytes(d / "two.gz", two);
    std::vector<uint8_t> expect = data;
    expect.insert(expect.end(), {1, 2, 3});
    CHECK(read_maybe_gzip(d / "two.gz", expect.size()) == expect);
  }
  SECTION("an empty file and an empty gzip") {
    write_bytes(d / "empty", {});
    CHECK(read_maybe_gzip(d / "empty", 10).empty());
    write_bytes(d / "empty.gz", gzip({}));
    CHECK(read_maybe_gzip(d / "empty.gz", 10).empty());
  }
}

TEST_CASE("read_maybe_gzip refuses oversized, corrupt and truncated input", "[data][idx]") {
  TempDir d("gzip_bad");
  std::vector<uint8_t> data(50000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * i % 251);
  const std::vector<uint8_t> gz = gzip(data);
  SECTION("raw file over the limit") {
    write_bytes(d / "raw.bin", data);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "raw.bin", 49999),
                        Contains("raw.bin: size 50000 bytes exceeds the limit of 49999 bytes"));
  }
  SECTION("gzip inflating one byte over the limit") {
    write_bytes(d / "z.gz", gz);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "z.gz", 49999),
                        Contains("z.gz: inflates to more than 49999 bytes"));
  }
  SECTION("gzip bomb: 64 MiB of zeros in a small file, limit 1 MiB") {
    const std::vector<uint8_t> bomb = gzip(std::vector<uint8_t>(1 << 20, 0), 64, 1);
    CHECK(bomb.size() < (1 << 20));
    write_bytes(d / "bomb.gz", bomb);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "bomb.gz", 1 << 20),
                        Contains("bomb.gz: inflates to more than 1048576 bytes"));
  }
  SECTION("bad CRC") {
    std::vector<uint8_t> bad = gz;
    bad[bad.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
    write_bytes(d / "crc.gz", bad);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "crc.gz", data.size()),
                        Contains("crc.gz: corrupt gzip data (incorrect data check)"));
  }
  SECTION("bad compression method in the header") {
    std::vector<uint8_t> bad = gz;
    bad[2] = 7;
    write_bytes(d / "method.gz", bad);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "method.gz", data.size()),
                        Contains("method.gz: corrupt gzip data"));
  }
  SECTION("garbage deflate data") {
    std::vector<uint8_t> bad(gz.begin(), gz.begin() + 10);
    for (int i = 0; i < 200; ++i) bad.push_back(0xff);
    write_bytes(d / "garbage.gz", bad);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "garbage.gz", data.size()),
                        Contains("garbage.gz: corrupt gzip data"));
  }
  SECTION("truncated: cut in the middle and cut before the trailer") {
    write_bytes(d / "half.gz", std::vector<uint8_t>(gz.begin(), gz.begin() + gz.size() / 2));
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "half.gz", data.size()),
                        Contains("half.gz: truncated gzip"));
    write_bytes(d / "short.gz", std::vector<uint8_t>(gz.begin(), gz.end() - 3));
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "short.gz", data.size()),
                        Contains("short.gz: truncated gzip"));
    write_bytes(d / "magic.gz", {0x1f, 0x8b});
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "magic.gz", data.size()),
                        Contains("magic.gz: truncated gzip"));
  }
  SECTION("trailing garbage after the stream") {
    std::vector<uint8_t> bad = gz;
    bad.insert(bad.end(), {0, 0, 0});
    write_bytes(d / "trail.gz", bad);
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "trail.gz", data.size()),
                        Contains("trail.gz: 3 trailing bytes after the gzip stream"));
  }
  SECTION("missing file") {
    REQUIRE_THROWS_WITH(read_maybe_gzip(d / "none.gz", 100), Contains("none.gz: no such file"));
  }
}

TEST_CASE("read_idx reads images and labels exactly, raw or gzipped", "[data][idx]") {
  TempDir d("idx");
  const std::vector<uint8_t> images = idx_images(3, 2, 4);
  const std::vector<uint8_t> labels = idx_labels({7, 0, 9});
  SECTION("raw") {
    write_bytes(d / "img", images);
    write_bytes(d / "lab", labels);
    const Dataset ds = read_idx(d / "img", d / "lab", kTen);
    REQUIRE(ds.size() == 3);
    CHECK(ds.channels == 1);
    CHECK(ds.height == 2);
    CHECK(ds.width == 4);
    CHECK(ds.labels == std::vector<int32_t>{7, 0, 9});
    CHECK(ds.pixels == std::vector<uint8_t>(images.begin() + 16, images.end()));
    CHECK(ds.image(2).at(0, 1, 3) == uint8_t((2 * 8 + 7) * 7 % 256));
    CHECK(ds.class_names == kTen);
  }
  SECTION("read_fashion_mnist: train raw, test gzipped; raw preferred when both exist") {
    write_bytes(d / "train-images-idx3-ubyte", images);
    write_bytes(d / "train-labels-idx1-ubyte", labels);
    write_bytes(d / "t10k-images-idx3-ubyte.gz", gzip(idx_images(2, 3, 3)));
    write_bytes(d / "t10k-labels-idx1-ubyte.gz", gzip(idx_labels({1, 2})));
    // A broken .gz beside the raw file must not be read.
    write_bytes(d / "train-images-idx3-ubyte.gz", {0x1f, 0x8b, 0});
    const Dataset train = read_fashion_mnist(d.path.string(), true);
    CHECK(train.size() == 3);
    CHECK(train.labels == std::vector<int32_t>{7, 0, 9});
    REQUIRE(train.num_classes() == 10);
    CHECK(train.class_names[0] == "T-shirt/top");
    CHECK(train.class_names[9] == "Ankle boot");
    const Dataset test = read_fashion_mnist(d.path.string(), false);
    CHECK(test.size() == 2);
    CHECK(test.height == 3);
    CHECK(test.labels == std::vector<int32_t>{1, 2});
    const std::vector<uint8_t> expect = idx_images(2, 3, 3);
    CHECK(test.pixels == std::vector<uint8_t>(expect.begin() + 16, expect.end()));
    const Dataset mnist = read_mnist(d.path.string(), false);
    CHECK(mnist.class_names == kTen);
  }
  SECTION("missing files are named") {
    REQUIRE_THROWS_WITH(read_fashion_mnist(d.path.string(), true),
                        Contains("neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz"));
  }
}

TEST_CASE("read_idx rejects malformed files with one clear error", "[data][idx]") {
  TempDir d("idx_bad");
  const std::string img = d / "img", lab = d / "lab";
  write_bytes(img, idx_images(3, 2, 4));
  write_bytes(lab, idx_labels({1, 2, 3}));
  REQUIRE_NOTHROW(read_idx(img, lab, kTen));
  SECTION("wrong image magic (a label file given as images)") {
    write_bytes(img, idx_labels({1, 2, 3}));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("img: 11 bytes is too short for an IDX image header"));
    write_bytes(img, idx_images(3, 2, 4, 0x0802));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("img: IDX magic 0x00000802, expected 0x00000803"));
  }
  SECTION("wrong label magic") {
    write_bytes(lab, idx_labels({1, 2, 3}, 0x0803));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("lab: IDX magic 0x00000803, expected 0x00000801"));
  }
  SECTION("truncated images and trailing bytes") {
    std::vector<uint8_t> b = idx_images(3, 2, 4);
    b.pop_back();
    write_bytes(img, b);
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("img: header says 3 images of 2x4 (24 bytes) but the file holds "
                                 "23 bytes after the header (truncated)"));
    b.push_back(0);
    b.push_back(0);
    write_bytes(img, b);
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen), Contains("(trailing bytes)"));
  }
  SECTION("hostile header: 4 billion images of 4096x4096 in 40 bytes") {
    std::vector<uint8_t> b = idx_images(0, 0, 0);
    b.resize(4);
    put_be32(b, 0xffffffffu);
    put_be32(b, 4096);
    put_be32(b, 4096);
    b.resize(40, 0);
    write_bytes(img, b);
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen), Contains("img: header says 4294967295 images"));
  }
  SECTION("dims out of range and no images") {
    std::vector<uint8_t> b = idx_images(1, 1, 1);
    b[11] = 0;  // rows = 0
    write_bytes(img, b);
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("img: image size 0x1 is outside 1..4096"));
    write_bytes(img, idx_images(0, 5000, 1));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen), Contains("img: header says 0 images"));
    write_bytes(img, idx_images(1, 5000, 1));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("img: image size 5000x1 is outside 1..4096"));
  }
  SECTION("label file truncated or longer than its header") {
    std::vector<uint8_t> b = idx_labels({1, 2, 3});
    b.pop_back();
    write_bytes(lab, b);
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("lab: header says 3 labels but the file holds 2 bytes"));
  }
  SECTION("count mismatch") {
    write_bytes(lab, idx_labels({1, 2}));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen), Contains("lab: 2 labels but"));
  }
  SECTION("label out of range names file and index") {
    write_bytes(lab, idx_labels({1, 10, 3}));
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen),
                        Contains("lab: label 10 at index 1 is out of range for 10 classes"));
    write_bytes(lab, idx_labels({1, 2, 3}));
    REQUIRE_THROWS_WITH(read_idx(img, lab, {"a", "b", "c"}),
                        Contains("lab: label 3 at index 2 is out of range for 3 classes"));
  }
  SECTION("corrupt gzip images") {
    std::vector<uint8_t> gz = gzip(idx_images(3, 2, 4));
    gz[gz.size() - 2] ^= 1;  // ISIZE trailer
    write_bytes(d / "img.gz", gz);
    REQUIRE_THROWS_WITH(read_idx(d / "img.gz", lab, kTen), Contains("img.gz: corrupt gzip data"));
  }
  SECTION("images beyond max_bytes") {
    REQUIRE_THROWS_WITH(read_idx(img, lab, kTen, 30),
                        Contains("img: size 40 bytes exceeds the limit of 30 bytes"));
  }
}

TEST_CASE("read_fashion_mnist on the installed data set when present", "[data][idx]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fs::path(dir) / "t10k-labels-idx1-ubyte.gz")) {
    WARN("skipped: " << dir << " not present");
    return;
  }
  const Dataset test = read_fashion_mnist(dir, false);
  REQUIRE(test.size() == 10000);
  CHECK(test.channels == 1);
  CHECK(test.height == 28);
  CHECK(test.width == 28);
  // The first test images are an ankle boot, a pullover and two trousers.
  CHECK(std::vector<int32_t>(test.labels.begin(), test.labels.begin() + 4) ==
        std::vector<int32_t>{9, 2, 1, 1});
  std::vector<int> per_class(10);
  for (int32_t l : test.labels) ++per_class[l];
  CHECK(per_class == std::vector<int>(10, 1000));
  const Dataset train = read_fashion_mnist(dir, true);
  CHECK(train.size() == 60000);
}
