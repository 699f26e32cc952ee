// The data side of a training run, from its options: the splits, the
// normalisation and the training loader's configuration (augmentation,
// sampler shard). Folders get timm's fine-tuning pipeline: RandomResizedCrop
// and flip to train, resize to size/crop_pct and centre crop to evaluate.
#pragma once

#include <algorithm>
#include <string>
#include <vit/vit.hpp>

#include "datasets.hpp"
#include "job.hpp"
#include "train_options.hpp"

namespace vitcli {

/// The run's train and test splits, for a model of `cfg`'s size and channels
/// (folders are stored for its size and --crop-pct).
inline Splits run_splits(const TrainOptions& o, const vit::nn::VitConfig& cfg) {
  return load_splits(o.dataset, o.data, true, cfg.image_size, cfg.in_chans, o.val_ratio, o.seed,
                     o.crop_pct);
}

/// The run's normalisation for a model with `cfg`'s channels: --mean/--std
/// when given (one value applies to every channel), else the data set's; for
/// folders, as timm, 0.5/0.5 for the in21k presets and ImageNet's statistics
/// for the other 224-pixel ones.
inline vit::data::Normalization run_normalization(const TrainOptions& o,
                                                  const vit::nn::VitConfig& cfg) {
  const int64_t C = cfg.in_chans;
  vit::data::Normalization n = normalization_for(o.dataset, C);
  if (dataset_info(o.dataset).any_size) {
    if (cfg.name.ends_with("-in21k"))
      n = vit::data::folder_normalization(C);
    else if (cfg.image_size == 224 && C == 3)
      n = vit::data::imagenet_normalization();
  }
  const auto given = [C](const std::vector<double>& v, const char* flag, std::vector<float>& out) {
    if (v.empty()) return;
    VIT_CHECK(static_cast<int64_t>(v.size()) == 1 || static_cast<int64_t>(v.size()) == C, flag,
              ": ", v.size(), " values for a model with ", C,
              " channels (give one, or one per channel)");
    out.assign(static_cast<size_t>(C), 0.f);
    for (int64_t c = 0; c < C; ++c) out[c] = static_cast<float>(v.size() == 1 ? v[0] : v[c]);
  };
  given(o.norm_mean, "--mean", n.mean);
  given(o.norm_std, "--std", n.std);
  for (float s : n.std) VIT_CHECK(s > 0, "--std: ", s, " must be positive");
  return n;
}

inline vit::data::LoaderConfig train_loader_config(const TrainOptions& o,
                                                   const vit::nn::VitConfig& cfg,
                                                   const vit::data::Normalization& norm) {
  vit::data::LoaderConfig lc;
  lc.batch_size = o.batch, lc.shuffle = !o.no_shuffle, lc.drop_last = true,
  lc.augment = !o.no_augment;
  lc.seed = o.seed, lc.normalization = norm, lc.workers = o.workers;
  lc.rank = job().rank(), lc.world_size = job().size();  // DistributedSampler's shard
  lc.image_size = cfg.image_size, lc.channels = cfg.in_chans;
  vit::data::AugmentConfig& a = lc.augment_config;
  // Photos of any size: RandomResizedCrop (timm's default scale and ratio)
  // replaces the padded crop of small fixed-size images.
  a.random_resized_crop = dataset_info(o.dataset).any_size;
  a.scale_lo = o.scale.at(0), a.scale_hi = o.scale.at(1);
  a.ratio_lo = o.ratio.at(0), a.ratio_hi = o.ratio.at(1);
  a.crop_padding = o.crop_padding >= 0    ? o.crop_padding
                   : cfg.image_size == 32 ? 4
                   : cfg.image_size == 28 ? 2
                                          : 0;
  a.hflip = o.hflip;
  a.randaugment_n = o.randaugment_n, a.randaugment_m = o.randaugment_m;
  a.color_jitter = o.color_jitter;
  a.erasing_prob = o.erasing;
  a.erasing_min_area = o.erasing_area.at(0), a.erasing_max_area = o.erasing_area.at(1);
  lc.mixup = !o.no_augment && (o.mixup > 0 || o.cutmix > 0);
  lc.mixup_config.mixup_alpha = o.mixup, lc.mixup_config.cutmix_alpha = o.cutmix;
  lc.mixup_config.label_smoothing = o.label_smoothing,
  lc.mixup_config.num_classes = cfg.num_classes;
  return lc;
}

}  // namespace vitcli
