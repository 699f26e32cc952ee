// `vit predict`: top-k classes with probabilities for image files, and the
// attention-rollout heat map over an image on request.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <thread>

#include "commands.hpp"
#include "common.hpp"

namespace vitcli {

void add_predict_options(CLI::App& cmd, PredictOptions& o) {
  cmd.add_option("--weights", o.weights, "Weights (.safetensors)")->required()->check(CLI::ExistingFile);
  cmd.add_option("images", o.images, "Image files (JPEG, PNG, BMP)")->required();
  cmd.add_option("--model", o.model, "Architecture preset, for weights without a config (e.g. from timm)");
  cmd.add_option("--top", o.top, "How many classes to list")->check(positive_number())->capture_default_str();
  cmd.add_option("--attention-map", o.attention_map,
                 "Write the attention-rollout heat map over the image to this PNG "
                 "(with several images: NAME-<i>.png)");
  cmd.add_option("--threads", o.threads, "CPU threads (default: all cores)")->check(positive_number());
  cmd.add_option("--device", o.device, "Device")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
}

namespace {
// Matplotlib-like 'jet' colour for t in [0,1].
std::array<double, 3> jet(double t) {
  auto ramp = [](double x) { return std::clamp(1.5 - std::abs(x), 0.0, 1.0); };
  return {ramp(4 * t - 3), ramp(4 * t - 2), ramp(4 * t - 1)};
}

std::string indexed_path(const std::string& path, size_t i, size_t n) {
  if (n == 1) return path;
  const auto dot = path.rfind('.');
  const auto slash = path.rfind('/');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  const std::string stem = has_ext ? path.substr(0, dot) : path, ext = has_ext ? path.substr(dot) : ".png";
  return stem + "-" + std::to_string(i) + ext;
}

// The image at display size with the rollout map (grid×grid) blended over it in jet colours.
vit::data::Image heat_map(const vit::data::Image& rgb, const std::vector<double>& map, int64_t grid) {
  const int64_t S = std::max<int64_t>(rgb.height, 224);
  const vit::data::Image base = vit::data::resize(rgb, S, S);
  vit::data::Image out(3, S, S);
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) {
      // Bilinear upsampling of the map with half-pixel centres.
      const double gy = std::clamp((y + 0.5) * grid / S - 0.5, 0.0, grid - 1.0);
      const double gx = std::clamp((x + 0.5) * grid / S - 0.5, 0.0, grid - 1.0);
      const int64_t y0 = static_cast<int64_t>(gy), x0 = static_cast<int64_t>(gx);
      const int64_t y1 = std::min(y0 + 1, grid - 1), x1 = std::min(x0 + 1, grid - 1);
      const double fy = gy - y0, fx = gx - x0;
      const double v = (1 - fy) * ((1 - fx) * map[y0 * grid + x0] + fx * map[y0 * grid + x1]) +
                       fy * ((1 - fx) * map[y1 * grid + x0] + fx * map[y1 * grid + x1]);
      const auto c = jet(v);
      for (int k = 0; k < 3; ++k) {
        const double px = base.at(base.channels == 3 ? k : 0, y, x);
        out.at(k, y, x) = static_cast<uint8_t>(std::lround(0.5 * px + 0.5 * 255 * c[k]));
      }
    }
  return out;
}
}  // namespace

int run_predict(const PredictOptions& o) {
  vit::set_num_threads(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()));
  const vit::Device device = checked_device(o.device);  // before anything is read
  const auto ck = vit::io::load_checkpoint<float>(o.weights);
  auto model = vit::io::model_from_checkpoint(ck, o.model);
  model->to(device);
  model->eval();
  const auto& cfg = model->config;
  const auto norm = normalization_from(ck, cfg.in_chans);
  std::vector<std::string> names = ck.class_names;
  if (names.empty())
    for (int64_t k = 0; k < cfg.num_classes; ++k) names.push_back("class_" + std::to_string(k));
  for (size_t i = 0; i < o.images.size(); ++i) {
    const std::string& path = o.images[i];
    const vit::data::Image img = vit::data::read_image(path, cfg.in_chans);
    const vit::data::Image in = vit::data::resize(img, cfg.image_size, cfg.image_size);
    vit::TensorF x = vit::TensorF::empty({1, cfg.in_chans, cfg.image_size, cfg.image_size});
    vit::data::to_normalized_float(in, norm, x.data());
    x = x.to(device);
    vit::TensorF logits;
    vit::nn::AttentionRollout<float> roll;
    if (!o.attention_map.empty()) {
      roll = vit::nn::attention_rollout(*model, x);
      logits = roll.logits;
    } else {
      vit::NoGradGuard ng;
      logits = model->forward(x);
    }
    logits = logits.to(vit::Device::CPU);
    const int64_t K = cfg.num_classes;
    std::vector<double> p(K);
    const double mx = *std::max_element(logits.data(), logits.data() + K);
    double z = 0;
    for (int64_t k = 0; k < K; ++k) z += p[k] = std::exp(double(logits.data()[k]) - mx);
    std::vector<int64_t> order(K);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    std::printf("%s\n", path.c_str());
    for (int64_t r = 0; r < std::min(o.top, K); ++r)
      std::printf("  %lld. %-20s %7.3f%%\n", static_cast<long long>(r + 1), names[order[r]].c_str(),
                  100 * p[order[r]] / z);
    if (!o.attention_map.empty()) {
      const std::string out = indexed_path(o.attention_map, i, o.images.size());
      vit::data::write_png(out, heat_map(in, roll.map, roll.grid));
      std::printf("  attention map: %s\n", out.c_str());
    }
  }
  return 0;
}

}  // namespace vitcli
