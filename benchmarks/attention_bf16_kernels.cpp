// attention_bf16_kernels: CPU attention on bf16 tensors, the vdpbf16ps kernels
// (ops::attention_forward/backward on bf16, detail/attention_bf16.hpp) against
// the portable path they replace (each head widened to float, the float
// kernels, rounded back: detail::attention_*_widened), at cifar-tiny b128,
// fmnist-tiny b128 and a 224-px ViT-S/16 shape (N = 197, D = 64, b32); ms per
// call (mean of --reps after one warm-up), GFLOP/s of the products (fwd 4·N²·D
// per head, bwd twice that), and the relative L2 difference between the two
// paths' out, saved P and dqkv. Needs a build for an AVX512-BF16 target; not
// part of the CMake build:
//   g++ -std=gnu++20 -O3 -march=native -fopenmp -DNDEBUG -Iinclude -isystem /usr/include/eigen3 benchmarks/attention_bf16_kernels.cpp -o /tmp/attention_bf16_kernels
//   OMP_NUM_THREADS=2 /tmp/attention_bf16_kernels [reps]
#include <vit/vit.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <omp.h>

#if !VIT_HAVE_ATTENTION_BF16
#error "attention_bf16_kernels needs a build for an AVX512-BF16 target (-march=native on such a CPU)"
#endif

using namespace vit;

template <class F>
double ms_per_call(int reps, F f) {
  f();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

template <class A, class B>
double rel_l2(const A& got, const B& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double x = float(got[i]), y = float(ref[i]);
    num += (x - y) * (x - y);
    den += y * y;
  }
  return std::sqrt(num / den);
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  struct Shape { const char* what; int64_t B, N, C, H; } shapes[] = {
      {"cifar-tiny b128", 128, 65, 192, 3}, {"fmnist-tiny b128", 128, 50, 128, 4}, {"vit-s16 b32", 32, 197, 384, 6}};
  std::printf("%d threads, ms per call (mean of %d)\n", omp_get_max_threads(), reps);
  for (const Shape& s : shapes) {
    const int64_t B = s.B, N = s.N, C = s.C, H = s.H;
    uint64_t state = 1;
    auto uniform = [&] {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      return float((state >> 40) & 0xffff) / 65536.f * 2 - 1;
    };
    std::vector<bf16> qkv(B * N * 3 * C), dout(B * N * C);
    for (bf16& x : qkv) x = bf16(uniform());
    for (bf16& x : dout) x = bf16(uniform());
    std::vector<bf16> out(B * N * C), out_w(B * N * C), dqkv(B * N * 3 * C), dqkv_w(B * N * 3 * C);
    std::vector<float> p(B * H * N * N), p_w(B * H * N * N);
    const double fwd = ms_per_call(reps, [&] { ops::attention_forward(qkv.data(), out.data(), p.data(), B, N, C, H); });
    const double bwd = ms_per_call(reps, [&] {
      ops::attention_backward(dout.data(), qkv.data(), p.data(), dqkv.data(), B, N, C, H);
    });
    const double fwd_w = ms_per_call(reps, [&] {
      ops::detail::attention_forward_widened(qkv.data(), out_w.data(), p_w.data(), B, N, C, H, {});
    });
    const double bwd_w = ms_per_call(reps, [&] {
      ops::detail::attention_backward_widened(dout.data(), qkv.data(), p_w.data(), dqkv_w.data(), B, N, C, H, {});
    });
    const double gflop = 4.0 * B * H * N * N * (C / H) * 1e-9;
    std::printf("%-17s fwd %6.2f ms (%5.0f GFLOP/s), widened %6.2f ms | bwd %6.2f ms (%5.0f GFLOP/s), widened %6.2f ms"
                " | rel L2 out %.1e, P %.1e, dqkv %.1e\n",
                s.what, fwd, gflop / fwd * 1e3, fwd_w, bwd, 2 * gflop / bwd * 1e3, bwd_w, rel_l2(out, out_w),
                rel_l2(p, p_w), rel_l2(dqkv, dqkv_w));
  }
}
