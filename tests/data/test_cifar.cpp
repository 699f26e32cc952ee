// CIFAR-10 / CIFAR-100 binary readers on files generated here: exact pixels,
// labels and class names, and one clear error naming the file for every
// malformed input (size not a multiple of the record, empty or missing file,
// out-of-range label, class-name file with the wrong count).
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "support/check.hpp"
#include "support/temp_dir.hpp"
#include "vit/data/cifar.hpp"

using namespace vit;
using namespace vit::data;
namespace fs = std::filesystem;
using Catch::Contains;
using test::TempDir;
using test::write_bytes;
using test::write_text;

namespace {

// Pixel value of byte i of global record r: distinct across records and planes.
uint8_t pixel(int r, int i) { return uint8_t((r * 7 + i * 13 + i / 1024) % 251); }

// Records with the given label bytes each; pixels from pixel(first + k, i).
std::vector<uint8_t> records(const std::vector<std::vector<uint8_t>>& labels, int first) {
  std::vector<uint8_t> b;
  for (size_t k = 0; k < labels.size(); ++k) {
    b.insert(b.end(), labels[k].begin(), labels[k].end());
    for (int i = 0; i < 3072; ++i) b.push_back(pixel(first + int(k), i));
  }
  return b;
}

void require_record_pixels(const Dataset& ds, int64_t idx, int r) {
  const uint8_t* p = ds.image_data(idx);
  for (int i = 0; i < 3072; ++i)
    if (p[i] != pixel(r, i)) FAIL("image " << idx << " byte " << i << ": " << int(p[i]));
}

// A CIFAR-10 dir whose five train batches hold 1, 2, 1, 1, 3 records.
void make_cifar10(const TempDir& d) {
  const std::vector<int> counts = {1, 2, 1, 1, 3};
  int r = 0;
  for (int b = 0; b < 5; ++b) {
    std::vector<std::vector<uint8_t>> labels;
    for (int k = 0; k < counts[b]; ++k) labels.push_back({uint8_t((r + k) % 10)});
    write_bytes(d / ("data_batch_" + std::to_string(b + 1) + ".bin"), records(labels, r));
    r += counts[b];
  }
  write_bytes(d / "test_batch.bin", records({{9}, {0}}, 100));
}
}  // namespace

TEST_CASE("read_cifar10 reads every batch in order with exact pixels", "[data][cifar]") {
  TempDir d("cifar10");
  make_cifar10(d);
  SECTION("train: five batches concatenated, default names") {
    const Dataset ds = read_cifar10(d.path.string(), true);
    REQUIRE(ds.size() == 8);
    CHECK(ds.channels == 3);
    CHECK(ds.height == 32);
    CHECK(ds.width == 32);
    REQUIRE(ds.pixels.size() == 8 * 3072);
    for (int i = 0; i < 8; ++i) {
      CHECK(ds.labels[i] == i % 10);
      require_record_pixels(ds, i, i);
    }
    REQUIRE(ds.num_classes() == 10);
    CHECK(ds.class_names[0] == "airplane");
    CHECK(ds.class_names[9] == "truck");
    // CHW straight from the file: byte 1024 is the first green value.
    CHECK(ds.image(3).at(1, 0, 0) == pixel(3, 1024));
  }
  SECTION("test split") {
    const Dataset ds = read_cifar10(d.path.string(), false);
    REQUIRE(ds.size() == 2);
    CHECK(ds.labels == std::vector<int32_t>{9, 0});
    require_record_pixels(ds, 0, 100);
    require_record_pixels(ds, 1, 101);
  }
  SECTION("names from batches.meta.txt, blank lines and CRLF ignored") {
    std::string meta = "\n";
    for (int i = 0; i < 10; ++i) meta += "  name " + std::to_string(i) + "\r\n\n";
    write_text(d / "batches.meta.txt", meta);
    const Dataset ds = read_cifar10(d.path.string(), false);
    REQUIRE(ds.num_classes() == 10);
    CHECK(ds.class_names[0] == "name 0");
    CHECK(ds.class_names[9] == "name 9");
  }
  SECTION("batches.meta.txt with the wrong count is an error naming it") {
    write_text(d / "batches.meta.txt", "a\nb\nc\n");
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), false),
                        Contains("batches.meta.txt: has 3 class names, expected 10"));
  }
}

TEST_CASE("read_cifar10 rejects malformed files with one clear error", "[data][cifar]") {
  TempDir d("cifar10_bad");
  make_cifar10(d);
  SECTION("size not a multiple of the record") {
    write_bytes(d / "data_batch_1.bin", std::vector<uint8_t>(3100, 1));
    REQUIRE_THROWS_WITH(
        read_cifar10(d.path.string(), true),
        Contains("data_batch_1.bin: size 3100 is not a multiple of the 3073-byte CIFAR-10 record"));
  }
  SECTION("one byte short") {
    std::vector<uint8_t> b = records({{1}, {2}}, 0);
    b.pop_back();
    write_bytes(d / "test_batch.bin", b);
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), false),
                        Contains("test_batch.bin: size 6145 is not a multiple"));
  }
  SECTION("empty file") {
    write_bytes(d / "data_batch_3.bin", {});
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), true),
                        Contains("data_batch_3.bin: file is empty"));
  }
  SECTION("a missing batch is named") {
    fs::remove(d.path / "data_batch_5.bin");
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), true),
                        Contains("data_batch_5.bin: no such file"));
    CHECK_NOTHROW(read_cifar10(d.path.string(), false));
  }
  SECTION("missing directory") {
    REQUIRE_THROWS_WITH(read_cifar10((d.path / "nope").string(), false),
                        Contains("test_batch.bin: no such file"));
  }
  SECTION("label out of range names file and record") {
    write_bytes(d / "data_batch_2.bin", records({{3}, {10}}, 1));
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), true),
                        Contains("data_batch_2.bin: record 1 has label 10, expected < 10"));
  }
  SECTION("a directory where a batch should be") {
    fs::remove(d.path / "test_batch.bin");
    fs::create_directory(d.path / "test_batch.bin");
    REQUIRE_THROWS_WITH(read_cifar10(d.path.string(), false),
                        Contains("test_batch.bin: not a regular file"));
  }
}

TEST_CASE("read_cifar100 reads fine or coarse labels", "[data][cifar]") {
  TempDir d("cifar100");
  write_bytes(d / "train.bin", records({{0, 99}, {19, 5}, {7, 0}}, 0));
  write_bytes(d / "test.bin", records({{4, 42}}, 50));
  SECTION("fine labels, default names") {
    const Dataset ds = read_cifar100(d.path.string(), true);
    REQUIRE(ds.size() == 3);
    CHECK(ds.labels == std::vector<int32_t>{99, 5, 0});
    for (int i = 0; i < 3; ++i) require_record_pixels(ds, i, i);
    REQUIRE(ds.num_classes() == 100);
    CHECK(ds.class_names[0] == "class_0");
    CHECK(ds.class_names[99] == "class_99");
  }
  SECTION("coarse labels") {
    const Dataset ds = read_cifar100(d.path.string(), true, true);
    CHECK(ds.labels == std::vector<int32_t>{0, 19, 7});
    CHECK(ds.num_classes() == 20);
    CHECK(ds.class_names[19] == "class_19");
  }
  SECTION("test split and names files") {
    std::string fine, coarse;
    for (int i = 0; i < 100; ++i) fine += "fine" + std::to_string(i) + "\n";
    for (int i = 0; i < 20; ++i) coarse += "coarse" + std::to_string(i) + "\n";
    write_text(d / "fine_label_names.txt", fine);
    write_text(d / "coarse_label_names.txt", coarse);
    const Dataset f = read_cifar100(d.path.string(), false);
    REQUIRE(f.size() == 1);
    CHECK(f.labels[0] == 42);
    CHECK(f.class_names[42] == "fine42");
    require_record_pixels(f, 0, 50);
    const Dataset c = read_cifar100(d.path.string(), false, true);
    CHECK(c.labels[0] == 4);
    CHECK(c.class_names[4] == "coarse4");
  }
  SECTION("malformed") {
    write_bytes(d / "test.bin", std::vector<uint8_t>(2 * 3073, 0));
    REQUIRE_THROWS_WITH(
        read_cifar100(d.path.string(), false),
        Contains("test.bin: size 6146 is not a multiple of the 3074-byte CIFAR-100 record"));
    write_bytes(d / "test.bin", records({{1, 2}, {3, 100}}, 0));
    REQUIRE_THROWS_WITH(read_cifar100(d.path.string(), false),
                        Contains("test.bin: record 1 has fine label 100, expected < 100"));
    // Both bytes are checked whichever is used: a bad byte means a bad file.
    write_bytes(d / "test.bin", records({{20, 2}}, 0));
    REQUIRE_THROWS_WITH(read_cifar100(d.path.string(), false),
                        Contains("test.bin: record 0 has coarse label 20, expected < 20"));
    write_text(d / "coarse_label_names.txt", "a\nb\n");
    REQUIRE_THROWS_WITH(read_cifar100(d.path.string(), true, true),
                        Contains("coarse_label_names.txt: has 2 class names, expected 20"));
    fs::remove(d.path / "train.bin");
    REQUIRE_THROWS_WITH(read_cifar100(d.path.string(), true), Contains("train.bin: no such file"));
  }
}

TEST_CASE("read_cifar10 on the shared CIFAR-10 subset when present", "[data][cifar]") {
  const std::string dir = "/work/shared/data/cifar10-subset";
  if (!fs::exists(fs::path(dir) / "test_batch.bin")) {
    WARN("skipped: " << dir << " not present");
    return;
  }
  const Dataset train = read_cifar10(dir, true);
  const Dataset test = read_cifar10(dir, false);
  CHECK(train.size() == 5 * 1017);
  CHECK(test.size() == 1017);
  CHECK(train.class_names[6] == "frog");
  // The first record of data_batch_1 is the well-known frog.
  CHECK(train.labels[0] == 6);
}
