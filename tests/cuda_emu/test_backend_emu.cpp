// The emulated CUDA backend (vit::cuda_emu) end to end: Device::CUDA tensors
// on a machine with no GPU, the public ops run through their wrappers, so the
// op layer's device dispatch, the launchers of cuda/*.cu and the kernels of
// cuda/kernels/ all run (the kernels on CPU threads, tests/cuda_emu/emu.hpp).
// Each op's forward and backward on CUDA tensors is compared with the same op
// on CPU tensors holding the same fresh random values; upstream gradients are
// random too, so every element of every gradient matters. Shapes are small
// and odd (partial warps, rows that are not a multiple of 4).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include <vit/vit.hpp>

#include "backend/emu_backend.hpp"
#include "support/vector_check.hpp"

using namespace vit;

namespace {

constexpr double kAtol = 1e-5, kRtol = 1e-4;

TensorF random_cpu(const Shape& shape, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  return TensorF::normal(shape, 0.0, std, g);
}

/// The same values on the CPU and on the (emulated) device, both leaves that
/// require grad when asked.
struct Pair {
  TensorF cpu, dev;
};
Pair pair(const Shape& shape, uint64_t seed, bool grad = true, double std = 1.0) {
  Pair p{random_cpu(shape, seed, std), {}};
  p.dev = p.cpu.to(Device::CUDA);
  REQUIRE(p.dev.device() == Device::CUDA);
  p.cpu.set_requires_grad(grad);
  p.dev.set_requires_grad(grad);
  return p;
}

void require_close(const TensorF& dev, const TensorF& cpu, const std::string& what,
                   double atol = kAtol, double rtol = kRtol) {
  INFO(what);
  REQUIRE(dev.defined());
  REQUIRE(cpu.defined());
  REQUIRE(dev.device() == Device::CUDA);
  REQUIRE(cpu.device() == Device::CPU);
  REQUIRE(dev.shape() == cpu.shape());
  test::require_close(dev.to_vector(), cpu.to_vector(), atol, rtol, what.c_str());
}

/// f on the inputs' CPU and device copies; the outputs, then (after backward
/// with the same random upstream gradient) every input's gradient, compared.
/// The device run must reach the backend (kernels or GEMMs: a CPU fallback
/// would pass silently here, where device memory is host memory), and with
/// `kernels` launch kernels (an op made of GEMMs launches none: the emulated
/// GEMM is a host loop).
void check_op(const std::string& name, std::vector<Pair> inputs,
              const std::function<TensorF(const std::vector<TensorF>&)>& f, uint64_t seed,
              bool kernels = true, double atol = kAtol, double rtol = kRtol) {
  std::vector<TensorF> cpu_in, dev_in;
  for (const Pair& p : inputs) cpu_in.push_back(p.cpu), dev_in.push_back(p.dev);
  const TensorF out_cpu = f(cpu_in);
  const uint64_t launches0 = cuda::emulated::kernel_launches(),
                 gemms0 = cuda::emulated::gemm_calls();
  const TensorF out_dev = f(dev_in);
  const uint64_t launches1 = cuda::emulated::kernel_launches();
  require_close(out_dev, out_cpu, name + " forward", atol, rtol);
  const TensorF g_cpu = random_cpu(out_cpu.shape(), seed), g_dev = g_cpu.to(Device::CUDA);
  out_cpu.backward(g_cpu);
  out_dev.backward(g_dev);
  const uint64_t launches2 = cuda::emulated::kernel_launches(),
                 gemms = cuda::emulated::gemm_calls() - gemms0;
  INFO(name << ": " << launches1 - launches0 << " kernels forward, " << launches2 - launches1
            << " backward, " << gemms << " GEMMs");
  CHECK(launches2 - launches0 + gemms > 0);
  if (kernels) CHECK(launches2 > launches0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].cpu.requires_grad()) continue;
    require_close(inputs[i].dev.grad(), inputs[i].cpu.grad(),
                  name + " backward, gradient of input " + std::to_string(i), atol, rtol);
  }
}

}  // namespace

TEST_CASE("emulated backend: the CUDA device exists and holds data", "[cuda-emu-backend]") {
  REQUIRE(cuda::available());
  REQUIRE(cuda::device_description().find("emulated") != std::string::npos);
  const TensorF x = random_cpu({3, 5}, 1);
  const TensorF d = x.to(Device::CUDA);
  REQUIRE(d.device() == Device::CUDA);
  REQUIRE(d.to_vector() == x.to_vector());
  REQUIRE(d.clone().to(Device::CPU).to_vector() == x.to_vector());
  const TensorF z = TensorF::zeros({7}, Device::CUDA), o = TensorF::full({7}, 2.5f, Device::CUDA);
  REQUIRE(z.to_vector() == std::vector<float>(7, 0.f));
  REQUIRE(o.to_vector() == std::vector<float>(7, 2.5f));
}

TEST_CASE("emulated backend: fresh device memory is poisoned, and out of memory is an error",
          "[cuda-emu-backend]") {
  const size_t n = 1000;
  for (int round = 0; round < 2; ++round) {  // a fresh block, then a reused one
    void* p = cuda::allocate(n * sizeof(float));
    std::vector<float> v(n, 0.f);
    cuda::copy_to_host(v.data(), p, n * sizeof(float));
    for (float e : v) REQUIRE(std::isnan(e));
    cuda::fill32(p, 0u, n);  // dirty it before it goes back to the cache
    cuda::deallocate(p, n * sizeof(float));
  }
  REQUIRE_THROWS_AS(cuda::allocate(size_t(1) << 50), Error);
  const AllocatorStats s = cuda::allocator_stats();
  REQUIRE(s.bytes_in_use < (size_t(1) << 30));
}

TEST_CASE("emulated backend: copy_rows_on_device copies strided rows", "[cuda-emu-backend]") {
  const std::vector<float> src = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 3 rows of 4
  void* s = cuda::allocate(src.size() * 4);
  void* d = cuda::allocate(6 * 4);                                        // 3 rows of 2
  cuda::copy_to_device(s, src.data(), src.size() * 4);
  cuda::copy_rows_on_device(d, 2 * 4, static_cast<float*>(s) + 1, 4 * 4, 2 * 4, 3);
  std::vector<float> got(6);
  cuda::copy_to_host(got.data(), d, 6 * 4);
  REQUIRE(got == std::vector<float>{1, 2, 5, 6, 9, 10});
  cuda::deallocate(s, src.size() * 4);
  cuda::deallocate(d, 6 * 4);
}

TEST_CASE("emulated backend: linear forward and backward match the CPU", "[cuda-emu-backend]") {
  SECTION("with bias, 3-D input") {
    check_op("linear", {pair({2, 5, 24}, 10), pair({40, 24}, 11, true, 0.2), pair({40}, 12)},
             [](const std::vector<TensorF>& t) { return linear(t[0], t[1], t[2]); }, 13);
  }
  SECTION("without bias, odd sizes") {
    check_op("linear (no bias)", {pair({7, 3}, 20), pair({5, 3}, 21)},
             [](const std::vector<TensorF>& t) { return linear(t[0], t[1]); }, 22,
             /*kernels=*/false);
  }
}

TEST_CASE("emulated backend: layer_norm forward and backward match the CPU", "[cuda-emu-backend]") {
  for (const int64_t C : {7, 32, 200}) {
    INFO("C " << C);
    check_op("layer_norm", {pair({3, 5, C}, 30 + C), pair({C}, 31 + C), pair({C}, 32 + C)},
             [](const std::vector<TensorF>& t) { return layer_norm(t[0], t[1], t[2], 1e-6); },
             33 + C);
  }
}

TEST_CASE("emulated backend: softmax forward and backward match the CPU", "[cuda-emu-backend]") {
  for (const int64_t n : {1, 17, 64}) {
    INFO("n " << n);
    check_op("softmax", {pair({2, 3, n}, 40 + n, true, 3.0)},
             [](const std::vector<TensorF>& t) { return softmax(t[0]); }, 41 + n);
  }
}

TEST_CASE("emulated backend: gelu forward and backward match the CPU", "[cuda-emu-backend]") {
  for (const GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
    INFO("tanh approximation " << (approx == GeluApprox::Tanh));
    check_op("gelu", {pair({3, 37}, 50, true, 2.0)},
             [approx](const std::vector<TensorF>& t) { return gelu(t[0], approx); }, 51);
  }
}

TEST_CASE("emulated backend: a layer_norm, linear, gelu, linear, softmax chain matches the CPU",
          "[cuda-emu-backend]") {
  check_op("chain",
           {pair({2, 9, 16}, 60), pair({16}, 61), pair({16}, 62), pair({48, 16}, 63, true, 0.25),
            pair({48}, 64), pair({10, 48}, 65, true, 0.15), pair({10}, 66)},
           [](const std::vector<TensorF>& t) {
             const TensorF h = layer_norm(t[0], t[1], t[2], 1e-6);
             return softmax(linear(gelu(linear(h, t[3], t[4])), t[5], t[6]));
           },
           67);
}
