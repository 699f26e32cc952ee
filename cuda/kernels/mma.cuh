// Warp-level matrix instructions, one small device function each: the tensor-
// core mma.sync shapes and ldmatrix that cuda/kernels/attention_mma.cuh tiles
// with. Under nvcc each is one inline PTX instruction; under the CPU emulator
// (tests/cuda_emu) each is a twin that implements the fragment layout the PTX
// ISA documents (which lane holds which rows and columns of A, B and C/D) by
// exchanging the lanes' registers with vit_emu::warp_all_gather, so the
// emulated tests check the tiling and indexing of the kernels without a GPU.
// Every lane of the warp must call them (warp-uniform control flow).
//
// Notation of the PTX ISA: lane = 4·g + t, groupID g = lane / 4 (0..7),
// threadID_in_group t = lane % 4. A pair of 16-bit values in one 32-bit
// register holds the lower column (or row) index in its low half.
//
// mma m16n8k16 .bf16, D = A·B + C, A 16×16 row-major, B 16×8 column-major:
//   A regs a[0..3]: a[0] = A[g][2t..2t+1],   a[1] = A[g+8][2t..2t+1],
//                   a[2] = A[g][2t+8..+9],   a[3] = A[g+8][2t+8..+9]
//   B regs b[0..1]: b[0] = B[2t..2t+1][g],   b[1] = B[2t+8..+9][g]
//   C/D c[0..3]:    c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// mma m16n8k8 .tf32 (fp32 bit patterns rounded to tf32, 10-bit mantissa):
//   A regs a[0..3]: a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
//   B regs b[0..1]: b[0] = B[t][g], b[1] = B[t+4][g]
//   C/D: as m16n8k16.
// ldmatrix .m8n8 .x4 .b16: lane l gives the address of row l % 8 of matrix
//   l / 8 (16 contiguous bytes: 8 values); register i of lane 4·g + t receives
//   row g, values 2t..2t+1 of matrix i. With .trans it receives the
//   transpose's: values [2t][g] and [2t+1][g] of matrix i.
#pragma once

#include <cstdint>

#include "device_api.cuh"
#include "vit/core/bf16.hpp"

// The instructions need sm_80 or newer (bf16 mma, cvt.rna.tf32). The project
// builds for sm_90 (VIT_CUDA_ARCHITECTURES); a device pass for an older
// architecture compiles these wrappers to a trap instead of failing to build.
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define VIT_MMA_UNSUPPORTED_ARCH 1
#endif

namespace vit::cuda::kernels::mma {

/// Two bf16 bit patterns in one register, `lo` in the low half.
VIT_DEVICE uint32_t pack_bf16(float lo, float hi) {
  return static_cast<uint32_t>(vit::detail::float_to_bf16_bits(lo)) |
         (static_cast<uint32_t>(vit::detail::float_to_bf16_bits(hi)) << 16);
}

/// fp32 -> tf32 (cvt.rna: round to nearest, ties away from zero, to a 10-bit
/// mantissa), kept as a fp32 bit pattern with the low 13 bits zero.
VIT_DEVICE uint32_t to_tf32(float x) {
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#ifdef VIT_MMA_UNSUPPORTED_ARCH
  __trap();
  return 0u * vit::detail::float_bits(x);
#else
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#endif
#else
  const uint32_t u = vit::detail::float_bits(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf and NaN unchanged
  return (u + 0x1000u) & 0xffffe000u;
#endif
}

#if !(defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED))
namespace emu_detail {
VIT_DEVICE float lo_bf16(uint32_t r) { return vit::detail::bf16_bits_to_float(static_cast<uint16_t>(r & 0xffffu)); }
VIT_DEVICE float hi_bf16(uint32_t r) { return vit::detail::bf16_bits_to_float(static_cast<uint16_t>(r >> 16)); }
VIT_DEVICE float half_bf16(uint32_t r, int k) { return k & 1 ? hi_bf16(r) : lo_bf16(r); }
VIT_DEVICE int lane() { return static_cast<int>(vit_emu::flat_thread() % 32); }
}  // namespace emu_detail
#endif

/// c += A·B, m16n8k16, bf16 operands, fp32 accumulators (layout above).
VIT_DEVICE void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#ifdef VIT_MMA_UNSUPPORTED_ARCH
  __trap();
  (void)c, (void)a, (void)b;
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
#else
  using namespace emu_detail;
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  uint32_t all[32 * 6];
  vit_emu::warp_all_gather<6>(mine, all);
  const int g = lane() / 4, t = lane() % 4;
  // A[r][k]: lane 4·(r%8) + (k%8)/2, register (r >= 8) + 2·(k >= 8), half k % 2.
  auto A = [&](int r, int k) { return half_bf16(all[(4 * (r % 8) + (k % 8) / 2) * 6 + (r >= 8) + 2 * (k >= 8)], k); };
  // B[k][n]: lane 4·n + (k%8)/2, register 4 + (k >= 8), half k % 2.
  auto B = [&](int k, int n) { return half_bf16(all[(4 * n + (k % 8) / 2) * 6 + 4 + (k >= 8)], k); };
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
    float acc = c[i];
    for (int k = 0; k < 16; ++k) acc += A(r, k) * B(k, n);
    c[i] = acc;
  }
#endif
}

/// c += A·B, m16n8k8, tf32 operands (from to_tf32), fp32 accumulators.
VIT_DEVICE void mma_tf32_1688(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#ifdef VIT_MMA_UNSUPPORTED_ARCH
  __trap();
  (void)c, (void)a, (void)b;
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
#else
  using namespace emu_detail;
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  uint32_t all[32 * 6];
  vit_emu::warp_all_gather<6>(mine, all);
  const int g = lane() / 4, t = lane() % 4;
  // A[r][k]: lane 4·(r%8) + k%4, register (r >= 8) + 2·(k >= 4).
  auto A = [&](int r, int k) { return vit::detail::bits_float(all[(4 * (r % 8) + k % 4) * 6 + (r >= 8) + 2 * (k >= 4)]); };
  // B[k][n]: lane 4·n + k%4, register 4 + (k >= 4).
  auto B = [&](int k, int n) { return vit::detail::bits_float(all[(4 * n + k % 4) * 6 + 4 + (k >= 4)]); };
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
    float acc = c[i];
    for (int k = 0; k < 8; ++k) acc += A(r, k) * B(k, n);
    c[i] = acc;
  }
#endif
}

/// ldmatrix.sync.aligned.m8n8.x4.shared.b16: `row` is this lane's row address
/// (shared memory, 16-byte aligned): row l % 8 of matrix l / 8.
VIT_DEVICE void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#ifdef VIT_MMA_UNSUPPORTED_ARCH
  __trap();
  r[0] = r[1] = r[2] = r[3] = 0u, (void)row;
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
#else
  using namespace emu_detail;
  const uint64_t p = reinterpret_cast<uintptr_t>(row);
  const uint32_t mine[2] = {static_cast<uint32_t>(p), static_cast<uint32_t>(p >> 32)};
  uint32_t all[32 * 2];
  vit_emu::warp_all_gather<2>(mine, all);
  const int g = lane() / 4, t = lane() % 4;
  for (int i = 0; i < 4; ++i) {
    const int src = 8 * i + g;  // the lane that gave row g of matrix i
    const auto* rowp = reinterpret_cast<const uint16_t*>(static_cast<uintptr_t>(all[2 * src]) |
                                                         (static_cast<uintptr_t>(all[2 * src + 1]) << 32));
    r[i] = static_cast<uint32_t>(rowp[2 * t]) | (static_cast<uint32_t>(rowp[2 * t + 1]) << 16);
  }
#endif
}

/// ldmatrix .x4 .trans: register i receives [2t][g] (low) and [2t+1][g] (high)
/// of matrix i, whose row j lane 8·i + j addressed.
VIT_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#ifdef VIT_MMA_UNSUPPORTED_ARCH
  __trap();
  r[0] = r[1] = r[2] = r[3] = 0u, (void)row;
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
#else
  using namespace emu_detail;
  const uint64_t p = reinterpret_cast<uintptr_t>(row);
  const uint32_t mine[2] = {static_cast<uint32_t>(p), static_cast<uint32_t>(p >> 32)};
  uint32_t all[32 * 2];
  vit_emu::warp_all_gather<2>(mine, all);
  const int g = lane() / 4, t = lane() % 4;
  auto at = [&](int lane_src, int col) {
    const auto* rowp = reinterpret_cast<const uint16_t*>(static_cast<uintptr_t>(all[2 * lane_src]) |
                                                         (static_cast<uintptr_t>(all[2 * lane_src + 1]) << 32));
    return static_cast<uint32_t>(rowp[col]);
  };
  for (int i = 0; i < 4; ++i) r[i] = at(8 * i + 2 * t, g) | (at(8 * i + 2 * t + 1, g) << 16);
#endif
}

}  // namespace vit::cuda::kernels::mma
