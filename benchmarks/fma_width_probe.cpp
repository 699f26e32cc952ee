// fma_width_probe: TSC cycles per instruction of 12 independent chains of
// 256-bit FMAs, 512-bit FMAs and 512-bit vdpbf16ps on one thread; tells
// whether the core executes 512-bit FMAs at full width (same cycles as
// 256-bit) or half rate (twice). Not part of the CMake build:
//   g++ -O2 -march=native benchmarks/fma_width_probe.cpp -o /tmp/fma_width_probe && /tmp/fma_width_probe
#include <immintrin.h>
#include <cstdio>
#include <cstdint>
#include <x86intrin.h>
// cycles per instruction for 24 independent chains, via TSC (not core cycles) — ratio between kinds is what matters.
template <class V, class Op> double run(Op op, V m) {
  V a0=m,a1=m,a2=m,a3=m,a4=m,a5=m,a6=m,a7=m,a8=m,a9=m,a10=m,a11=m;
  const long iters = 10'000'000;
  uint64_t t0 = __rdtsc();
  for (long i = 0; i < iters; ++i) {
    a0=op(a0,m);a1=op(a1,m);a2=op(a2,m);a3=op(a3,m);a4=op(a4,m);a5=op(a5,m);
    a6=op(a6,m);a7=op(a7,m);a8=op(a8,m);a9=op(a9,m);a10=op(a10,m);a11=op(a11,m);
    __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5));
    __asm__ volatile("" : "+v"(a6),"+v"(a7),"+v"(a8),"+v"(a9),"+v"(a10),"+v"(a11));
  }
  uint64_t t1 = __rdtsc();
  volatile float s = ((float*)&a3)[0] + ((float*)&a11)[0]; (void)s;
  return double(t1 - t0) / (iters * 12.0);
}
int main() {
  for (int rep=0; rep<2; ++rep) {
  std::printf("ymm fma  %.3f tsc/instr\n", run<__m256>([](__m256 a, __m256 m){ return _mm256_fmadd_ps(a, m, m); }, _mm256_set1_ps(0.5f)));
  std::printf("zmm fma  %.3f tsc/instr\n", run<__m512>([](__m512 a, __m512 m){ return _mm512_fmadd_ps(a, m, m); }, _mm512_set1_ps(0.5f)));
  std::printf("zmm dpbf16 %.3f tsc/instr\n", run<__m512>([](__m512 a, __m512 m){ return _mm512_dpbf16_ps(a, (__m512bh)m, (__m512bh)m); }, _mm512_set1_ps(0.5f)));
  }
}
