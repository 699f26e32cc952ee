// vit::bf16: bfloat16 storage (1 sign, 8 exponent, 7 mantissa bits: the top
// half of a float32), as torch.bfloat16 and __nv_bfloat16.
//
// It is a storage type. Arithmetic converts to float (implicitly), so
// `float(a) * float(b)` is the only math there is and a sum of bf16 values
// accumulates in float unless code rounds on purpose; conversion from float
// rounds to nearest, ties to even (as torch's .to(torch.bfloat16) and CUDA's
// __float2bfloat16_rn), keeps infinities, and turns every NaN into a quiet NaN
// with its sign (never into an infinity).
//
// The same header is compiled by g++ (CPU code, the CUDA emulator) and by
// nvcc (device kernels), so it includes no CUDA header: on sm_80+ the device
// conversion is the one cvt instruction, elsewhere the bit formula below.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define VIT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VIT_HOST_DEVICE inline
#endif

namespace vit {

namespace detail {

VIT_HOST_DEVICE uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
VIT_HOST_DEVICE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

/// float -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN.
VIT_HOST_DEVICE uint16_t float_to_bf16_bits(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(VIT_CUDA_EMULATED)
  uint16_t r;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
  return r;
#else
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);  // ties go to the even neighbour
  return static_cast<uint16_t>((u + rounding) >> 16);
#endif
}

VIT_HOST_DEVICE float bf16_bits_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

}  // namespace detail

/// A bfloat16 value. Construct from any arithmetic value (rounded once, through
/// float for double: torch's double -> bf16 does the same two steps only when
/// the double is already a float, so values meant to round-trip should be
/// floats); reads as float.
struct bf16 {
  uint16_t bits = 0;

  bf16() = default;
  template <class U, class = std::enable_if_t<std::is_arithmetic_v<U>>>
  VIT_HOST_DEVICE explicit bf16(U v) : bits(detail::float_to_bf16_bits(static_cast<float>(v))) {}

  /// The value as float: exact (every bf16 is a float).
  VIT_HOST_DEVICE operator float() const { return detail::bf16_bits_to_float(bits); }

  /// From raw bits (safetensors' BF16, a kernel's packed pair).
  VIT_HOST_DEVICE static bf16 from_bits(uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }

  // Compound assignment computes in float and rounds once.
  VIT_HOST_DEVICE bf16& operator+=(float v) { return *this = bf16(float(*this) + v); }
  VIT_HOST_DEVICE bf16& operator-=(float v) { return *this = bf16(float(*this) - v); }
  VIT_HOST_DEVICE bf16& operator*=(float v) { return *this = bf16(float(*this) * v); }
  VIT_HOST_DEVICE bf16& operator/=(float v) { return *this = bf16(float(*this) / v); }
  VIT_HOST_DEVICE bf16 operator-() const { return from_bits(static_cast<uint16_t>(bits ^ 0x8000u)); }
};
static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16>);

/// True for element types a Tensor computes with: float, double and bf16.
template <class T>
inline constexpr bool is_bf16_v = std::is_same_v<std::remove_cv_t<T>, bf16>;

/// The type a kernel computes in for storage type T: float for bf16, else T.
template <class T>
using compute_t = std::conditional_t<is_bf16_v<T>, float, T>;

/// Unit roundoff of bf16 (2^-8): the relative error of one rounding.
inline constexpr double kBf16Epsilon = 1.0 / 256.0;

}  // namespace vit
