// `vit predict`: top-k classes with probabilities for image files (through
// vit::Classifier), and on request an attention heat map over each image:
// the rollout through every layer, or one block's attention (one head, or
// the mean of its heads) from the cls token to the patches. The picture
// carries the predicted class and a colour bar.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "raster.hpp"

namespace vitcli {

void add_predict_options(CLI::App& cmd, PredictOptions& o) {
  cmd.add_option("--weights", o.weights, "Weights (.safetensors)")->required()->check(CLI::ExistingFile);
  cmd.add_option("images", o.images, "Image files (JPEG, PNG, BMP)")->required();
  cmd.add_option("--model", o.model, "Architecture preset, for weights without a config (e.g. from timm)");
  cmd.add_option("--top", o.top, "How many classes to list")->check(positive_number())->capture_default_str();
  cmd.add_option("--attention-map", o.attention_map,
                 "Write a heat map of the attention over the image to this PNG (with several "
                 "images: NAME-<i>.png); the rollout through every layer unless --attention-layer");
  cmd.add_option("--attention-layer", o.attention_layer,
                 "With --attention-map: the attention of this block only (0 = first), from the "
                 "cls token to the patches, averaged over its heads unless --attention-head")
      ->check(non_negative_number());
  cmd.add_option("--attention-head", o.attention_head,
                 "With --attention-layer: this head only (0 = first)")
      ->check(non_negative_number());
  cmd.add_option("--batch", o.batch, "Images per forward pass")->check(positive_number())->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (default: all cores)")->check(positive_number());
  cmd.add_option("--device", o.device, "Device")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd.add_option("--precision", o.precision, "Arithmetic: fp32, tf32 (GPU tensor cores) or bf16 (bf16 activations, float32 logits)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))->capture_default_str();
}

namespace {

std::string indexed_path(const std::string& path, size_t i, size_t n) {
  if (n == 1) return path;
  const auto dot = path.rfind('.');
  const auto slash = path.rfind('/');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  const std::string stem = has_ext ? path.substr(0, dot) : path, ext = has_ext ? path.substr(dot) : ".png";
  return stem + "-" + std::to_string(i) + ext;
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

/// A map over the patch grid and what its colours mean.
struct AttentionMap {
  std::vector<double> values;  // grid·grid, row-major
  int64_t grid = 0;
  std::string low, high;       // the colour bar's end labels
  std::string caption;         // what the map is
};

// One block's attention from the cls token (row 0) to each patch (columns
// 1..N-1): head `head`, or the mean over heads when head < 0. P: (1,H,N,N).
AttentionMap block_map(const vit::TensorF& P, int64_t layer, int64_t head) {
  const int64_t H = P.shape()[1], N = P.shape()[2];
  AttentionMap m;
  m.grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(N - 1))));
  m.values.assign(static_cast<size_t>(N - 1), 0.0);
  for (int64_t h = 0; h < H; ++h) {
    if (head >= 0 && h != head) continue;
    const float* row = P.data() + h * N * N;  // query 0: the cls token
    for (int64_t j = 1; j < N; ++j) m.values[j - 1] += row[j] / (head >= 0 ? 1.0 : double(H));
  }
  const auto [lo, hi] = std::minmax_element(m.values.begin(), m.values.end());
  m.low = format("%.3g", *lo), m.high = format("%.3g", *hi);
  m.caption = "cls attention, block " + std::to_string(layer) +
              (head >= 0 ? ", head " + std::to_string(head) : ", mean of " + std::to_string(H) + " heads");
  return m;
}

AttentionMap rollout_map(const vit::nn::AttentionRollout<float>& roll) {
  return {roll.map, roll.grid, "min", "max", "attention rollout (scaled to its range)"};
}

/// The image at display size with the map blended over it in jet colours, the
/// predicted class above it and the colour bar beside it.
vit::data::Image attention_picture(const vit::data::Image& input, const AttentionMap& m,
                                   const vit::Prediction& top) {
  using namespace raster;
  const int64_t S = std::max<int64_t>(input.height, 224), grid = m.grid;
  const auto [lo_it, hi_it] = std::minmax_element(m.values.begin(), m.values.end());
  const double lo = *lo_it, span = *hi_it - *lo_it;
  const vit::data::Image base = vit::data::resize(input, S, S);
  vit::data::Image heat(3, S, S);
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) {
      // Bilinear upsampling of the map with half-pixel centres.
      const double gy = std::clamp((y + 0.5) * grid / S - 0.5, 0.0, grid - 1.0);
      const double gx = std::clamp((x + 0.5) * grid / S - 0.5, 0.0, grid - 1.0);
      const int64_t y0 = static_cast<int64_t>(gy), x0 = static_cast<int64_t>(gx);
      const int64_t y1 = std::min(y0 + 1, grid - 1), x1 = std::min(x0 + 1, grid - 1);
      const double fy = gy - y0, fx = gx - x0;
      const auto& v = m.values;
      const double value = (1 - fy) * ((1 - fx) * v[y0 * grid + x0] + fx * v[y0 * grid + x1]) +
                           fy * ((1 - fx) * v[y1 * grid + x0] + fx * v[y1 * grid + x1]);
      const Rgb c = jet(span > 0 ? (value - lo) / span : 0.0);
      for (int k = 0; k < 3; ++k) {
        const double px = base.at(base.channels == 3 ? k : 0, y, x);
        heat.at(k, y, x) = static_cast<uint8_t>(std::lround(0.5 * px + 0.5 * c[k]));
      }
    }
  const int64_t pad = 10, bar = 14, title_h = 2 * kLineHeight + 4;
  const std::string label = top.name + "  " + format("%.1f%%", 100 * top.probability);
  const int64_t bar_w = colour_bar_width(bar, m.high, m.low, m.caption);
  Raster r(std::max(pad + S + 12 + bar_w + pad, pad + Raster::text_width(label, 2) + pad),
           pad + title_h + S + pad);
  r.text(pad, pad, label, kBlack, 2);
  r.paste(heat, pad, pad + title_h);
  colour_bar(r, pad + S + 12, pad + title_h, bar, S, jet, m.high, m.low, m.caption);
  return r.image();
}

void print_predictions(const std::string& path, const std::vector<vit::Prediction>& top) {
  std::printf("%s\n", path.c_str());
  for (size_t r = 0; r < top.size(); ++r)
    std::printf("  %zu. %-20s %7.3f%%\n", r + 1, top[r].name.c_str(), 100 * top[r].probability);
}

}  // namespace

int run_predict(const PredictOptions& o) {
  VIT_CHECK(o.attention_layer < 0 || !o.attention_map.empty(),
            "--attention-layer: needs --attention-map (where the map goes)");
  VIT_CHECK(o.attention_head < 0 || o.attention_layer >= 0,
            "--attention-head: needs --attention-layer (the rollout mixes every layer's heads)");
  vit::set_num_threads(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()));
  vit::ClassifierOptions co;
  co.preset = o.model;
  co.device = checked_device(o.device);  // before anything is read
  co.bf16 = o.precision == "bf16";
  if (co.bf16 && co.device == vit::Device::CPU) say_cpu_bf16_not_faster("predict");
  if (o.precision == "tf32" && co.device == vit::Device::CUDA) allow_tf32();
  co.on_note = [](const std::string& note) { std::fprintf(stderr, "note: %s\n", note.c_str()); };
  vit::Classifier clf(o.weights, co);
  const auto& cfg = clf.config();
  // The flags' own ranges are the model's: checked once it is known, before any image.
  VIT_CHECK(o.attention_layer < cfg.depth, "--attention-layer ", o.attention_layer, ": the model has ",
            cfg.depth, " blocks (0 to ", cfg.depth - 1, ")");
  VIT_CHECK(o.attention_head < cfg.heads, "--attention-head ", o.attention_head, ": the model has ",
            cfg.heads, " heads per block (0 to ", cfg.heads - 1, ")");
  if (o.attention_map.empty()) {
    // Batches of images, one forward each.
    for (size_t first = 0; first < o.images.size(); first += static_cast<size_t>(o.batch)) {
      const size_t last = std::min(o.images.size(), first + static_cast<size_t>(o.batch));
      const std::vector<std::string> chunk(o.images.begin() + first, o.images.begin() + last);
      const auto results = clf.classify(chunk, o.top);
      for (size_t i = 0; i < chunk.size(); ++i) print_predictions(chunk[i], results[i]);
    }
    return 0;
  }
  for (size_t i = 0; i < o.images.size(); ++i) {
    const std::string& path = o.images[i];
    const vit::data::Image in = clf.prepare(clf.read(path), path);
    const vit::TensorF x = clf.input({in});
    vit::TensorF logits;
    AttentionMap map;
    if (o.attention_layer >= 0) {
      auto probs = vit::nn::attention_probabilities(clf.model(), x);
      logits = probs.logits;
      map = block_map(probs.per_block[static_cast<size_t>(o.attention_layer)], o.attention_layer,
                      o.attention_head);
    } else {
      const auto roll = vit::nn::attention_rollout(clf.model(), x);
      logits = roll.logits;
      map = rollout_map(roll);
    }
    const auto top = clf.predictions(logits, o.top).front();
    print_predictions(path, top);
    const std::string out = indexed_path(o.attention_map, i, o.images.size());
    vit::data::write_png(out, attention_picture(in, map, top.front()));
    std::printf("  attention map: %s\n", out.c_str());
  }
  return 0;
}

}  // namespace vitcli
