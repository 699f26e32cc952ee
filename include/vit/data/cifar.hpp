// CIFAR-10 and CIFAR-100 binary readers. A record is its label byte(s) then
// 1024 R, 1024 G, 1024 B bytes: already the CHW uint8 layout of Dataset, so
// pixels are copied straight, with no decoding and no float conversion. Every
// file is validated whole (size a multiple of the record, labels in range)
// before its records are used; class-name files are optional but, when
// present, must hold exactly the right number of names.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/idx.hpp"  // detail::read_file

namespace vit::data {

namespace detail {

inline constexpr int64_t kCifarPixels = 3 * 32 * 32;
// CIFAR-10 batches are 30 MB and CIFAR-100 train.bin 150 MB; beyond this a
// file is not CIFAR, and we refuse it before allocating.
inline constexpr size_t kMaxCifarFileBytes = size_t(2) << 30;

inline const std::vector<std::string>& cifar10_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

/// Class names from text, one per line, surrounding whitespace trimmed, blank
/// lines ignored. A count other than `expected` is an error naming `source`:
/// the file was meant for another data set.
inline std::vector<std::string> parse_class_names(std::span<const uint8_t> text,
                                                  const std::string& source, size_t expected) {
  std::vector<std::string> names;
  std::string line;
  auto flush = [&] {
    const char* ws = " \t\r\v\f";
    const size_t b = line.find_first_not_of(ws);
    if (b != std::string::npos) names.push_back(line.substr(b, line.find_last_not_of(ws) - b + 1));
    line.clear();
  };
  for (uint8_t c : text) {
    if (c == '\n')
      flush();
    else
      line.push_back(static_cast<char>(c));
  }
  flush();
  VIT_CHECK(names.size() == expected, source, ": has ", names.size(), " class names, expected ",
            expected);
  return names;
}

/// Names from the text file at `path` (see parse_class_names); if the file is
/// missing, `fallback`.
inline std::vector<std::string> read_class_names(const std::string& path, size_t expected,
                                                 std::vector<std::string> fallback) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return fallback;
  const std::vector<uint8_t> bytes = read_file(path, size_t(1) << 20);
  return parse_class_names(bytes, path, expected);
}

/// Appends the CIFAR records held in `bytes` to ds (`source` names them in
/// errors). The label used is byte `label_byte` of each record's
/// `label_bytes`; each label byte i must be < limits[i]. The whole buffer is
/// validated before ds is touched, so a bad file leaves no partial data.
inline void append_cifar_records(Dataset& ds, std::span<const uint8_t> bytes,
                                 const std::string& source, int64_t label_bytes, int64_t label_byte,
                                 const std::vector<int>& limits) {
  const int64_t record = label_bytes + kCifarPixels;
  const int64_t size = static_cast<int64_t>(bytes.size());
  VIT_CHECK(size > 0, source, ": file is empty");
  VIT_CHECK(size % record == 0, source, ": size ", size, " is not a multiple of the ", record,
            "-byte ", label_bytes == 1 ? "CIFAR-10" : "CIFAR-100", " record");
  const int64_t n = size / record;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t b = 0; b < label_bytes; ++b) {
      const int v = bytes[i * record + b];
      VIT_CHECK(v < limits[b], source, ": record ", i, " has ",
                label_bytes == 1 ? "label " : (b == 0 ? "coarse label " : "fine label "), v,
                ", expected < ", limits[b]);
    }
  const size_t old = ds.pixels.size();
  ds.pixels.resize(old + n * kCifarPixels);
  ds.labels.reserve(ds.labels.size() + n);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes.data() + i * record;
    ds.labels.push_back(rec[label_byte]);
    std::copy(rec + label_bytes, rec + record, ds.pixels.begin() + old + i * kCifarPixels);
  }
}

/// Appends the records of the CIFAR binary file at `path` (see append_cifar_records).
inline void append_cifar_file(Dataset& ds, const std::string& path, int64_t label_bytes,
                              int64_t label_byte, const std::vector<int>& limits) {
  const std::vector<uint8_t> bytes = read_file(path, kMaxCifarFileBytes);
  append_cifar_records(ds, bytes, path, label_bytes, label_byte, limits);
}

inline Dataset cifar_shell(std::vector<std::string> names) {
  Dataset ds;
  ds.channels = 3;
  ds.height = 32;
  ds.width = 32;
  ds.class_names = std::move(names);
  return ds;
}

}  // namespace detail

/// CIFAR-10 binary version from dir: train = data_batch_1..5.bin (all five
/// required), test = test_batch.bin. Any non-empty file whose size is a multiple
/// of 3073 is accepted. Class names from batches.meta.txt when present (exactly
/// 10 non-blank lines, else an error), otherwise the standard CIFAR-10 names.
inline Dataset read_cifar10(const std::string& dir, bool train) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (train)
    for (int i = 1; i <= 5; ++i)
      files.push_back((fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin")).string());
  else
    files.push_back((fs::path(dir) / "test_batch.bin").string());
  // Check all exist first: a missing batch 5 should not cost reading batches 1-4.
  for (const std::string& f : files) {
    std::error_code ec;
    VIT_CHECK(fs::exists(f, ec), f, ": no such file (CIFAR-10 ", train ? "train" : "test",
              " split needs ", train ? "data_batch_1..5.bin" : "test_batch.bin", ")");
  }
  Dataset ds = detail::cifar_shell(detail::read_class_names(
      (fs::path(dir) / "batches.meta.txt").string(), 10, detail::cifar10_names()));
  for (const std::string& f : files) detail::append_cifar_file(ds, f, 1, 0, {10});
  return ds;
}

/// CIFAR-100 binary version from dir: train.bin or test.bin, 3074-byte records
/// (coarse label, fine label, 3072 pixels). Labels are the 100 fine classes, or
/// the 20 coarse superclasses with coarse_labels. Both label bytes are
/// validated. Names from fine_label_names.txt / coarse_label_names.txt when
/// present (exact count required), else "class_0", "class_1", ...
inline Dataset read_cifar100(const std::string& dir, bool train, bool coarse_labels = false) {
  namespace fs = std::filesystem;
  const int k = coarse_labels ? 20 : 100;
  std::vector<std::string> fallback;
  for (int i = 0; i < k; ++i) fallback.push_back("class_" + std::to_string(i));
  const std::string names_file = coarse_labels ? "coarse_label_names.txt" : "fine_label_names.txt";
  Dataset ds = detail::cifar_shell(
      detail::read_class_names((fs::path(dir) / names_file).string(), k, std::move(fallback)));
  detail::append_cifar_file(ds, (fs::path(dir) / (train ? "train.bin" : "test.bin")).string(), 2,
                            coarse_labels ? 0 : 1, {20, 100});
  return ds;
}

}  // namespace vit::data
