// ImageFolder: a directory with one subfolder per class (torchvision's
// layout), decoded whole into memory, either split deterministically into
// train and validation or, laid out as ImageNet is (dir/train/<class>/... and
// dir/val/<class>/...), taken as given. Class order is the sorted folder
// names, as in torchvision, so label k means the same class in both tools.
// Only files directly inside a class folder count (no recursion), and only
// .jpg .jpeg .png .bmp (any case); everything else is ignored, so stray
// README or .DS_Store files are harmless. A folder that would give a class no
// images is an error, not a silently missing class.
//
// Each image keeps its aspect ratio: it is stored with its shorter side
// resized to floor(image_size / crop_pct), the first step of timm's
// evaluation transform (eval_transform.hpp), so memory stays bounded by the
// model's size and the loader finishes either pipeline from the stored copy:
// the centre crop for evaluation, RandomResizedCrop for training.
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
#include "vit/data/eval_transform.hpp"
#include "vit/data/image.hpp"

namespace vit::data {

/// How read_image_folder decodes and splits.
struct ImageFolderOptions {
  int64_t image_size = 224;  ///< the model's input size; images are stored for it (see crop_pct)
  double crop_pct = kDefaultCropPct;  ///< stored shorter side: floor(image_size / crop_pct)
  int64_t channels = 3;      ///< 3 = RGB, 1 = grey
  double val_ratio = 0.2;    ///< share of each class held out for validation, in [0, 1)
  uint64_t seed = 0;         ///< seeds the per-class shuffle that picks the validation files
  bool read_train = true;    ///< false: only the validation split is decoded (evaluation)
  DecodeLimits limits = {};  ///< size caps applied to every file before decoding
};

/// The two splits of an image folder; both carry all class names.
struct ImageFolderSplit {
  Dataset train, val;
  bool presplit = false;  ///< true: read from dir/train and dir/val as given
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

namespace detail {

inline bool is_directory(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

/// Sorted class subfolders of dir; an error naming dir when there are none.
inline std::vector<std::string> class_folders(const std::filesystem::path& dir,
                                              const std::string& layout) {
  const std::vector<std::string> classes =
      sorted_entries(dir, [](const std::filesystem::directory_entry& e) {
        std::error_code ec;
        return e.is_directory(ec);
      });
  VIT_CHECK(!classes.empty(), dir.string(), ": no class subfolders (expected ", layout, ")");
  VIT_CHECK(classes.size() <= size_t(INT32_MAX), dir.string(), ": too many class folders");
  return classes;
}

/// The image files of one class folder, sorted; an error when there are none.
inline std::vector<std::string> class_files(const std::filesystem::path& class_dir) {
  std::vector<std::string> files =
      sorted_entries(class_dir, [](const std::filesystem::directory_entry& e) {
        std::error_code ec;
        return e.is_regular_file(ec) && is_image_file_name(e.path().filename().string());
      });
  VIT_CHECK(!files.empty(), class_dir.string(),
            ": class folder has no .jpg, .jpeg, .png or .bmp images");
  return files;
}

/// One file to decode and where it goes.
struct FolderItem {
  std::string path;
  int32_t label;
  bool val;
};

/// Decodes the items into the two splits (train items only when opt.read_train),
/// each image stored as eval_resize(image, image_size, crop_pct), in item order.
inline void decode_folder_items(const std::vector<FolderItem>& all, const ImageFolderOptions& opt,
                                ImageFolderSplit& out) {
  std::vector<const FolderItem*> items;
  for (const FolderItem& it : all)
    if (it.val || opt.read_train) items.push_back(&it);
  const int64_t total = int64_t(items.size());
  const int64_t stored_short = eval_resize_size(opt.image_size, opt.crop_pct);
  // Decoding dominates; images are independent. Exceptions cannot leave an
  // OpenMP region, so each is kept and the first in file order is rethrown.
  std::vector<Image> images(items.size());
  std::vector<std::exception_ptr> errors(items.size());
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < total; ++i) {
    try {
      Image img = read_image(items[i]->path, opt.channels, opt.limits);
      const int64_t shorter = std::min(img.height, img.width);
      const int64_t longer = std::max(img.height, img.width);
      const double stored_long = double(stored_short) * double(longer) / double(shorter);
      VIT_CHECK(stored_long <= 65536, items[i]->path, ": a ", img.width, "x", img.height,
                " image is too elongated: its shorter side at ", stored_short,
                " makes the longer one ", int64_t(stored_long), " pixels (at most 65536)");
      images[i] = eval_resize(img, opt.image_size, opt.crop_pct);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  for (Dataset* ds : {&out.train, &out.val}) {
    ds->channels = opt.channels;
    ds->height = ds->width = 0;  // sizes vary: see extents
    int64_t bytes = 0, n = 0;
    for (int64_t i = 0; i < total; ++i)
      if (items[i]->val == (ds == &out.val)) bytes += images[i].numel(), ++n;
    ds->labels.reserve(size_t(n));
    ds->extents.reserve(size_t(n));
    ds->pixels.resize(size_t(bytes));
    int64_t offset = 0;
    for (int64_t i = 0; i < total; ++i) {
      if (items[i]->val != (ds == &out.val)) continue;
      Image& img = images[i];
      ds->labels.push_back(items[i]->label);
      ds->extents.push_back({offset, img.height, img.width});
      std::copy(img.data.begin(), img.data.end(), ds->pixels.begin() + offset);
      offset += img.numel();
      img = Image();  // release as we go
    }
  }
}

}  // namespace detail

/// Whether dir is laid out as ImageNet is: dir/train/<class>/... and
/// dir/val/<class>/... (either subfolder present; read_image_folder then
/// requires both).
inline bool is_train_val_folder(const std::string& dir) {
  const std::filesystem::path root(dir);
  return detail::is_directory(root / "train") || detail::is_directory(root / "val");
}

/// Reads an image folder into two in-memory splits, each image decoded (JPEG,
/// PNG, BMP) with opt.channels and its shorter side resized (Pillow bilinear,
/// antialiased) to floor(image_size / crop_pct), aspect ratio kept (the
/// Dataset's extents give each size). Classes are subfolders sorted by name;
/// files are sorted by name.
///
/// dir/train/<class>/<image> and dir/val/<class>/<image> (ImageNet's layout)
/// are used as given: the classes are train's, val may hold all of them or
/// fewer, but none that train lacks. Otherwise dir/<class>/<image> is split:
/// per class, a permutation seeded by (opt.seed, class index) picks
/// val_count(n, val_ratio) files for val. Both splits are in class-then-file-
/// name order. Throws vit::Error naming the path for a missing dir, only one
/// of train/ and val/, no class folders, a class folder without images, a val
/// class train lacks, or an image that cannot be decoded or exceeds opt.limits.
inline ImageFolderSplit read_image_folder(const std::string& dir, const ImageFolderOptions& opt) {
  namespace fs = std::filesystem;
  VIT_CHECK(opt.image_size >= 1 && opt.image_size <= 8192, "read_image_folder: image_size ",
            opt.image_size, " is outside 1..8192");
  VIT_CHECK(opt.crop_pct > 0 && opt.crop_pct <= 1, "read_image_folder: crop_pct ", opt.crop_pct,
            " is outside (0, 1]");
  VIT_CHECK(opt.channels == 1 || opt.channels == 3,
            "read_image_folder: channels must be 1 or 3, got ", opt.channels);
  VIT_CHECK(opt.val_ratio >= 0.0 && opt.val_ratio < 1.0, "read_image_folder: val_ratio ",
            opt.val_ratio, " is outside [0, 1)");
  std::error_code ec;
  const fs::path root(dir);
  VIT_CHECK(fs::exists(root, ec), dir, ": no such directory");
  VIT_CHECK(fs::is_directory(root, ec), dir, ": not a directory");

  ImageFolderSplit out;
  std::vector<detail::FolderItem> items;
  std::vector<std::string> classes;
  if (is_train_val_folder(dir)) {
    const std::string layout = "dir/train/<class>/<image> and dir/val/<class>/<image>";
    const fs::path train = root / "train", val = root / "val";
    VIT_CHECK(detail::is_directory(train) && detail::is_directory(val), dir, ": has ",
              detail::is_directory(train) ? "train/ but no val/" : "val/ but no train/",
              " (a folder laid out as ImageNet needs both: ", layout, ")");
    out.presplit = true;
    classes = detail::class_folders(train, layout);
    const std::vector<std::string> val_classes = detail::class_folders(val, layout);
    for (const std::string& v : val_classes)
      VIT_CHECK(std::binary_search(classes.begin(), classes.end(), v), (val / v).string(),
                ": class '", v, "' has no folder in ", train.string(),
                " (val's classes must be train's or fewer)");
    for (int pass = 0; pass < 2; ++pass) {
      const bool is_val = pass == 1;
      if (!is_val && !opt.read_train) continue;  // evaluation: train/ gives only the names
      const fs::path split = is_val ? val : train;
      for (size_t c = 0; c < classes.size(); ++c) {
        if (is_val && !std::binary_search(val_classes.begin(), val_classes.end(), classes[c]))
          continue;
        const fs::path class_dir = split / classes[c];
        for (const std::string& f : detail::class_files(class_dir))
          items.push_back({(class_dir / f).string(), int32_t(c), is_val});
      }
    }
  } else {
    classes = detail::class_folders(root, "dir/<class>/<image>, or dir/train/<class>/<image> and "
                                          "dir/val/<class>/<image>");
    for (size_t c = 0; c < classes.size(); ++c) {
      const fs::path class_dir = root / classes[c];
      const std::vector<std::string> files = detail::class_files(class_dir);
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
        items.push_back({(class_dir / files[i]).string(), int32_t(c), bool(in_val[i])});
    }
  }
  out.train.class_names = out.val.class_names = classes;
  detail::decode_folder_items(items, opt, out);
  return out;
}

}  // namespace vit::data
