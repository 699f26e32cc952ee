// The whole backend on a GPU: tensors move and come back intact, mixed devices
// and out-of-memory are clear errors, and a tiny ViT's logits, loss, every
// parameter gradient and one AdamW step on the GPU match the same model on the
// CPU (same seed, same batch) within float32/TF32-off bounds.
#include <catch2/catch.hpp>
#include <cmath>
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

TEST_CASE("mixed devices and double tensors on the GPU are clear errors", "[cuda]") {
  const TensorF a = TensorF::ones({2, 3}).to(Device::CUDA);
  const TensorF b = TensorF::ones({2, 3});
  REQUIRE_THROWS_WITH(add(a, b), Catch::Contains("different devices"));
  REQUIRE_THROWS_WITH(TensorD::empty({2}, Device::CUDA), Catch::Contains("float32 only"));
  REQUIRE_THROWS_WITH(a.at({0, 0}), Catch::Contains("is on cuda"));
}

TEST_CASE("GPU out of memory names the allocation size", "[cuda]") {
  const int64_t huge = int64_t(1) << 42;  // 16 TiB of floats
  REQUIRE_THROWS_WITH(TensorF::empty({huge}, Device::CUDA),
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
  const TensorF images = TensorF::from_data({B, 3, 16, 16}, test::random_vector(B * 3 * 16 * 16, 3));
  const std::vector<int64_t> labels = {1, 7, 3, 0};

  auto step = [&](nn::VisionTransformer<float>& model, optim::AdamW<float>& opt, Device d) {
    opt.zero_grad();
    TensorF logits = model.forward(images.to(d));
    TensorF loss = cross_entropy(logits, labels, 0.1);
    loss.backward();
    return std::make_pair(logits, loss);
  };
  optim::AdamOptions ao;
  ao.lr = 1e-3;
  optim::AdamW<float> cpu_opt(optim::default_param_groups(cpu_model.named_parameters(), 0.05), ao);
  optim::AdamW<float> gpu_opt(optim::default_param_groups(gpu_model.named_parameters(), 0.05), ao);

  auto [cpu_logits, cpu_loss] = step(cpu_model, cpu_opt, Device::CPU);
  auto [gpu_logits, gpu_loss] = step(gpu_model, gpu_opt, Device::CUDA);
  require_tensors_close(gpu_logits, cpu_logits, 1e-4, 1e-3, "logits");
  REQUIRE(std::abs(gpu_loss.item() - cpu_loss.item()) <= 1e-5 + 1e-4 * std::abs(cpu_loss.item()));

  const auto cpu_params = cpu_model.named_parameters();
  const auto gpu_params = gpu_model.named_parameters();
  REQUIRE(cpu_params.size() == gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    INFO("gradient of " << cpu_params[i].first);
    require_tensors_close(gpu_params[i].second.grad(), cpu_params[i].second.grad(), 2e-5, 2e-3,
                          "grad " + cpu_params[i].first);
  }
  cpu_opt.step();
  gpu_opt.step();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    INFO("parameter after one AdamW step: " << cpu_params[i].first);
    require_tensors_close(gpu_params[i].second, cpu_params[i].second, 1e-5, 1e-4,
                          "param " + cpu_params[i].first);
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
