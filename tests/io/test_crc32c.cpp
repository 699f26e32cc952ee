// CRC-32C against the published check value and RFC 3720's test vectors, the
// table and the SSE4.2 paths against each other on every length and
// alignment, extending a CRC piece by piece, and TFRecord's mask.
#include <cstring>
#include <string>
#include <vector>
#include <vit/io/crc32c.hpp>

#include "support/check.hpp"

using namespace vit::io;

namespace {

uint32_t by_table(const void* p, size_t n) {
  return ~vit::io::detail::crc32c_table(~0u, static_cast<const uint8_t*>(p), n);
}

/// The CRC bit by bit, as the polynomial defines it: the reference for both paths.
uint32_t bitwise(const uint8_t* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0u);
  }
  return ~c;
}

}  // namespace

TEST_CASE("crc32c: the check value and RFC 3720's vectors", "[io][crc32c]") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  std::vector<uint8_t> v(32, 0);
  CHECK(crc32c(v.data(), v.size()) == 0x8A9136AAu);
  std::fill(v.begin(), v.end(), 0xFF);
  CHECK(crc32c(v.data(), v.size()) == 0x62A8AB43u);
  for (size_t i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(i);
  CHECK(crc32c(v.data(), v.size()) == 0x46DD794Eu);
  for (size_t i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(31 - i);
  CHECK(crc32c(v.data(), v.size()) == 0x113FDB5Cu);
  CHECK(by_table("123456789", 9) == 0xE3069283u);
}

TEST_CASE("crc32c: table and SSE4.2 agree with the bitwise CRC at every length and offset",
          "[io][crc32c]") {
  std::vector<uint8_t> buf(300);
  uint32_t x = 12345;
  for (auto& b : buf) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 16);
  const bool sse = vit::io::detail::crc32c_has_sse42();
  for (size_t off = 0; off < 8; ++off)
    for (size_t n = 0; n + off <= 67; ++n) {
      const uint8_t* p = buf.data() + off;  // unaligned starts, odd lengths
      const uint32_t want = bitwise(p, n);
      INFO("offset " << off << " length " << n);
      REQUIRE(by_table(p, n) == want);
#if VIT_CRC32C_SSE42
      if (sse) REQUIRE(~vit::io::detail::crc32c_sse42(~0u, p, n) == want);
#endif
      REQUIRE(crc32c(p, n) == want);
    }
  CHECK(crc32c(buf.data() + 3, 297) == bitwise(buf.data() + 3, 297));
  if (!sse) WARN("this CPU has no SSE4.2: only the table path was checked");
}

TEST_CASE("crc32c: extending piece by piece is the CRC of the whole", "[io][crc32c]") {
  const std::string s = "The quick brown fox jumps over the lazy dog, twice over.";
  const uint32_t whole = crc32c(s);
  for (size_t cut = 0; cut <= s.size(); ++cut)
    REQUIRE(crc32c_extend(crc32c(s.data(), cut), s.data() + cut, s.size() - cut) == whole);
}

TEST_CASE("crc32c: TFRecord's mask and its inverse", "[io][crc32c]") {
  const uint32_t c = 0xE3069283u;
  CHECK(mask_crc32c(c) == 0xC78AB0E5u);  // rotated right by 15, plus 0xa282ead8
  for (uint32_t v : {0u, 1u, 0xFFFFFFFFu, 0x80000000u, c}) CHECK(unmask_crc32c(mask_crc32c(v)) == v);
}
