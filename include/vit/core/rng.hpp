// Generator: a counter-based random source. Element i of a fill draws from
// hash(seed, offset + i), so results do not depend on the thread count, a fill
// can run in parallel, and the whole state is two integers (seed, offset) that
// a checkpoint can store and a CUDA kernel can reproduce.
#pragma once

#include <cmath>
#include <cstdint>

namespace vit {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  /// Restores a state saved from seed()/offset().
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed, offset_ = offset; }

  /// Reserves n counters and returns the first; draws are then bits(first + i).
  uint64_t reserve(uint64_t n) {
    const uint64_t first = offset_;
    offset_ += n;
    return first;
  }

  /// 64 random bits for counter c (splitmix64 finaliser over seed and counter).
  uint64_t bits(uint64_t c) const { return stream_bits(c, 0); }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform(uint64_t c) const { return static_cast<double>(bits(c) >> 11) * 0x1.0p-53; }

  /// Standard normal from counter c (Box-Muller). Its two uniforms come from
  /// separate streams of the same counter, so a normal at counter c never
  /// shares bits with the uniform or bits at any counter.
  double normal(uint64_t c) const {
    const double u1 = (static_cast<double>(stream_bits(c, 1) >> 11) + 1.0) * 0x1.0p-53;  // (0,1]
    const double u2 = static_cast<double>(stream_bits(c, 2) >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  uint64_t next_u64() { return bits(reserve(1)); }
  double next_uniform() { return uniform(reserve(1)); }

 private:
  // The same finaliser as bits() over (seed, stream, counter): stream 0 is bits().
  uint64_t stream_bits(uint64_t c, uint64_t stream) const {
    uint64_t z = seed_ * 0x9E3779B97F4A7C15ull + (c + 1) * 0xD1B54A32D192ED03ull +
                 stream * 0x8CB92BA72F3D8DD7ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace vit
