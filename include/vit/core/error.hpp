// vit::Error and VIT_CHECK: the one way the library reports misuse.
// A failed check throws with file:line and the values involved, never aborts,
// so a CLI can print one line and exit non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vit {

/// Thrown for every misuse the library detects (shapes, devices, arguments).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class A>
void put(std::ostream& os, const A& a) {
  os << a;
}
/// Vectors (shapes) print as "(64,65,192)", as PyTorch users read shapes.
template <class E>
void put(std::ostream& os, const std::vector<E>& v) {
  os << "(";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  os << ")";
}

template <class... Args>
[[noreturn]] inline void throw_error(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  (put(os, args), ...);
  os << " [" << file << ":" << line << "]";
  throw Error(os.str());
}
}  // namespace detail

}  // namespace vit

/// Always-on check: VIT_CHECK(cond, "linear: x ", x.shape(), " vs weight ", w.shape()).
#define VIT_CHECK(cond, ...)                                         \
  do {                                                               \
    if (!(cond)) ::vit::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
