// gemm_kernels: each packed CPU GEMM kernel called directly at the ViT's
// shapes (cifar-tiny, batch 128), GFLOP/s, best of 5 x 3 calls: AVX2 fp32,
// AVX-512 fp32, AVX512-BF16 into float C and into bf16 C. Needs a build for
// an AVX512-BF16 target; not part of the CMake build:
//   g++ -std=gnu++20 -O3 -march=native -fopenmp -DNDEBUG -Iinclude benchmarks/gemm_kernels.cpp -o /tmp/gemm_kernels
//   OMP_NUM_THREADS=2 /tmp/gemm_kernels
#include "vit/ops/detail/gemm_avx512.hpp"
#include "vit/ops/detail/sgemm_avx2.hpp"
#include <chrono>
#include <cstdio>
#include <vector>
using namespace vit::ops::detail;
using vit::bf16;
template <class F> double time_it(F f) {
  f(); double best = 1e9;
  for (int r = 0; r < 5; ++r) { auto t0 = std::chrono::steady_clock::now(); for (int i=0;i<3;++i) f(); double dt = std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count()/3; best = std::min(best, dt);} return best; }
int main() {
  struct S { bool ta, tb; long m, n, k; const char* what; } shapes[] = {
    {false, true, 8320, 576, 192, "qkv fwd"}, {false, true, 8320, 384, 192, "fc1 fwd"}, {false, true, 8320, 192, 384, "fc2 fwd"},
    {false, false, 8320, 192, 576, "qkv dx"}, {true, false, 576, 192, 8320, "qkv dW"}, {true,false,384,192,8320,"fc1 dW"}};
  for (auto& s : shapes) {
    long ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k, br = s.tb ? s.n : s.k, bc = s.tb ? s.k : s.n;
    std::vector<float> a(ar*ac, 0.5f), b(br*bc, 0.25f), c(s.m*s.n);
    std::vector<bf16> a16(a.size(), bf16(0.5f)), b16(b.size(), bf16(0.25f)), c16(c.size());
    double fl = 2.0*s.m*s.n*s.k*1e-9;
    double t2 = time_it([&]{ sgemm_avx2(s.ta,s.tb,s.m,s.n,s.k,1.f,a.data(),ac,b.data(),bc,0.f,c.data(),s.n); });
    double t5 = time_it([&]{ sgemm_avx512(s.ta,s.tb,s.m,s.n,s.k,1.f,a.data(),ac,b.data(),bc,0.f,c.data(),s.n); });
    double tb = time_it([&]{ sbgemm_avx512(s.ta,s.tb,s.m,s.n,s.k,1.f,a16.data(),ac,b16.data(),bc,0.f,c.data(),s.n); });
    double tbb = sbgemm_writes_bf16(s.ta,s.tb,s.m,s.n,s.k) ? time_it([&]{ sbgemm_avx512_to_bf16(s.ta,s.tb,s.m,s.n,s.k,1.f,a16.data(),ac,b16.data(),bc,0.f,c16.data(),s.n); }) : 0;
    std::printf("%-8s %5ld x %4ld x %5ld  avx2 %6.1f  avx512 %6.1f  bf16->f32 %6.1f  bf16->bf16 %6.1f GFLOP/s\n", s.what, s.m, s.n, s.k, fl/t2, fl/t5, fl/tb, tbb ? fl/tbb : 0.0);
  }
}
