// Loader: turns a Dataset into an endless, reproducible stream of float
// batches, prepared on background threads so the training step does not wait.
//
// Reproducibility is by construction, not by ordering threads: on rank r of a
// data-parallel job of N ranks (N = 1 for one process), sample j of batch k of
// epoch e is the one at position p = N·(k·B + j) + r of epoch e's order (the
// permutation of distributed_sampler.hpp, a pure function of the run seed and e,
// padded to a multiple of N by repeating its start), and it is augmented with a
// generator seeded from (seed, e, p). Mixup draws from (seed, e, k, r). So a
// batch depends only on its cursor (epoch, batch index) and the rank, which is
// all a checkpoint has to store for a bit-exact resume, whatever the number of
// worker threads. Because augmentation is keyed on p, not on the rank, the N
// ranks' batch k hold, image for image, the single-process batch k of size N·B
// (only mixup, which mixes within a rank's own batch, differs). With N = 1, p is
// k·B + j: the single-process stream.
//
// Images of mixed sizes (image folders keep each photo's aspect ratio, stored
// with the shorter side at floor(image_size / crop_pct), eval_transform.hpp)
// are cropped to image_size here: training takes RandomResizedCrop from the
// stored copy (augment_config.random_resized_crop; an approximation of timm,
// which crops from the original file), evaluation the centre crop, which is
// then exactly timm's resize-and-centre-crop.
//
// Steady state allocates nothing: batches live in a ring of slots allocated once.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "vit/core/rng.hpp"
#include "vit/core/tensor.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/distributed_sampler.hpp"
#include "vit/data/image.hpp"
#include "vit/data/mixup.hpp"
#include "vit/data/transforms.hpp"

namespace vit::data {

struct LoaderConfig {
  int64_t batch_size = 128;
  bool shuffle = true;       // per-epoch permutation from the seed; false: file order
  bool drop_last = true;     // training: only full batches (timm's default); eval: false
  bool augment = true;       // false: normalisation only (evaluation)
  uint64_t seed = 0;
  AugmentConfig augment_config{};
  Normalization normalization{};
  bool mixup = false;        // batch-level mixup/cutmix into soft targets
  MixupConfig mixup_config{};
  /// > 0: the output's square size: fixed-size images are resized (antialiased
  /// bilinear) to it, images of mixed sizes cropped (required for those).
  int64_t image_size = 0;
  int64_t channels = 0;      // > 0: output channels; 1 -> 3 replicates a grey image
  int workers = 1;           // background threads preparing batches
  int prefetch = 2;          // batches prepared ahead of the consumer
  /// Data parallelism (distributed_sampler.hpp): this process is rank `rank` of
  /// `world_size`, batch_size is per rank (global batch world_size·batch_size).
  /// With drop_last an epoch is floor(n / (world_size·batch_size)) full batches
  /// per rank, so the padding of the sampler never enters training; without,
  /// ceil(ceil(n / world_size) / batch_size), the rank's padded shard, last batch short.
  int rank = 0;
  int world_size = 1;
};

/// One prepared batch. Valid until the next call to Loader::next().
struct Batch {
  TensorF images;                 // (n,C,H,W), normalised (and augmented)
  std::vector<int64_t> labels;    // n hard labels (also kept when mixed)
  TensorF soft_targets;           // (n,K) when mixup is on, else undefined
  int64_t epoch = 0, index = 0;   // its cursor
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

class Loader {
 public:
  Loader(const Dataset& data, LoaderConfig cfg) : data_(data), cfg_(std::move(cfg)) {
    VIT_CHECK(cfg_.batch_size > 0, "loader: batch size must be positive, got ", cfg_.batch_size);
    VIT_CHECK(data_.size() > 0, "loader: the data set is empty");
    check_rank(cfg_.rank, cfg_.world_size, "loader");
    VIT_CHECK(!cfg_.drop_last || data_.size() >= cfg_.batch_size, "loader: batch size ",
              cfg_.batch_size, " is larger than the data set (", data_.size(), " images)");
    VIT_CHECK(!cfg_.drop_last || data_.size() >= cfg_.batch_size * cfg_.world_size,
              "loader: the global batch ", cfg_.world_size, " ranks x ", cfg_.batch_size, " = ",
              cfg_.batch_size * cfg_.world_size, " is larger than the data set (", data_.size(),
              " images)");
    VIT_CHECK(cfg_.workers >= 1 && cfg_.prefetch >= 1, "loader: workers and prefetch must be >= 1");
    VIT_CHECK(!data_.variable_size() || cfg_.image_size > 0,
              "loader: images of different sizes need an output image_size");
    VIT_CHECK(!data_.variable_size() || data_.extents.size() == data_.labels.size(),
              "loader: ", data_.extents.size(), " image extents for ", data_.size(), " images");
    out_c_ = cfg_.channels > 0 ? cfg_.channels : data_.channels;
    out_h_ = cfg_.image_size > 0 ? cfg_.image_size : data_.height;
    out_w_ = cfg_.image_size > 0 ? cfg_.image_size : data_.width;
    VIT_CHECK(out_c_ == data_.channels || (data_.channels == 1 && out_c_ == 3), "loader: cannot turn ",
              data_.channels, "-channel images into ", out_c_, "-channel ones");
    VIT_CHECK(static_cast<int64_t>(cfg_.normalization.mean.size()) == out_c_ &&
                  static_cast<int64_t>(cfg_.normalization.std.size()) == out_c_,
              "loader: normalisation has ", cfg_.normalization.mean.size(), " channels, images ",
              out_c_);
    const int64_t B = cfg_.batch_size;
    slots_.resize(static_cast<size_t>(cfg_.prefetch + cfg_.workers));
    for (auto& s : slots_) {
      s.images = TensorF::empty({B, out_c_, out_h_, out_w_});
      s.batch.labels.reserve(static_cast<size_t>(B));
      if (cfg_.mixup) s.soft_targets = TensorF::empty({B, data_.num_classes()});
      s.labels32.reserve(static_cast<size_t>(B));
    }
  }
  ~Loader() { stop(); }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Batches this rank reads per epoch (the same on every rank).
  int64_t batches_per_epoch() const {
    const int64_t n = data_.size(), B = cfg_.batch_size, N = cfg_.world_size;
    return cfg_.drop_last ? n / (N * B) : (shard_size(n, cfg_.world_size) + B - 1) / B;
  }
  const LoaderConfig& config() const { return cfg_; }

  /// (Re)starts the stream at a cursor; the next next() returns batch `index` of `epoch`.
  void start(int64_t epoch = 0, int64_t index = 0) {
    stop();
    VIT_CHECK(epoch >= 0 && index >= 0 && index < batches_per_epoch(), "loader: cursor (epoch ",
              epoch, ", batch ", index, ") is outside the ", batches_per_epoch(),
              " batches of an epoch");
    next_to_consume_ = next_to_produce_ = epoch * batches_per_epoch() + index;
    for (auto& s : slots_) s.state = Slot::Free, s.number = -1;
    failure_ = nullptr;
    stopping_ = false;
    for (int w = 0; w < cfg_.workers; ++w) workers_.emplace_back([this] { work(); });
  }

  /// The next batch in order; blocks while it is being prepared.
  const Batch& next() {
    if (workers_.empty()) start(0, 0);
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    if (current_) {  // the consumer is done with the previous batch
      current_->state = Slot::Free;
      current_ = nullptr;
      cv_.notify_all();
    }
    const int64_t want = next_to_consume_;
    Slot* slot = nullptr;
    cv_.wait(lock, [&] {
      if (failure_) return true;
      for (auto& s : slots_)
        if (s.state == Slot::Ready && s.number == want) slot = &s;
      return slot != nullptr;
    });
    if (failure_) std::rethrow_exception(failure_);
    ++next_to_consume_;
    current_ = slot;
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return slot->batch;
  }

  /// Seconds next() spent blocked since construction (to report the share of time waiting).
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Slot {
    enum State { Free, Busy, Ready } state = Free;
    int64_t number = -1;
    Batch batch;                   // what next() hands out: views of the buffers below
    TensorF images, soft_targets;  // full-size buffers, allocated once
    std::vector<int32_t> labels32; // mixup's label type
  };

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      current_ = nullptr;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void work() {
    for (;;) {
      Slot* slot = nullptr;
      int64_t number = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        // Never run more than `prefetch` batches ahead of the consumer.
        cv_.wait(lock, [&] {
          if (stopping_) return true;
          if (next_to_produce_ >= next_to_consume_ + cfg_.prefetch) return false;
          for (auto& s : slots_)
            if (s.state == Slot::Free) {
              slot = &s;
              return true;
            }
          return false;
        });
        if (stopping_) return;
        number = next_to_produce_++;
        slot->state = Slot::Busy;
        slot->number = number;
      }
      try {
        const int64_t bpe = batches_per_epoch();
        fill(number / bpe, number % bpe, *slot);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        failure_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      slot->state = Slot::Ready;
      cv_.notify_all();
    }
  }

  void fill(int64_t epoch, int64_t index, Slot& slot) {
    // Each worker keeps its own copy of the current epoch's permutation.
    thread_local std::vector<int64_t> perm;
    thread_local int64_t perm_epoch = -1;
    thread_local uint64_t perm_owner = 0;
    if (perm_epoch != epoch || perm_owner != id_) {
      epoch_permutation(data_.size(), cfg_.shuffle, cfg_.seed, epoch, perm);
      perm_epoch = epoch, perm_owner = id_;
    }
    Batch& out = slot.batch;
    const int64_t B = cfg_.batch_size, total = data_.size();
    const int world = cfg_.world_size, rank = cfg_.rank;
    // This rank's shard has shard_size samples; batch `index` starts at its index·B-th.
    const int64_t n = std::min(B, shard_size(total, world) - index * B);
    const int64_t C = out_c_, H = out_h_, W = out_w_, img = C * H * W;
    const bool variable = data_.variable_size();
    const bool reshape =
        !variable && (C != data_.channels || H != data_.height || W != data_.width);
    thread_local Image source;  // the sample at the output size, when it needs converting
    out.labels.resize(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; ++s) {
      // Position in the padded epoch order; past n it wraps to the order's start.
      const int64_t pos = sample_position(B, world, rank, index, s);
      const int64_t i = perm[static_cast<size_t>(pos % total)];
      out.labels[static_cast<size_t>(s)] = data_.labels[static_cast<size_t>(i)];
      float* dst = slot.images.data() + s * img;
      if (variable) {
        fill_variable(i, epoch, pos, dst);
        continue;
      }
      const uint8_t* pixels = data_.image_data(i);
      if (reshape) {
        convert(i, source);
        pixels = source.data.data();
      }
      if (cfg_.augment) {
        Generator g(sample_seed(epoch, pos));
        augment_and_normalize(pixels, C, H, W, cfg_.augment_config, cfg_.normalization, g, dst);
      } else {
        normalize_only(pixels, C, H, W, cfg_.normalization, dst);
      }
    }
    // A short last batch (eval) is a view of the first n rows; full ones reuse the buffer.
    out.images = n == B ? slot.images : slot.images.narrow0(0, n);
    if (cfg_.mixup) {
      // Per batch and per rank; rank 0 keeps the single-process seed.
      Generator g(detail::mix_seed(cfg_.seed, static_cast<uint64_t>(epoch),
                                   static_cast<uint64_t>(index),
                                   0x3122 | (static_cast<uint64_t>(rank) << 32)));
      slot.labels32.assign(out.labels.begin(), out.labels.end());
      mixup_batch(slot.images.data(), n, C, H, W, slot.labels32.data(), cfg_.mixup_config, g,
                  slot.soft_targets.data());
      out.soft_targets = n == B ? slot.soft_targets : slot.soft_targets.narrow0(0, n);
    }
    out.epoch = epoch, out.index = index;
  }

  // The generator of the sample at position pos of epoch's order. Keyed on the
  // global position, not the rank: the same sample gets the same augmentation
  // whichever rank draws it.
  uint64_t sample_seed(int64_t epoch, int64_t pos) const {
    return detail::mix_seed(cfg_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pos),
                            0xA06);
  }

  // Image i of a data set of mixed sizes into dst (out_c_, out_h_, out_w_).
  void fill_variable(int64_t i, int64_t epoch, int64_t pos, float* dst) const {
    int64_t C = data_.channels;
    const int64_t h = data_.image_height(i), w = data_.image_width(i);
    const uint8_t* src = data_.image_data(i);
    thread_local Image rgb, small, cropped;  // reused: no allocation per sample
    if (out_c_ != C) {  // grey into RGB: the plane three times
      rgb.channels = out_c_, rgb.height = h, rgb.width = w;
      rgb.data.resize(static_cast<size_t>(out_c_ * h * w));
      for (int64_t c = 0; c < out_c_; ++c) std::copy_n(src, h * w, rgb.data.data() + c * h * w);
      src = rgb.data.data(), C = out_c_;
    }
    const AugmentConfig& ac = cfg_.augment_config;
    if (cfg_.augment && ac.random_resized_crop) {
      Generator g(sample_seed(epoch, pos));
      augment_and_normalize(src, C, h, w, out_h_, out_w_, ac, cfg_.normalization, g, dst);
      return;
    }
    // The centre crop. An image smaller than the crop (never stored by
    // read_image_folder) first gets its shorter side resized up to it.
    int64_t sh = h, sw = w;
    if (h < out_h_ || w < out_w_) {
      Image in(C, h, w);
      std::copy_n(src, C * h * w, in.data.data());
      small = resize_shorter_side(in, std::max(out_h_, out_w_));
      src = small.data.data(), sh = small.height, sw = small.width;
    }
    cropped.channels = C, cropped.height = out_h_, cropped.width = out_w_;
    cropped.data.resize(static_cast<size_t>(C * out_h_ * out_w_));
    detail::crop_into(src, C, sh, sw, detail::center_offset(sh, out_h_),
                      detail::center_offset(sw, out_w_), out_h_, out_w_, cropped.data.data());
    if (cfg_.augment) {
      Generator g(sample_seed(epoch, pos));
      augment_and_normalize(cropped.data.data(), C, out_h_, out_w_, ac, cfg_.normalization, g, dst);
    } else {
      normalize_only(cropped.data.data(), C, out_h_, out_w_, cfg_.normalization, dst);
    }
  }

  // Sample i resized to the output size and, for grey into RGB, replicated.
  void convert(int64_t i, Image& out) const {
    Image img = data_.image(i);
    if (img.height != out_h_ || img.width != out_w_) img = resize(img, out_h_, out_w_);
    if (out_c_ != img.channels) {
      const int64_t plane = img.height * img.width;
      Image rgb(out_c_, img.height, img.width);
      for (int64_t c = 0; c < out_c_; ++c)
        std::copy_n(img.data.data(), plane, rgb.data.data() + c * plane);
      img = std::move(rgb);
    }
    out = std::move(img);
  }

  static uint64_t new_id() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
  }

  const uint64_t id_ = new_id();  // tells workers' cached permutations apart across loaders
  const Dataset& data_;
  LoaderConfig cfg_;
  int64_t out_c_ = 0, out_h_ = 0, out_w_ = 0;
  std::vector<Slot> slots_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::exception_ptr failure_;
  int64_t next_to_produce_ = 0, next_to_consume_ = 0;
  Slot* current_ = nullptr;
  double wait_seconds_ = 0;
};

}  // namespace vit::data
