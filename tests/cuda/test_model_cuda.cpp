// The whole backend on a GPU: tensors move and come back intact, mixed devices
// and out-of-memory are clear errors, and a tiny ViT's logits, loss, every
// parameter gradient and one AdamW step on the GPU match the same model on the
// CPU (same seed, same batch) within float32/TF32-off bounds.
//
// One slice is checked for what it is instead: the key third of each qkv bias.
// Softmax is shift-invariant, and adding a bias b to every key adds q·b to a
// whole row of scores, so the exact gradient of the key bias is zero; both
// devices hold only rounding noise there (~1e-10 against ~1e-1 in the value
// third), and Adam's first step m/(sqrt(v)+eps) turns that noise into a step of
// up to lr of either sign. Comparing GPU with CPU there compares noise. So that
// slice must have gradient ≈ 0 on both devices and an update bounded by lr;
// every other element of every tensor keeps the tight tolerances.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>
#include <vit/vit.hpp>

#include "device_buffer.hpp"

using namespace vit;

namespace {

nn::VitConfig tiny_config() {
  nn::VitConfig c;
  c.image_size = 16, c.in_chans = 3, c.patch_size = 4;  // 16 patches + cls = 17 tokens
  c.dim = 64, c.depth = 2, c.heads = 2, c.mlp_dim = 128, c.num_classes = 10;  // head dim 32
  c.seed = 7;
  return c;
}

void require_tensors_close(const TensorF& gpu, const TensorF& cpu, double atol, double rtol,
                           const std::string& what) {
  REQUIRE(gpu.device() == Device::CUDA);
  REQUIRE(gpu.shape() == cpu.shape());
  test::require_close(gpu.to_vector(), cpu.to_vector(), atol, rtol, what.c_str());
}

/// blocks.i.attn.qkv.bias: rows Q, then K, then V (timm's layout), C each.
bool is_qkv_bias(const std::string& name) {
  const std::string suffix = ".attn.qkv.bias";
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// v split into the key third [C, 2C) and the rest (query then value thirds).
struct QkvSplit {
  std::vector<float> key, rest;
};
QkvSplit split_qkv(const std::vector<float>& v) {
  REQUIRE(v.size() % 3 == 0);
  const size_t C = v.size() / 3;
  QkvSplit s;
  s.key.assign(v.begin() + C, v.begin() + 2 * C);
  s.rest.assign(v.begin(), v.begin() + C);
  s.rest.insert(s.rest.end(), v.begin() + 2 * C, v.end());
  return s;
}

/// Every |v[i]| <= bound (NaN fails), naming the worst element of the key third.
void require_all_within(const std::vector<float>& v, double bound, const std::string& what) {
  size_t worst = v.size();
  for (size_t i = 0; i < v.size(); ++i)
    if (!(std::abs(double(v[i])) <= bound) &&
        (worst == v.size() || !(std::abs(v[i]) <= std::abs(v[worst]))))
      worst = i;
  if (worst != v.size()) {
    std::ostringstream os;
    os << what << ": key element " << worst << " of " << v.size() << " (element "
       << worst + v.size() << " of the bias) is " << v[worst] << ", bound " << bound;
    FAIL(os.str());
  }
}

/// Gradient of a qkv bias: query and value thirds as tight as any gradient; the
/// key third ≈ 0 on both devices, i.e. below 1e-5 of the largest gradient in the
/// rest of the tensor (measured: noise ~1e-10 there, against ~1e-1 in the value
/// third; a wrong key-bias gradient would be of the query third's ~1e-4..1e-3).
void require_qkv_bias_grad(const TensorF& gpu, const TensorF& cpu, double atol, double rtol,
                           const std::string& what) {
  REQUIRE(gpu.device() == Device::CUDA);
  REQUIRE(gpu.shape() == cpu.shape());
  const QkvSplit g = split_qkv(gpu.to_vector()), c = split_qkv(cpu.to_vector());
  test::require_close(g.rest, c.rest, atol, rtol, (what + " (query and value thirds)").c_str());
  double scale = 0;
  for (float x : c.rest) scale = std::max(scale, double(std::abs(x)));
  REQUIRE(scale > 0);
  const double bound = 1e-5 * scale;
  require_all_within(g.key, bound, what + " on the GPU (exact value 0)");
  require_all_within(c.key, bound, what + " on the CPU (exact value 0)");
}

/// A qkv bias after one AdamW step from p0 (the same on both devices): query and
/// value thirds as tight as any parameter; in the key third Adam normalised
/// noise, so only |p - p0| <= lr·(1 + 1e-6) + lr·wd·|p0| (+ float rounding of p0)
/// holds, on each device separately.
void require_qkv_bias_step(const TensorF& gpu, const TensorF& cpu, const std::vector<float>& p0,
                           double lr, double wd, double atol, double rtol,
                           const std::string& what) {
  REQUIRE(gpu.device() == Device::CUDA);
  REQUIRE(gpu.shape() == cpu.shape());
  const QkvSplit g = split_qkv(gpu.to_vector()), c = split_qkv(cpu.to_vector()), k0 = split_qkv(p0);
  test::require_close(g.rest, c.rest, atol, rtol, (what + " (query and value thirds)").c_str());
  double p0_max = 0;
  for (float x : k0.key) p0_max = std::max(p0_max, double(std::abs(x)));
  const double bound = lr * (1 + 1e-6) + (lr * wd + 1e-6) * p0_max;
  for (const auto& [dev, p] :
       {std::pair<const char*, const std::vector<float>*>{"GPU", &g.key}, {"CPU", &c.key}}) {
    std::vector<float> delta(p->size());
    for (size_t i = 0; i < delta.size(); ++i) delta[i] = (*p)[i] - k0.key[i];
    require_all_within(delta, bound, what + ": update on the " + dev);
  }
}

}  // namespace

TEST_CASE("tensors move to the GPU and back unchanged", "[cuda]") {
  const TensorF host = TensorF::from_data({3, 5}, test::random_vector(15, 1));
  const TensorF dev = host.to(Device::CUDA);
  REQUIRE(dev.device() == Device::CUDA);
  REQUIRE(dev.to_vector() == host.to_vector());
  const TensorF back = dev.clone().to(Device::CPU);
  REQUIRE(back.to_vector() == host.to_vector());
  TensorF z = TensorF::full({4}, 2.5f, Device::CUDA);
  REQUIRE(z.to_vector() == std::vector<float>(4, 2.5f));
  z.fill_(0.f);
  REQUIRE(z.to_vector() == std::vector<float>(4, 0.f));
  REQUIRE(TensorF::ones({1}, Device::CUDA).item() == 1.f);
}

TEST_CASE("mixed devices and ops on double tensors on the GPU are clear errors", "[cuda]") {
  const TensorF a = TensorF::ones({2, 3}).to(Device::CUDA);
  const TensorF b = TensorF::ones({2, 3});
  REQUIRE_THROWS_WITH(add(a, b), Catch::Contains("different devices"));
  // A double tensor may live on the GPU (metric sums do) and moves intact, but
  // no kernel takes it: an op says so.
  const TensorD d = TensorD::full({2}, 0.25).to(Device::CUDA);
  REQUIRE(d.to(Device::CPU).to_vector() == std::vector<double>(2, 0.25));
  REQUIRE_THROWS_WITH(gelu(d), Catch::Contains("no CUDA kernel for this element type"));
  REQUIRE_THROWS_WITH(a.at({0, 0}), Catch::Contains("is on cuda"));
}

TEST_CASE("GPU out of memory names the allocation size", "[cuda]") {
  const int64_t huge = int64_t(1) << 42;  // 16 TiB of floats
  REQUIRE_THROWS_WITH(
      TensorF::empty({huge}, Device::CUDA),
      Catch::Contains("CUDA out of memory") && Catch::Contains("17592186044416 bytes"));
  // The allocator is still usable afterwards.
  REQUIRE(TensorF::ones({8}, Device::CUDA).to_vector() == std::vector<float>(8, 1.f));
}

TEST_CASE("a tiny ViT trains the same on the GPU as on the CPU", "[cuda]") {
  cuda::set_allow_tf32(false);
  const nn::VitConfig cfg = tiny_config();
  nn::VisionTransformer<float> cpu_model(cfg), gpu_model(cfg);  // same seed: same init
  gpu_model.to(Device::CUDA);
  REQUIRE(gpu_model.device() == Device::CUDA);

  const int64_t B = 4;
  const TensorF images =
      TensorF::from_data({B, 3, 16, 16}, test::random_vector(B * 3 * 16 * 16, 3));
  const std::vector<int64_t> labels = {1, 7, 3, 0};

  auto step = [&](nn::VisionTransformer<float>& model, optim::AdamW<float>& opt, Device d) {
    opt.zero_grad();
    TensorF logits = model.forward(images.to(d));
    TensorF loss = cross_entropy(logits, labels, 0.1);
    loss.backward();
    return std::make_pair(logits, loss);
  };
  const double lr = 1e-3, wd = 0.05;
  optim::AdamOptions ao;
  ao.lr = lr;
  optim::AdamW<float> cpu_opt(optim::default_param_groups(cpu_model.named_parameters(), wd), ao);
  optim::AdamW<float> gpu_opt(optim::default_param_groups(gpu_model.named_parameters(), wd), ao);

  auto [cpu_logits, cpu_loss] = step(cpu_model, cpu_opt, Device::CPU);
  auto [gpu_logits, gpu_loss] = step(gpu_model, gpu_opt, Device::CUDA);
  require_tensors_close(gpu_logits, cpu_logits, 1e-4, 1e-3, "logits");
  REQUIRE(std::abs(gpu_loss.item() - cpu_loss.item()) <= 1e-5 + 1e-4 * std::abs(cpu_loss.item()));

  const auto cpu_params = cpu_model.named_parameters();
  const auto gpu_params = gpu_model.named_parameters();
  REQUIRE(cpu_params.size() == gpu_params.size());
  int qkv_biases = 0;
  std::vector<std::vector<float>> before(cpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string& name = cpu_params[i].first;
    INFO("gradient of " << name);
    REQUIRE(gpu_params[i].first == name);
    if (is_qkv_bias(name)) {
      ++qkv_biases;
      require_qkv_bias_grad(gpu_params[i].second.grad(), cpu_params[i].second.grad(), 2e-5, 2e-3,
                            "grad " + name);
      before[i] = cpu_params[i].second.to_vector();
      REQUIRE(gpu_params[i].second.to_vector() == before[i]);  // same init on both devices
    } else {
      require_tensors_close(gpu_params[i].second.grad(), cpu_params[i].second.grad(), 2e-5, 2e-3,
                            "grad " + name);
    }
  }
  REQUIRE(qkv_biases == tiny_config().depth);
  cpu_opt.step();
  gpu_opt.step();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const std::string& name = cpu_params[i].first;
    INFO("parameter after one AdamW step: " << name);
    if (is_qkv_bias(name))
      require_qkv_bias_step(gpu_params[i].second, cpu_params[i].second, before[i], lr, wd, 1e-5,
                            1e-4, "param " + name);
    else
      require_tensors_close(gpu_params[i].second, cpu_params[i].second, 1e-5, 1e-4,
                            "param " + name);
  }
}

TEST_CASE("a checkpoint of a GPU model loads into a CPU model bitwise", "[cuda]") {
  const nn::VitConfig cfg = tiny_config();
  nn::VisionTransformer<float> gpu_model(cfg);
  gpu_model.to(Device::CUDA);
  const std::string path = "cuda_model_test.safetensors";
  io::save_checkpoint(path, gpu_model, {});
  const auto ck = io::load_checkpoint<float>(path);
  nn::VisionTransformer<float> cpu_model(cfg);
  cpu_model.load_state_dict(ck.model);
  const auto g = gpu_model.named_parameters();
  const auto c = cpu_model.named_parameters();
  for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i].second.to_vector() == c[i].second.to_vector());
  std::remove(path.c_str());
}
