// The data sets `vit` reads by name, one row each: where the files live when
// --data is not given, the preset and epoch count a run trains with, the
// normalisation, and the reader. Adding a data set is adding a row; nothing
// else in the command line switches on a data set's name.
#pragma once

#include <string>
#include <vector>
#include <vit/vit.hpp>

namespace vitcli {

struct Splits {
  vit::data::Dataset train, test;
};

struct DatasetInfo {
  std::string name;
  std::string default_dir;    // "": --data is required
  std::string where_to_get;   // what the --data error suggests when none is given
  std::string default_model;  // preset when --model is not given
  int64_t default_epochs;     // from scratch; fine-tuning has its own default
  /// torchvision's usual constants; folders get timm's 0.5/0.5 for `channels`.
  vit::data::Normalization (*normalization)(int64_t channels);
  /// Reads the test split, and the train split when `need_train`; `folder`
  /// (image size, crop_pct, channels, validation share and seed) matters only to folders.
  Splits (*read)(const std::string& dir, bool need_train,
                 const vit::data::ImageFolderOptions& folder);
  /// Photos of any size, each kept at its aspect ratio: RandomResizedCrop to
  /// train, resize and centre crop (--crop-pct) to evaluate, ImageNet
  /// statistics at 224 (timm's fine-tuning pipeline). false: fixed-size images.
  bool any_size = false;
};

namespace detail {
// A data set stored as a train file and a test file: train first, so a
// corrupt train file is named before the test file is read.
template <class Read>
Splits read_both(bool need_train, Read read) {
  Splits s;
  if (need_train) s.train = read(true);
  s.test = read(false);
  return s;
}
}  // namespace detail

inline const std::vector<DatasetInfo>& datasets() {
  using vit::data::ImageFolderOptions;
  static const std::vector<DatasetInfo> table = {
      {"cifar10", "",
       "download it with scripts/fetch_cifar.sh cifar10 DIR, then --data DIR/cifar-10-batches-bin",
       "cifar-tiny", 100, [](int64_t) { return vit::data::cifar10_normalization(); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions&) {
         return detail::read_both(need_train,
                                  [&](bool t) { return vit::data::read_cifar10(dir, t); });
       }},
      // cifar100 trains on the 100 fine labels, cifar100-coarse on the 20 superclasses.
      {"cifar100", "",
       "download it with scripts/fetch_cifar.sh cifar100 DIR, then --data DIR/cifar-100-binary",
       "cifar-tiny", 100,
       [](int64_t) { return vit::data::cifar100_normalization(); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions&) {
         return detail::read_both(need_train,
                                  [&](bool t) { return vit::data::read_cifar100(dir, t, false); });
       }},
      {"cifar100-coarse", "",
       "download it with scripts/fetch_cifar.sh cifar100 DIR, then --data DIR/cifar-100-binary",
       "cifar-tiny", 100,
       [](int64_t) { return vit::data::cifar100_normalization(); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions&) {
         return detail::read_both(need_train,
                                  [&](bool t) { return vit::data::read_cifar100(dir, t, true); });
       }},
      // The only one with a standard place on Debian (the dataset-fashion-mnist
      // package); 50 epochs is what 92% needs (RESULTS.md).
      {"fashion-mnist", "/usr/share/datasets/fashion-mnist",
       "the directory of its IDX files, e.g. from Debian's dataset-fashion-mnist package",
       "fmnist-tiny", 50,
       [](int64_t) { return vit::data::fashion_mnist_normalization(); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions&) {
         return detail::read_both(need_train,
                                  [&](bool t) { return vit::data::read_fashion_mnist(dir, t); });
       }},
      {"mnist", "", "the directory of its four IDX files (train-images-idx3-ubyte, ...)",
       "fmnist-tiny", 10, [](int64_t) { return vit::data::mnist_normalization(); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions&) {
         return detail::read_both(need_train,
                                  [&](bool t) { return vit::data::read_mnist(dir, t); });
       }},
      // One subfolder per class, split into train/val by --val-ratio and
      // --seed (the split needs both halves), or DIR/train and DIR/val as given.
      {"folder", "",
       "a directory of DIR/<class>/<image>, or DIR/train/<class>/<image> and "
       "DIR/val/<class>/<image>",
       "vit-ti16", 30, [](int64_t channels) { return vit::data::folder_normalization(channels); },
       [](const std::string& dir, bool need_train, const ImageFolderOptions& o) {
         ImageFolderOptions opt = o;
         opt.read_train = need_train;
         auto split = vit::data::read_image_folder(dir, opt);
         VIT_CHECK(split.val.size() > 0, dir,
                   split.presplit
                       ? ": val/ has no images"
                       : ": the validation split is empty (raise --val-ratio or add images)");
         return Splits{std::move(split.train), std::move(split.val)};
       },
       /*any_size=*/true},
  };
  return table;
}

inline const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& d : datasets()) n.push_back(d.name);
    return n;
  }();
  return names;
}

/// The row of data set `name`, or a vit::Error listing the known ones.
inline const DatasetInfo& dataset_info(const std::string& name) {
  for (const auto& d : datasets())
    if (d.name == name) return d;
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  VIT_CHECK(false, "--dataset: unknown data set '", name, "' (known: ", known, ")");
  return datasets().front();
}

/// The data set's normalisation for a model of `channels` channels: grey
/// statistics are repeated when grey data feeds an RGB model.
inline vit::data::Normalization normalization_for(const std::string& dataset, int64_t channels) {
  vit::data::Normalization n = dataset_info(dataset).normalization(channels);
  if (static_cast<int64_t>(n.mean.size()) == 1 && channels == 3) {
    n.mean.assign(3, n.mean[0]);
    n.std.assign(3, n.std[0]);
  }
  return n;
}

/// Reads a data set by name. Folders are stored for a model of `image_size`
/// (shorter side floor(image_size / crop_pct), see read_image_folder) and, unless
/// laid out as DIR/train and DIR/val, split into train/val by `val_ratio` and `seed`.
inline Splits load_splits(const std::string& dataset, const std::string& dir, bool need_train,
                          int64_t image_size, int64_t channels, double val_ratio, uint64_t seed,
                          double crop_pct = vit::data::kDefaultCropPct) {
  const DatasetInfo& info = dataset_info(dataset);
  VIT_CHECK(!dir.empty(), "--data: no directory given for ", dataset, " (", info.where_to_get, ")");
  vit::data::ImageFolderOptions folder;
  folder.image_size = image_size, folder.channels = channels, folder.val_ratio = val_ratio;
  folder.seed = seed, folder.crop_pct = crop_pct;
  return info.read(dir, need_train, folder);
}

}  // namespace vitcli
