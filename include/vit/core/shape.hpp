// Shape: the sizes of a row-major tensor, plus the helpers every op needs to
// validate and describe shapes. Printing gives "(64,65,192)" so error messages
// name shapes the way PyTorch users read them.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "vit/core/error.hpp"

namespace vit {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

/// Product of dims [begin, end): the outer/inner extents around a dim.
inline int64_t numel(const Shape& s, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end && i < s.size(); ++i) n *= s[i];
  return n;
}

inline std::string to_string(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + ")";
}

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << to_string(s); }

/// Resolves a possibly negative dimension index against a rank, PyTorch style.
inline int normalize_dim(int64_t dim, size_t rank, const char* op) {
  const int64_t r = static_cast<int64_t>(rank);
  VIT_CHECK(dim >= -r && dim < r, op, ": dim ", dim, " out of range for rank ", r);
  return static_cast<int>(dim < 0 ? dim + r : dim);
}

/// Row-major strides in elements.
inline std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

/// numpy/PyTorch broadcasting of two shapes; throws naming the op if incompatible.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    VIT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
              " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace vit
