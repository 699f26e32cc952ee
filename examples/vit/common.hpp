// Shared pieces of the `vit` command line: the device by name, evaluation,
// the normalisation a checkpoint carries, and turning a vit::Error into the
// one line a user reads. Everything here is built on the public <vit/vit.hpp>;
// data sets by name are in datasets.hpp.
#pragma once

#include <vit/dist/communicator.hpp>
#include <vit/nn/mixed_precision.hpp>
#include <vit/vit.hpp>

#include <cmath>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace vitcli {

/// The error text without the " [file:line]" source locations the library
/// appends for developers; users get one clean line.
inline std::string user_message(const std::exception& e) {
  static const std::regex location(R"( \[[^\]\s]+:[0-9]+\])");
  return std::regex_replace(e.what(), location, "");
}

/// The device --device names, refused with one line when this build or machine lacks it.
inline vit::Device checked_device(const std::string& name) {
  if (name != "cuda") return vit::Device::CPU;
#if VIT_WITH_CUDA
  VIT_CHECK(vit::cuda::available(), "--device cuda: ", vit::cuda::device_description());
#else
  VIT_CHECK(false, "--device cuda: this build of vit has no CUDA backend (it is built when CMake "
            "finds nvcc)");
#endif
  return vit::Device::CUDA;
}

/// --precision tf32 on the GPU: GEMMs and attention may use TF32 tensor cores.
inline void allow_tf32() {
#if VIT_WITH_CUDA
  vit::cuda::set_allow_tf32(true);
#endif
}

/// --precision bf16 on a CPU whose build has no AVX512-BF16 kernels: said once
/// (the run works, through float32 math, but is not faster than fp32).
inline void say_cpu_bf16_not_faster(const char* command) {
  if (!vit::ops::cpu_bf16_native)
    std::fprintf(stderr,
                 "%s: --precision bf16: this build's CPU kernels (%s) have no AVX512-BF16, so bf16 "
                 "computes through float32 here and is not faster than fp32\n",
                 command, vit::ops::cpu_gemm_kernels);
}

/// --precision of eval and predict: bf16 runs the model's bf16 twin (null
/// otherwise). speak: this process prints notes (rank 0).
inline std::unique_ptr<vit::nn::MixedPrecision> inference_precision(
    const std::string& precision, vit::nn::VisionTransformer<float>& model, vit::Device device,
    const char* command, bool speak) {
  if (precision == "tf32" && device == vit::Device::CUDA) allow_tf32();
  if (precision != "bf16") return nullptr;
  if (device == vit::Device::CPU && speak) say_cpu_bf16_not_faster(command);
  return std::make_unique<vit::nn::MixedPrecision>(model);
}

/// Test-time loader config: no augmentation, file order, every image once.
inline vit::data::LoaderConfig eval_loader_config(const vit::nn::VitConfig& model,
                                                  const vit::data::Normalization& norm,
                                                  int64_t batch) {
  vit::data::LoaderConfig c;
  c.batch_size = batch, c.shuffle = false, c.drop_last = false, c.augment = false;
  c.normalization = norm;
  c.image_size = model.image_size, c.channels = model.in_chans;
  return c;
}

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t count = 0;
  /// K×K image counts, row-major: row = true class, column = predicted (the
  /// top-1 class; on a tie with the true class, the true one, as top-1 counts).
  std::vector<int64_t> confusion;
};

/// Accuracy, mean cross-entropy (no smoothing) and the confusion matrix of
/// `model` over `data`; when `logits` is given it receives all logits in file
/// order (n × K).
/// In a job of several ranks (`comm`), rank r evaluates the r-th of N
/// contiguous runs of batches, and the per-image results are put together
/// before they are summed in file order: every rank gets exactly the
/// one-process figures (the batches are the same ones, so are their logits).
inline EvalResult evaluate(vit::nn::VisionTransformer<float>& model, const vit::data::Dataset& data,
                           const vit::data::Normalization& norm, int64_t batch,
                           std::vector<float>* logits = nullptr,
                           vit::dist::Communicator* comm = nullptr,
                           vit::nn::MixedPrecision* mixed = nullptr) {
  const bool was_training = model.is_training();
  model.eval();
  vit::NoGradGuard no_grad;
  vit::data::Loader loader(data, eval_loader_config(model.config, norm, batch));
  const int64_t K = model.config.num_classes;
  VIT_CHECK(data.num_classes() <= K, "evaluation: the data set has ", data.num_classes(),
            " classes, the model ", K);
  const int64_t n = data.size(), batches = loader.batches_per_epoch();
  const int ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const int64_t first = batches * rank / ranks, last = batches * (rank + 1) / ranks;
  // Per image: loss, top-1 and top-5 hits (zero where another rank fills in).
  std::vector<double> loss(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> hits(static_cast<size_t>(2 * n), 0);
  std::vector<float> all_logits;
  if (logits) all_logits.assign(static_cast<size_t>(n * K), 0.f);
  std::vector<int64_t> confusion(static_cast<size_t>(K * K), 0);
  const vit::Device device = model.device();
  if (first < last) loader.start(0, first);
  for (int64_t b = first; b < last; ++b) {
    const vit::data::Batch& batch_data = loader.next();
    const vit::TensorF images = batch_data.images.to(device);
    // bf16: the model's bf16 twin, float32 logits.
    const vit::TensorF out = (mixed ? mixed->forward(images) : model.forward(images)).to(vit::Device::CPU);
    for (int64_t i = 0; i < batch_data.size(); ++i) {
      const int64_t at = b * batch + i;  // the image's place in file order
      const float* row = out.data() + i * K;
      const int64_t y = batch_data.labels[i];
      double mx = row[0];
      for (int64_t k = 1; k < K; ++k) mx = std::max<double>(mx, row[k]);
      double z = 0;
      for (int64_t k = 0; k < K; ++k) z += std::exp(double(row[k]) - mx);
      loss[at] = std::log(z) + mx - row[y];
      int64_t higher = 0, best = 0;  // classes ranked strictly above the true one (ties favour the label)
      for (int64_t k = 0; k < K; ++k) {
        higher += row[k] > row[y];
        if (row[k] > row[best]) best = k;  // the first of the largest, as argmax
      }
      hits[2 * at] = higher == 0;
      ++confusion[y * K + (higher == 0 ? y : best)];
      hits[2 * at + 1] = higher < 5;
      if (logits) std::copy(row, row + K, all_logits.begin() + at * K);
    }
  }
  // x + 0 = x: summing over ranks puts every image's own values together, bit for bit.
  if (ranks > 1) {
    comm->allreduce_sum(loss.data(), n, vit::dist::DType::Float64, vit::Device::CPU);
    comm->allreduce_sum(hits.data(), 2 * n, vit::dist::DType::Int64, vit::Device::CPU);
    if (logits)
      comm->allreduce_sum(all_logits.data(), n * K, vit::dist::DType::Float32, vit::Device::CPU);
    // Counts: each image is counted by one rank, so the sum is exact.
    comm->allreduce_sum(confusion.data(), K * K, vit::dist::DType::Int64, vit::Device::CPU);
  }
  EvalResult r;
  double loss_sum = 0;
  int64_t correct1 = 0, correct5 = 0;
  for (int64_t i = 0; i < n; ++i)
    loss_sum += loss[i], correct1 += hits[2 * i], correct5 += hits[2 * i + 1];
  r.count = n;
  r.loss = loss_sum / static_cast<double>(n);
  r.top1 = static_cast<double>(correct1) / n;
  r.top5 = static_cast<double>(correct5) / n;
  r.confusion = std::move(confusion);
  if (logits) *logits = std::move(all_logits);
  model.train(was_training);
  return r;
}

inline std::string normalization_json(const vit::data::Normalization& n) {
  return nlohmann::json{{"mean", n.mean}, {"std", n.std}}.dump();
}

}  // namespace vitcli
