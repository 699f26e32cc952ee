// IDX readers (MNIST, Fashion-MNIST) and the bounded file/gzip reading every
// data reader shares. Files are read whole with a size cap checked before any
// allocation; gzip is inflated in chunks into a buffer that never grows past the
// caller's cap, so neither a hostile IDX header nor a gzip bomb can make us
// allocate more than the caller allowed. No memory mapping, no partial reads:
// a reader either returns a fully validated Dataset or throws vit::Error naming
// the file.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/data/dataset.hpp"

namespace vit::data {

/// The largest file the dataset readers load by default (after inflating).
inline constexpr size_t kDefaultMaxDataBytes = size_t(1) << 30;

namespace detail {

/// Reads a whole regular file, refusing (before allocating) one larger than max_bytes.
inline std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  VIT_CHECK(st.type() != fs::file_type::not_found, path, ": no such file");
  VIT_CHECK(!ec, path, ": cannot access (", ec.message(), ")");
  VIT_CHECK(fs::is_regular_file(st), path, ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  VIT_CHECK(!ec, path, ": cannot read its size (", ec.message(), ")");
  VIT_CHECK(size <= max_bytes, path, ": size ", size, " bytes exceeds the limit of ", max_bytes,
            " bytes");
  std::ifstream in(path, std::ios::binary);
  VIT_CHECK(in.good(), path, ": cannot open for reading");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  VIT_CHECK(static_cast<uintmax_t>(in.gcount()) == size, path, ": read ", in.gcount(), " of ", size,
            " bytes (file changed or I/O error)");
  return bytes;
}

inline std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
  return buf;
}

inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

inline bool is_gzip(const std::vector<uint8_t>& b) {
  return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

/// Inflates gzip bytes (one or more concatenated members, as gzip(1) writes
/// them), refusing output beyond max_bytes. `path` is only for messages.
inline std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, size_t max_bytes,
                                   const std::string& path) {
  z_stream zs{};
  VIT_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, path, ": cannot initialise zlib");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};

  // avail_in is 32-bit: feed the input in pieces.
  constexpr size_t kInPiece = size_t(1) << 30;
  constexpr size_t kChunk = size_t(1) << 18;
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(kChunk);
  size_t fed = 0;  // input bytes handed to zlib so far
  auto feed = [&] {
    if (zs.avail_in == 0 && fed < in.size()) {
      const size_t n = std::min(kInPiece, in.size() - fed);
      zs.next_in = const_cast<Bytef*>(in.data() + fed);
      zs.avail_in = static_cast<uInt>(n);
      fed += n;
    }
  };
  for (;;) {
    feed();
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(kChunk);
    const int ret = inflate(&zs, Z_NO_FLUSH);
    const size_t produced = kChunk - zs.avail_out;
    VIT_CHECK(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR, path,
              ": corrupt gzip data (", zs.msg ? zs.msg : "zlib error " + std::to_string(ret), ")");
    VIT_CHECK(produced <= max_bytes - out.size(), path, ": inflates to more than ", max_bytes,
              " bytes, the limit for this file (gzip bomb, or a limit too small)");
    if (produced > 0) {
      // Grow by doubling but never past max_bytes, so capacity stays within the cap.
      const size_t need = out.size() + produced;
      if (need > out.capacity())
        out.reserve(std::min(max_bytes, std::max(need, 2 * out.capacity())));
      out.insert(out.end(), chunk.data(), chunk.data() + produced);
    }
    const size_t input_left = (in.size() - fed) + zs.avail_in;
    if (ret == Z_STREAM_END) {
      if (input_left == 0) return out;
      // Another member follows (gzip -c a b > ab.gz); anything else is garbage.
      const uint8_t* next = in.data() + (in.size() - input_left);
      VIT_CHECK(input_left >= 2 && next[0] == 0x1f && next[1] == 0x8b, path, ": ", input_left,
                " trailing bytes after the gzip stream");
      VIT_CHECK(inflateReset(&zs) == Z_OK, path, ": cannot reset zlib");
      continue;
    }
    // No progress with all input consumed and room left for output: the stream ended early.
    VIT_CHECK(!(input_left == 0 && zs.avail_out != 0), path,
              ": truncated gzip (the stream ends before its end marker)");
    VIT_CHECK(ret != Z_BUF_ERROR || input_left == 0 || produced > 0, path,
              ": corrupt gzip data (zlib made no progress)");
  }
}

inline const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

/// dir/name if it exists, else dir/name.gz if that exists, else an error naming both.
inline std::string raw_or_gz(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path raw = fs::path(dir) / name;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  if (fs::is_regular_file(raw, ec)) return raw.string();
  if (fs::is_regular_file(gz, ec)) return gz.string();
  VIT_CHECK(false, dir, ": neither ", name, " nor ", name, ".gz exists");
  return {};
}

}  // namespace detail

/// `raw` itself, or its inflated contents if it starts with the gzip magic
/// (1f 8b). Throws vit::Error naming `source` when the result would exceed
/// max_bytes, or the gzip data is corrupt, truncated or has trailing garbage.
inline std::vector<uint8_t> maybe_gunzip(std::vector<uint8_t> raw, size_t max_bytes,
                                         const std::string& source) {
  if (detail::is_gzip(raw)) return detail::gunzip(raw, max_bytes, source);
  VIT_CHECK(raw.size() <= max_bytes, source, ": size ", raw.size(), " bytes exceeds the limit of ",
            max_bytes, " bytes");
  return raw;
}

/// Reads a file whole, inflating it when gzipped (see maybe_gunzip). Throws
/// vit::Error naming the file when it is missing, too large, or corrupt.
inline std::vector<uint8_t> read_maybe_gzip(const std::string& path, size_t max_bytes) {
  // A gzip of incompressible data is a little larger than its content: allow
  // deflate's stored-block overhead (5 bytes per 64 KiB) plus headers on input.
  const size_t slack = max_bytes / 1024 + 4096;
  const size_t in_cap =
      max_bytes > std::numeric_limits<size_t>::max() - slack ? max_bytes : max_bytes + slack;
  return maybe_gunzip(detail::read_file(path, in_cap), max_bytes, path);
}

namespace detail {
struct IdxImagesHeader {
  uint32_t n, rows, cols;
};
/// Validates the contents of an IDX image file (magic 0x00000803: uint8, dims
/// n, rows, cols, big endian): magic, n >= 1, 1..4096 rows/cols, and a payload
/// of exactly n*rows*cols bytes.
inline IdxImagesHeader check_idx_images(const std::vector<uint8_t>& img, const std::string& path) {
  constexpr uint32_t kMaxSide = 4096;
  VIT_CHECK(img.size() >= 16, path, ": ", img.size(),
            " bytes is too short for an IDX image header (16 bytes)");
  const uint32_t magic = load_be32(img.data());
  VIT_CHECK(magic == 0x00000803u, path, ": IDX magic ", hex32(magic),
            ", expected 0x00000803 (uint8 images: n, rows, cols)");
  const IdxImagesHeader h{load_be32(img.data() + 4), load_be32(img.data() + 8),
                          load_be32(img.data() + 12)};
  VIT_CHECK(h.n >= 1, path, ": header says 0 images");
  VIT_CHECK(h.rows >= 1 && h.rows <= kMaxSide && h.cols >= 1 && h.cols <= kMaxSide, path,
            ": image size ", h.rows, "x", h.cols, " is outside 1..", kMaxSide);
  // At most 2^32 * 2^24: no overflow in 64 bits.
  const uint64_t expect = uint64_t(h.n) * h.rows * h.cols;
  const uint64_t have = img.size() - 16;
  VIT_CHECK(have == expect, path, ": header says ", h.n, " images of ", h.rows, "x", h.cols, " (",
            expect, " bytes) but the file holds ", have, " bytes after the header",
            have < expect ? " (truncated)" : " (trailing bytes)");
  return h;
}
}  // namespace detail

/// A Dataset from the contents of an IDX image file and its IDX label file
/// (magic 0x00000801: uint8, dim n), already inflated; the paths are for
/// messages. Validates both headers and payload sizes (see
/// detail::check_idx_images), equal counts, and labels < class_names.size().
/// Result: 1-channel uint8 images, labels in file order.
inline Dataset decode_idx(std::vector<uint8_t> img, const std::string& images_path,
                          const std::vector<uint8_t>& lab, const std::string& labels_path,
                          std::vector<std::string> class_names) {
  VIT_CHECK(!class_names.empty(), "read_idx: no class names given for ", labels_path);
  const auto [n, rows, cols] = detail::check_idx_images(img, images_path);

  VIT_CHECK(lab.size() >= 8, labels_path, ": ", lab.size(),
            " bytes is too short for an IDX label header (8 bytes)");
  const uint32_t lab_magic = detail::load_be32(lab.data());
  VIT_CHECK(lab_magic == 0x00000801u, labels_path, ": IDX magic ", detail::hex32(lab_magic),
            ", expected 0x00000801 (uint8 labels: n)");
  const uint32_t n_labels = detail::load_be32(lab.data() + 4);
  VIT_CHECK(lab.size() - 8 == n_labels, labels_path, ": header says ", n_labels,
            " labels but the file holds ", lab.size() - 8, " bytes after the header",
            lab.size() - 8 < n_labels ? " (truncated)" : " (trailing bytes)");
  VIT_CHECK(n_labels == n, labels_path, ": ", n_labels, " labels but ", images_path, " has ", n,
            " images");

  Dataset ds;
  ds.channels = 1;
  ds.height = rows;
  ds.width = cols;
  ds.labels.resize(n);
  const size_t k = class_names.size();
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t l = lab[8 + size_t(i)];
    VIT_CHECK(l < k, labels_path, ": label ", int(l), " at index ", i, " is out of range for ", k,
              " classes");
    ds.labels[i] = l;
  }
  // Drop the header in place rather than copying the payload.
  img.erase(img.begin(), img.begin() + 16);
  ds.pixels = std::move(img);
  ds.class_names = std::move(class_names);
  return ds;
}

/// Reads an IDX image file and its label file, raw or gzip, each at most
/// max_bytes once inflated (see decode_idx).
inline Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                        std::vector<std::string> class_names,
                        size_t max_bytes = kDefaultMaxDataBytes) {
  VIT_CHECK(!class_names.empty(), "read_idx: no class names given for ", labels_path);
  std::vector<uint8_t> img = read_maybe_gzip(images_path, max_bytes);
  // Checked before the label file is read, so a broken images file is the
  // one reported even when the labels are broken too.
  detail::check_idx_images(img, images_path);
  const std::vector<uint8_t> lab = read_maybe_gzip(labels_path, max_bytes);
  return decode_idx(std::move(img), images_path, lab, labels_path, std::move(class_names));
}

/// Fashion-MNIST from dir: {train,t10k}-{images-idx3,labels-idx1}-ubyte, raw
/// preferred over .gz when both exist. 10 named classes (T-shirt/top .. Ankle boot).
inline Dataset read_fashion_mnist(const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  // Named first so a missing images file is the one reported.
  const std::string images = detail::raw_or_gz(dir, prefix + "-images-idx3-ubyte");
  return read_idx(images, detail::raw_or_gz(dir, prefix + "-labels-idx1-ubyte"),
                  detail::fashion_mnist_names());
}

/// MNIST from dir, same file names as Fashion-MNIST; classes "0".."9".
inline Dataset read_mnist(const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  std::vector<std::string> names;
  for (int d = 0; d < 10; ++d) names.push_back(std::to_string(d));
  const std::string images = detail::raw_or_gz(dir, prefix + "-images-idx3-ubyte");
  return read_idx(images, detail::raw_or_gz(dir, prefix + "-labels-idx1-ubyte"), std::move(names));
}

}  // namespace vit::data
