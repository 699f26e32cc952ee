// vit::Generator's counter-based draw on the device, for every kernel that
// draws a mask (dropout, drop-path, attention dropout): the same bits as the
// CPU, so a GPU run draws the CPU's masks. Device functions and a host
// helper only, no kernels: any number of .cu files may include it.
#pragma once

#include <cmath>
#include <cstdint>

#include "device_api.cuh"

namespace vit::cuda::kernels {

/// vit::Generator(seed).bits(c): the splitmix64 finaliser over (seed, stream 0, c).
/// Keep in step with include/vit/core/rng.hpp (the emulated tests compare them).
VIT_DEVICE uint64_t generator_bits(uint64_t seed, uint64_t c) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + (c + 1) * 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Host: the smallest 53-bit value u with u·2⁻⁵³ >= p, so that `uniform >= p`
/// is `(bits >> 11) >= threshold` exactly, in integers. p <= 0 keeps all (0);
/// p >= 1, and NaN (every comparison with NaN is false), keep none (2⁵³,
/// above every 53-bit value).
inline uint64_t keep_threshold(double p) {
  constexpr uint64_t kNone = uint64_t(1) << 53;
  if (std::isnan(p)) return kNone;
  if (p <= 0.0) return 0;
  const double t = std::ceil(p * 0x1.0p53);  // p·2⁵³ is exact: a power-of-two scale
  return t >= 0x1.0p53 ? kNone : static_cast<uint64_t>(t);
}

}  // namespace vit::cuda::kernels
