// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// TFRecord framing (TensorBoard event files) among others. Two ways to the
// same value: the SSE4.2 crc32 instruction, used on x86-64 when the CPU has it
// (checked once at run time, so the library needs no -msse4.2), and a
// slicing-by-8 table elsewhere. Debian ships no library for it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define VIT_CRC32C_SSE42 1
#else
#define VIT_CRC32C_SSE42 0
#endif

namespace vit::io {

namespace detail {

/// tables[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
inline const std::array<std::array<uint32_t, 256>, 8>& crc32c_tables() {
  static const auto tables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b)
      for (size_t k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    return t;
  }();
  return tables;
}

/// Extends the raw (pre- and post-inverted) register `crc` over n bytes, by table.
inline uint32_t crc32c_table(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = crc32c_tables();
  for (; n >= 8; p += 8, n -= 8) {  // memcpy: any alignment; little-endian order as the bytes come
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4), std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) crc = (crc >> 8) ^ t[0][(crc ^ *p) & 0xFF];
  return crc;
}

#if VIT_CRC32C_SSE42
/// The same by the SSE4.2 instruction; call only where crc32c_has_sse42().
__attribute__((target("sse4.2"))) inline uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p,
                                                                size_t n) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

/// Whether this CPU runs crc32c_sse42.
inline bool crc32c_has_sse42() {
#if VIT_CRC32C_SSE42
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
#else
  return false;
#endif
}

}  // namespace detail

/// CRC-32C of n bytes continuing `crc` (the CRC of the bytes before them; 0 to start).
inline uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
#if VIT_CRC32C_SSE42
  if (detail::crc32c_has_sse42()) return ~detail::crc32c_sse42(~crc, p, n);
#endif
  return ~detail::crc32c_table(~crc, p, n);
}

/// CRC-32C of n bytes: crc32c("123456789") == 0xE3069283.
inline uint32_t crc32c(const void* data, size_t n) { return crc32c_extend(0, data, n); }
inline uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }

/// TFRecord's masked CRC (a CRC stored next to the data it covers, so that a
/// CRC of bytes holding a CRC does not come out trivially).
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t unmask_crc32c(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace vit::io
