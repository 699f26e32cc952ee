// vit::bf16 against the definition of round-to-nearest-even on the bits
// (what torch.bfloat16 and __float2bfloat16_rn do), and Tensor<bf16> basics.
#include "support/check.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "vit/ops/detail/bf16_buffers.hpp"

using namespace vit;

namespace {
float from_bits(uint32_t u) { return detail::bits_float(u); }
uint32_t bits_of(float f) { return detail::float_bits(f); }

// The reference: the nearest bf16 by exhaustive comparison with both neighbours.
uint16_t nearest_even(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t lo = static_cast<uint16_t>(u >> 16), hi = static_cast<uint16_t>(lo + 1);
  // Past the largest finite bf16 the next value up is ±2^128 for rounding (IEEE
  // overflow: beyond max + half an ulp the result is infinity).
  auto value = [](uint16_t b) {
    const float v = from_bits(uint32_t(b) << 16);
    return std::isinf(v) ? std::copysign(std::ldexp(1.0, 128), double(v)) : double(v);
  };
  const double dl = std::abs(double(f) - value(lo));
  const double dh = std::abs(double(f) - value(hi));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}
}  // namespace

TEST_CASE("bf16 rounds to nearest even", "[core][bf16]") {
  CHECK(float(bf16(1.0f)) == 1.0f);
  CHECK(bf16(1.0f).bits == 0x3f80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
  CHECK(float(bf16(1.0f + 1.0f / 256)) == 1.0f);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
  CHECK(float(bf16(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
  // Just above halfway goes up.
  CHECK(float(bf16(std::nextafter(1.0f + 1.0f / 256, 2.0f))) == 1.0f + 1.0f / 128);
  CHECK(float(bf16(-2.5f)) == -2.5f);
  uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    const float f = from_bits(state);
    if (std::isnan(f) || std::isinf(f)) continue;
    const uint16_t want = nearest_even(f);
    if (bf16(f).bits != want) FAIL("bits " << std::hex << state << ": got " << bf16(f).bits << " want " << want);
  }
}

TEST_CASE("bf16 keeps infinities, NaN and signed zero, and overflow rounds to infinity", "[core][bf16]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(float(bf16(inf)) == inf);
  CHECK(float(bf16(-inf)) == -inf);
  CHECK(std::isnan(float(bf16(std::nanf("")))));
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  CHECK(std::isnan(float(bf16(from_bits(0x7f800001u)))));
  CHECK(std::isnan(float(bf16(from_bits(0xff800001u)))));
  CHECK(std::signbit(float(bf16(-0.0f))));
  CHECK(float(bf16(std::numeric_limits<float>::max())) == inf);
  CHECK(std::isfinite(float(bf16(3.0e38f))));
  // Every bf16 converts to float and back unchanged.
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const bf16 v = bf16::from_bits(static_cast<uint16_t>(b));
    if (std::isnan(float(v))) continue;
    if (bf16(float(v)).bits != b) FAIL("bits " << b << " do not round-trip");
  }
}

TEST_CASE("Tensor<bf16> converts, fills and prints", "[core][bf16]") {
  TensorF f = TensorF::from_data({2, 3}, {1.f, -2.f, 0.1f, 1e-3f, 3.14159f, 65504.f});
  TensorBF16 b = f.to_dtype<bf16>();
  CHECK(b.shape() == Shape{2, 3});
  TensorF back = b.to_dtype<float>();
  for (int64_t i = 0; i < f.numel(); ++i) {
    const double rel = std::abs(double(back.data()[i]) - f.data()[i]) / std::abs(f.data()[i]);
    CHECK(rel <= kBf16Epsilon);
    CHECK(back.data()[i] == float(bf16(f.data()[i])));
  }
  TensorBF16 z = TensorBF16::zeros({5});
  for (int64_t i = 0; i < 5; ++i) CHECK(float(z.data()[i]) == 0.f);
  TensorBF16 o = TensorBF16::full({3}, bf16(0.5f));
  CHECK(float(o.data()[2]) == 0.5f);
  CHECK(to_string(b).find("bfloat16") != std::string::npos);
}

TEST_CASE("safetensors stores Tensor<bf16> as BF16 and reads it back bit for bit", "[core][bf16][io]") {
  TensorF f = TensorF::from_data({2, 3}, {1.f, -2.5f, 0.1f, 1e-3f, 3.14159f, -65504.f});
  TensorBF16 b = f.to_dtype<bf16>();
  io::SafetensorsWriter w;
  w.add("w", b);
  w.add("f", f);
  const auto file = io::SafetensorsFile::parse(w.serialize(), "memory");
  CHECK(file.info("w").dtype == io::Dtype::BF16);
  const TensorBF16 back = file.tensor<bf16>("w");
  for (int64_t i = 0; i < b.numel(); ++i) CHECK(back.data()[i].bits == b.data()[i].bits);
  // BF16 read as float widens exactly; F32 read as bf16 rounds to nearest even.
  const TensorF wide = file.tensor<float>("w");
  const TensorBF16 narrow = file.tensor<bf16>("f");
  for (int64_t i = 0; i < b.numel(); ++i) {
    CHECK(wide.data()[i] == float(b.data()[i]));
    CHECK(narrow.data()[i].bits == b.data()[i].bits);
  }
}

TEST_CASE("vectorised widen_n and narrow_n match bf16(float) bit for bit", "[core][bf16]") {
  // Every special class: ties both ways, the carry into the exponent, overflow
  // to inf, infinities, NaNs of both signs and payloads, denormals, zeros;
  // then random bit patterns. Lengths cover the vector body and the tail.
  std::vector<uint32_t> bits = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3fffffffu, 0x7f7fffffu,
                                0xff7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                0x7f800001u, 0x7fbfffffu, 0x00000001u, 0x807fffffu, 0x00008000u,
                                0x00018000u, 0x00000000u, 0x80000000u};
  std::mt19937 rng(3);
  while (bits.size() < 1000) bits.push_back(static_cast<uint32_t>(rng()));
  std::vector<float> f(bits.size());
  std::memcpy(f.data(), bits.data(), bits.size() * sizeof(float));
  for (const int64_t n : {int64_t(1), int64_t(7), int64_t(15), int64_t(16), int64_t(17), int64_t(1000)}) {
    std::vector<vit::bf16> got(static_cast<size_t>(n));
    vit::ops::detail::narrow_n(f.data(), got.data(), n);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += got[i].bits != vit::bf16(f[i]).bits;
    CHECK(differ == 0);
    std::vector<float> back(static_cast<size_t>(n));
    vit::ops::detail::widen_n(got.data(), back.data(), n);
    differ = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float want = float(got[i]);
      differ += std::memcmp(&back[i], &want, sizeof(float)) != 0;
    }
    CHECK(differ == 0);
  }
}
