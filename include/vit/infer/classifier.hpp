// Classifier: a trained ViT as an image classifier. Loads a checkpoint (one
// written by `vit train`, or timm weights with a preset name) with its config,
// class names, normalisation and evaluation crop; turns any decoded image into
// the model's input (channels converted, timm's evaluation transform) and
// returns the top-k classes with their probabilities, on the CPU or the GPU.
//
//   vit::Classifier clf("best.safetensors");
//   for (const auto& p : clf.classify("cat.jpg")) std::cout << p.name << " " << p.probability;
//
// Several images go through one forward (classify(std::vector<...>)). The
// probabilities are softmax of the float logits computed in double. Channel
// conversions (a colour photo into a grey model, a grey scan into an RGB one)
// are reported once per kind through ClassifierOptions::on_note and notes(),
// never printed: the caller decides where messages go.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vit/core/error.hpp"
#include "vit/core/tensor.hpp"
#include "vit/data/eval_transform.hpp"
#include "vit/data/image.hpp"
#include "vit/data/transforms.hpp"
#include "vit/io/checkpoint.hpp"
#include "vit/nn/mixed_precision.hpp"
#include "vit/nn/vision_transformer.hpp"

namespace vit {

/// One ranked class: its index in the head, its name and its probability.
struct Prediction {
  int64_t index = 0;
  std::string name;
  double probability = 0;
};

struct ClassifierOptions {
  std::string preset;           // architecture for weights without a config (timm's)
  Device device = Device::CPU;  // where the model runs
  /// Run the model's bf16 twin (nn::MixedPrecision): bf16 activations and GEMM
  /// operands, float32 accumulation and logits.
  bool bf16 = false;
  /// Evaluation crop, overriding the checkpoint's "vit.crop_pct" (see eval_crop_pct).
  std::optional<double> crop_pct;
  /// Overrides the checkpoint's "vit.normalization" (default: timm's 0.5/0.5).
  std::optional<data::Normalization> normalization;
  /// Called with each note (a channel conversion), once per kind.
  std::function<void(const std::string&)> on_note;
};

namespace infer {

inline const char* kNormalizationKey = "vit.normalization";
inline const char* kCropPctKey = "vit.crop_pct";

/// The normalisation stored in a checkpoint (key "vit.normalization", JSON
/// {"mean": [...], "std": [...]} with one entry per channel), else timm's
/// 0.5/0.5, which the original ViT weights use. Errors name the file and key.
template <class T>
data::Normalization checkpoint_normalization(const io::Checkpoint<T>& ck, int64_t channels) {
  const auto it = ck.metadata.find(kNormalizationKey);
  if (it == ck.metadata.end()) return data::folder_normalization(channels);
  const std::string src = ck.path + " (" + kNormalizationKey + ")";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    VIT_CHECK(false, src, ": not valid JSON");
  }
  data::Normalization n;
  try {
    n.mean = j.at("mean").get<std::vector<float>>();
    n.std = j.at("std").get<std::vector<float>>();
  } catch (const nlohmann::json::exception&) {
    VIT_CHECK(false, src, ": needs arrays 'mean' and 'std'");
  }
  VIT_CHECK(static_cast<int64_t>(n.mean.size()) == channels && n.std.size() == n.mean.size(), src,
            ": ", n.mean.size(), " channels for a model with ", channels);
  for (float s : n.std) VIT_CHECK(s > 0 && std::isfinite(s), src, ": std must be positive");
  for (float m : n.mean) VIT_CHECK(std::isfinite(m), src, ": mean must be finite");
  return n;
}

/// The evaluation crop a checkpoint records (key "vit.crop_pct", a number in
/// (0, 1]), or nullopt when it records none.
template <class T>
std::optional<double> checkpoint_crop_pct(const io::Checkpoint<T>& ck) {
  const auto it = ck.metadata.find(kCropPctKey);
  if (it == ck.metadata.end()) return std::nullopt;
  const std::string src = ck.path + " (" + kCropPctKey + ")";
  double v = 0;
  try {
    const nlohmann::json j = nlohmann::json::parse(it->second);
    VIT_CHECK(j.is_number(), src, ": must be a number, got '", vit::detail::printable(it->second), "'");
    v = j.template get<double>();
  } catch (const nlohmann::json::exception&) {
    VIT_CHECK(false, src, ": must be a number, got '", vit::detail::printable(it->second), "'");
  }
  VIT_CHECK(std::isfinite(v) && v > 0 && v <= 1, src, ": must be in (0, 1], got ", v);
  return v;
}

/// The crop an image of h×w gets for a model of `size`: the given one when
/// known; else none (1) for an image already at the model's size, as the
/// fixed-size data sets (CIFAR, MNIST) train and evaluate, and timm's
/// default 0.875 for any other.
inline double eval_crop_pct(std::optional<double> known, int64_t h, int64_t w, int64_t size) {
  if (known) return *known;
  return h == size && w == size ? 1.0 : data::kDefaultCropPct;
}

inline const char* channels_name(int64_t c) {
  return c == 1 ? "grey" : c == 2 ? "grey+alpha" : c == 3 ? "RGB" : c == 4 ? "RGBA" : "?";
}

/// The image with `channels` (1 or 3): grey is replicated into RGB; RGB
/// becomes grey by stb_image's luma (77 R + 150 G + 29 B) / 256, the
/// conversion the data sets' decoder applies, so a model sees what it trained on.
inline data::Image convert_channels(const data::Image& img, int64_t channels) {
  VIT_CHECK(channels == 1 || channels == 3, "convert_channels: channels must be 1 or 3, got ",
            channels);
  VIT_CHECK(img.channels == 1 || img.channels == 3, "convert_channels: image has ", img.channels,
            " channels (need 1 or 3)");
  VIT_CHECK(img.height >= 1 && img.width >= 1 && img.data.size() == size_t(img.numel()),
            "convert_channels: image (", img.channels, ",", img.height, ",", img.width, ") holds ",
            img.data.size(), " bytes");
  if (img.channels == channels) return img;
  const int64_t plane = img.height * img.width;
  data::Image out(channels, img.height, img.width);
  if (channels == 3) {
    for (int64_t c = 0; c < 3; ++c) std::copy_n(img.data.data(), plane, out.data.data() + c * plane);
  } else {
    const uint8_t *r = img.data.data(), *g = r + plane, *b = g + plane;
    for (int64_t i = 0; i < plane; ++i)
      out.data[i] = static_cast<uint8_t>((r[i] * 77 + g[i] * 150 + b[i] * 29) >> 8);
  }
  return out;
}

/// The channel count a file's header declares (1 grey, 2 grey+alpha, 3 RGB,
/// 4 RGBA), or 0 when it cannot be read (the decoder then says why).
inline int64_t file_channels(const std::vector<uint8_t>& bytes) {
  if (bytes.empty() || bytes.size() > size_t(INT_MAX)) return 0;
  int w = 0, h = 0, comp = 0;
  // stb_image is compiled into data/image.hpp (static); its header parse only.
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp) != 1) return 0;
  return comp;
}

/// Softmax (in double) of each row of `logits` (B,K) on the CPU, the k most
/// probable classes first (ties: the lower index first). `names` has K
/// entries or is empty ("class_<i>").
inline std::vector<std::vector<Prediction>> top_k(const TensorF& logits, int64_t k,
                                                  const std::vector<std::string>& names = {}) {
  VIT_CHECK(logits.dim() == 2, "top_k: logits ", logits.shape(), " (need B,K)");
  VIT_CHECK(k >= 1, "top_k: k must be >= 1, got ", k);
  const TensorF host = logits.to(Device::CPU);
  const int64_t B = host.shape()[0], K = host.shape()[1];
  VIT_CHECK(names.empty() || static_cast<int64_t>(names.size()) == K, "top_k: ", names.size(),
            " class names for ", K, " classes");
  std::vector<std::vector<Prediction>> out(static_cast<size_t>(B));
  std::vector<double> p(static_cast<size_t>(K));
  std::vector<int64_t> order(static_cast<size_t>(K));
  for (int64_t b = 0; b < B; ++b) {
    const float* row = host.data() + b * K;
    double mx = row[0];
    for (int64_t j = 1; j < K; ++j) mx = std::max<double>(mx, row[j]);
    double z = 0;
    for (int64_t j = 0; j < K; ++j) z += p[j] = std::exp(double(row[j]) - mx);
    std::iota(order.begin(), order.end(), 0);
    const int64_t n = std::min(k, K);
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [&](int64_t a, int64_t c) { return p[a] > p[c] || (p[a] == p[c] && a < c); });
    for (int64_t r = 0; r < n; ++r) {
      const int64_t j = order[r];
      out[b].push_back({j, names.empty() ? "class_" + std::to_string(j) : names[j], p[j] / z});
    }
  }
  return out;
}

}  // namespace infer

class Classifier {
 public:
  /// Loads `weights` (.safetensors); see ClassifierOptions.
  explicit Classifier(const std::string& weights, ClassifierOptions options = {})
      : options_(std::move(options)) {
    const auto ck = io::load_checkpoint<float>(weights);
    model_ = io::model_from_checkpoint(ck, options_.preset);
    names_ = ck.class_names;
    norm_ = options_.normalization ? *options_.normalization
                                   : infer::checkpoint_normalization(ck, model_->config.in_chans);
    crop_pct_ = options_.crop_pct ? options_.crop_pct : infer::checkpoint_crop_pct(ck);
    finish();
  }

  /// A classifier around a model in memory (class names may be empty).
  Classifier(std::unique_ptr<nn::VisionTransformer<float>> model, std::vector<std::string> class_names,
             data::Normalization normalization, ClassifierOptions options = {})
      : options_(std::move(options)),
        model_(std::move(model)),
        names_(std::move(class_names)),
        norm_(std::move(normalization)) {
    VIT_CHECK(model_ != nullptr, "Classifier: no model");
    crop_pct_ = options_.crop_pct;
    finish();
  }

  /// The top-k classes of an image file (JPEG, PNG, BMP).
  std::vector<Prediction> classify(const std::string& image_path, int64_t k = 5) {
    return classify(std::vector<std::string>{image_path}, k).front();
  }
  /// The top-k classes of a decoded image (1 or 3 channels, any size).
  std::vector<Prediction> classify(const data::Image& image, int64_t k = 5) {
    return classify(std::vector<data::Image>{image}, k).front();
  }
  /// Several files in one forward, results in their order.
  std::vector<std::vector<Prediction>> classify(const std::vector<std::string>& image_paths,
                                                int64_t k = 5) {
    std::vector<data::Image> prepared;
    for (const auto& p : image_paths) prepared.push_back(prepare(read(p), p));
    return predictions(forward(prepared), k);
  }
  /// Several decoded images in one forward, results in their order.
  std::vector<std::vector<Prediction>> classify(const std::vector<data::Image>& images, int64_t k = 5) {
    std::vector<data::Image> prepared;
    for (size_t i = 0; i < images.size(); ++i)
      prepared.push_back(prepare(images[i], "image " + std::to_string(i)));
    return predictions(forward(prepared), k);
  }

  // The steps of classify, for callers that need what lies between them
  // (the prepared picture, the input tensor, attention maps).

  /// Decodes an image file at its own channel count (grey or RGB; alpha dropped).
  data::Image read(const std::string& path) const {
    const std::vector<uint8_t> bytes = data::detail::read_file(path, data::kMaxImageFileBytes);
    const int64_t comp = infer::file_channels(bytes);
    return data::decode_image(bytes, path, comp == 1 || comp == 2 ? 1 : 3);
  }
  /// The model's uint8 input for `image`: channels converted (noted once per
  /// kind, naming `name`), then the evaluation transform.
  data::Image prepare(const data::Image& image, const std::string& name = "image") {
    const auto& c = model_->config;
    VIT_CHECK(image.channels == 1 || image.channels == 3, name, ": image has ", image.channels,
              " channels (need 1 grey or 3 RGB)");
    VIT_CHECK(image.height >= 1 && image.width >= 1 && image.data.size() == size_t(image.numel()),
              name, ": image (", image.channels, ",", image.height, ",", image.width, ") holds ",
              image.data.size(), " bytes");
    if (image.channels != c.in_chans) {
      const std::string kind = std::to_string(image.channels) + ">" + std::to_string(c.in_chans);
      if (noted_.insert(kind).second)
        note(name + ": " + infer::channels_name(image.channels) + " " + std::to_string(image.width) +
             "x" + std::to_string(image.height) + " image converted to the model's " +
             infer::channels_name(c.in_chans) + " " + std::to_string(c.image_size) + "x" +
             std::to_string(c.image_size) + " input");
    }
    const data::Image img = infer::convert_channels(image, c.in_chans);
    const double crop = infer::eval_crop_pct(crop_pct_, img.height, img.width, c.image_size);
    return data::eval_transform(img, c.image_size, crop);
  }
  /// Prepared images -> normalised (B,C,S,S) float on the model's device.
  TensorF input(const std::vector<data::Image>& prepared) const {
    const auto& c = model_->config;
    VIT_CHECK(!prepared.empty(), "Classifier: no images");
    const int64_t B = static_cast<int64_t>(prepared.size()), S = c.image_size;
    TensorF x = TensorF::empty({B, c.in_chans, S, S});
    for (int64_t b = 0; b < B; ++b) {
      const data::Image& im = prepared[b];
      VIT_CHECK(im.channels == c.in_chans && im.height == S && im.width == S,
                "Classifier: prepared image ", b, " is (", im.channels, ",", im.height, ",", im.width,
                "), the model takes (", c.in_chans, ",", S, ",", S, ")");
      data::to_normalized_float(im, norm_, x.data() + b * c.in_chans * S * S);
    }
    return x.to(model_->device());
  }
  /// Logits (B,K) of prepared images, one forward, no graph.
  TensorF forward(const std::vector<data::Image>& prepared) const {
    NoGradGuard no_grad;
    return mixed_ ? mixed_->forward(input(prepared)) : model_->forward(input(prepared));
  }
  /// Top-k of logits (B,K) with this model's class names.
  std::vector<std::vector<Prediction>> predictions(const TensorF& logits, int64_t k) const {
    return infer::top_k(logits, k, names_);
  }

  nn::VisionTransformer<float>& model() { return *model_; }
  const nn::VisionTransformer<float>& model() const { return *model_; }
  const nn::VitConfig& config() const { return model_->config; }
  /// One name per class: the checkpoint's, else "class_<i>".
  const std::vector<std::string>& class_names() const { return names_; }
  const data::Normalization& normalization() const { return norm_; }
  /// The recorded or given crop; nullopt: chosen per image (infer::eval_crop_pct).
  std::optional<double> crop_pct() const { return crop_pct_; }
  Device device() const { return model_->device(); }
  /// Every note so far, in order.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  void finish() {
    const auto& c = model_->config;
    VIT_CHECK(c.in_chans == 1 || c.in_chans == 3, "Classifier: the model takes ", c.in_chans,
              " channels; images have 1 (grey) or 3 (RGB)");
    VIT_CHECK(names_.empty() || static_cast<int64_t>(names_.size()) == c.num_classes, "Classifier: ",
              names_.size(), " class names for a model with ", c.num_classes, " classes");
    if (names_.empty())
      for (int64_t k = 0; k < c.num_classes; ++k) names_.push_back("class_" + std::to_string(k));
    data::detail::check_normalization(norm_, c.in_chans, "Classifier");
    if (crop_pct_)
      VIT_CHECK(std::isfinite(*crop_pct_) && *crop_pct_ > 0 && *crop_pct_ <= 1,
                "Classifier: crop_pct must be in (0, 1], got ", *crop_pct_);
    model_->to(options_.device);
    if (options_.bf16) mixed_ = std::make_unique<nn::MixedPrecision>(*model_);
    model_->eval();
  }
  void note(const std::string& text) {
    notes_.push_back(text);
    if (options_.on_note) options_.on_note(text);
  }

  ClassifierOptions options_;
  std::unique_ptr<nn::VisionTransformer<float>> model_;
  std::unique_ptr<nn::MixedPrecision> mixed_;  // options_.bf16: the bf16 twin of model_
  std::vector<std::string> names_;
  data::Normalization norm_;
  std::optional<double> crop_pct_;
  std::set<std::string> noted_;
  std::vector<std::string> notes_;
};

}  // namespace vit
