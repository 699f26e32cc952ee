// gelu_kernels: the float GELU (ops::gelu_forward/backward<float>, erf and
// tanh) on the fc1 activations of cifar-tiny b128 (128·65·384 = 3.2M values);
// ms per call, best of 15, and a checksum of the outputs (equal checksums:
// the same results, e.g. before and after a change to gelu.hpp: compile it
// once against each library's include/). Not part of the CMake build:
//   g++ -std=gnu++20 -O3 -march=native -fopenmp -DNDEBUG -Iinclude -isystem /usr/include/eigen3 benchmarks/gelu_kernels.cpp -o /tmp/gelu_kernels
//   OMP_NUM_THREADS=2 /tmp/gelu_kernels
#include <vit/vit.hpp>
#include <chrono>
#include <cstdio>
int main() {
  const int64_t n = 128 * 65 * 384;
  std::vector<float> x(n), g(n), y(n), d(n);
  for (int64_t i = 0; i < n; ++i) { x[i] = std::sin(i * 0.001f) * 3; g[i] = std::cos(i * 0.002f); }
  double best_f = 1e9, best_b = 1e9, cs = 0;
  for (auto approx : {vit::GeluApprox::None, vit::GeluApprox::Tanh}) {
  best_f = best_b = 1e9;
  for (int r = 0; r < 15; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    vit::ops::gelu_forward(x.data(), y.data(), n, approx);
    auto t1 = std::chrono::steady_clock::now();
    vit::ops::gelu_backward(g.data(), x.data(), d.data(), n, approx);
    auto t2 = std::chrono::steady_clock::now();
    best_f = std::min(best_f, std::chrono::duration<double, std::milli>(t1 - t0).count());
    best_b = std::min(best_b, std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  for (int64_t i = 0; i < n; ++i) cs += y[i] + d[i];
  printf("%s forward %.3f ms backward %.3f ms\n", approx == vit::GeluApprox::None ? "erf " : "tanh", best_f, best_b);
  }
  printf("checksum %.9g\n", cs);
}
