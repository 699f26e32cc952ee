// ImageFolder: a directory with one subfolder per class (torchvision's layout),
// decoded whole into memory at a fixed square size and split deterministically
// into train and validation. Class order is the sorted folder names, as in
// torchvision, so label k means the same class in both tools. Only files
// directly inside a class folder count (no recursion), and only .jpg .jpeg .png
// .bmp (any case); everything else is ignored, so stray README or .DS_Store
// files are harmless. A folder that would give a class no images is an error,
// not a silently missing class.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/image.hpp"

namespace vit::data {

/// How read_image_folder decodes and splits.
struct ImageFolderOptions {
  int64_t image_size = 224;  ///< every image is squash-resized to image_size x image_size
  int64_t channels = 3;      ///< 3 = RGB, 1 = grey
  double val_ratio = 0.2;    ///< share of each class held out for validation, in [0, 1)
  uint64_t seed = 0;         ///< seeds the per-class shuffle that picks the validation files
  DecodeLimits limits = {};  ///< size caps applied to every file before decoding
};

/// The two splits of an image folder; both carry all class names.
struct ImageFolderSplit {
  Dataset train, val;
};

namespace detail {

inline bool is_image_file_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot);
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

/// Names of the entries of dir for which keep(entry) holds, sorted bytewise
/// (code-point order for UTF-8, like Python's sorted()).
template <class Keep>
std::vector<std::string> sorted_entries(const std::filesystem::path& dir, Keep keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  VIT_CHECK(!ec, dir.string(), ": cannot list directory (", ec.message(), ")");
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    VIT_CHECK(!ec, dir.string(), ": cannot list directory (", ec.message(), ")");
    if (keep(*it)) names.push_back(it->path().filename().string());
  }
  VIT_CHECK(!ec, dir.string(), ": cannot list directory (", ec.message(), ")");
  std::sort(names.begin(), names.end());
  return names;
}

/// A permutation of 0..n-1 (Fisher-Yates) drawn from g.
inline std::vector<int64_t> permutation(int64_t n, Generator& g) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    // Multiply-shift maps 64 random bits onto [0, i] without modulo's skew.
    const int64_t j =
        int64_t((static_cast<unsigned __int128>(g.next_u64()) * uint64_t(i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return p;
}

/// How many of a class's n files go to validation: round(n * ratio), at
/// least one when n > 1 and ratio > 0, and never all of them when n > 1.
inline int64_t val_count(int64_t n, double ratio) {
  int64_t k = std::llround(double(n) * ratio);
  if (n > 1 && ratio > 0) k = std::clamp<int64_t>(k, 1, n - 1);
  return std::clamp<int64_t>(k, 0, n);
}

}  // namespace detail

/// Reads dir/<class>/<image> into two in-memory splits, each image decoded
/// (JPEG, PNG, BMP) with opt.channels and squash-resized (Pillow bilinear,
/// antialiased) to opt.image_size square. Classes are the subfolders sorted by
/// name; files are sorted by name. Per class, a permutation seeded by
/// (opt.seed, class index) picks val_count(n, val_ratio) files for val; both
/// splits are then in class-then-file-name order. Throws vit::Error naming the
/// path for a missing dir, no class folders, a class folder without images, or
/// an image that cannot be decoded or exceeds opt.limits.
inline ImageFolderSplit read_image_folder(const std::string& dir, const ImageFolderOptions& opt) {
  namespace fs = std::filesystem;
  VIT_CHECK(opt.image_size >= 1 && opt.image_size <= 8192, "read_image_folder: image_size ",
            opt.image_size, " is outside 1..8192");
  VIT_CHECK(opt.channels == 1 || opt.channels == 3,
            "read_image_folder: channels must be 1 or 3, got ", opt.channels);
  VIT_CHECK(opt.val_ratio >= 0.0 && opt.val_ratio < 1.0, "read_image_folder: val_ratio ",
            opt.val_ratio, " is outside [0, 1)");
  std::error_code ec;
  const fs::path root(dir);
  VIT_CHECK(fs::exists(root, ec), dir, ": no such directory");
  VIT_CHECK(fs::is_directory(root, ec), dir, ": not a directory");

  const std::vector<std::string> classes =
      detail::sorted_entries(root, [](const fs::directory_entry& e) {
        std::error_code e2;
        return e.is_directory(e2);
      });
  VIT_CHECK(!classes.empty(), dir, ": no class subfolders (expected dir/<class>/<image>)");
  VIT_CHECK(classes.size() <= size_t(INT32_MAX), dir, ": too many class folders");

  // Every file to decode, with where its pixels go.
  struct Item {
    std::string path;
    int32_t label;
    bool val;
    int64_t slot;  // index within its split
  };
  std::vector<Item> items;
  int64_t n_train = 0, n_val = 0;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path class_dir = root / classes[c];
    const std::vector<std::string> files =
        detail::sorted_entries(class_dir, [](const fs::directory_entry& e) {
          std::error_code e2;
          return e.is_regular_file(e2) && detail::is_image_file_name(e.path().filename().string());
        });
    VIT_CHECK(!files.empty(), class_dir.string(),
              ": class folder has no .jpg, .jpeg, .png or .bmp images");
    const int64_t n = int64_t(files.size());
    // Counter-based: each class draws from its own stream, so adding files to
    // one class does not reshuffle the others.
    Generator g;
    g.set_state(opt.seed, uint64_t(c) << 40);
    const std::vector<int64_t> perm = detail::permutation(n, g);
    std::vector<bool> in_val(files.size(), false);
    const int64_t k = detail::val_count(n, opt.val_ratio);
    for (int64_t i = 0; i < k; ++i) in_val[perm[i]] = true;
    for (int64_t i = 0; i < n; ++i)
      items.push_back({(class_dir / files[i]).string(), int32_t(c), bool(in_val[i]),
                       in_val[i] ? n_val++ : n_train++});
  }

  const int64_t S = opt.image_size, C = opt.channels, numel = C * S * S;
  ImageFolderSplit out;
  for (Dataset* ds : {&out.train, &out.val}) {
    ds->channels = C;
    ds->height = S;
    ds->width = S;
    ds->class_names = classes;
    const int64_t n = ds == &out.val ? n_val : n_train;
    ds->labels.resize(n);
    ds->pixels.resize(size_t(n * numel));
  }

  // Decoding dominates; images are independent. Exceptions cannot leave an
  // OpenMP region, so each is kept and the first in file order is rethrown.
  const int64_t total = int64_t(items.size());
  std::vector<std::exception_ptr> errors(items.size());
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < total; ++i) {
    try {
      const Item& it = items[i];
      const Image img = resize(read_image(it.path, C, opt.limits), S, S);
      Dataset& ds = it.val ? out.val : out.train;
      ds.labels[it.slot] = it.label;
      std::copy(img.data.begin(), img.data.end(), ds.pixels.begin() + it.slot * numel);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace vit::data
