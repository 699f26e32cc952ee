// Vector-level helpers shared by the kernel tests (emulated and [cuda]):
// fresh random inputs, NaN-poisoned outputs, |got − ref| <= atol + rtol·|ref|
// for every element (NaN fails), naming the worst element on failure, and the
// bf16 bar: relative L2 error against a float64 reference.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>
#include <vit/vit.hpp>

namespace vit::test {

/// n NaNs: an element a kernel never writes fails the comparison.
inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

/// Fresh N(0, std) values from a seed.
inline std::vector<float> random_vector(size_t n, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  TensorF t = TensorF::normal({static_cast<int64_t>(n)}, 0.0, std, g);
  return t.to_vector();
}

/// scale·N(0,1) + shift: an offset mean makes LayerNorm's centring matter.
inline std::vector<float> random_affine(size_t n, uint64_t seed, float scale, float shift) {
  std::vector<float> v = random_vector(n, seed);
  for (float& e : v) e = scale * e + shift;
  return v;
}

/// A tensor's elements widened to float64 (float and bf16 widen exactly).
template <class T>
std::vector<double> values_f64(const Tensor<T>& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if constexpr (std::is_same_v<T, bf16>)
      v[i] = static_cast<float>(t.data()[i]);
    else
      v[i] = static_cast<double>(t.data()[i]);
  }
  return v;
}
/// Same length and the same bits in every element (NaNs included).
inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
/// bf16 values widened to float (exact).
inline std::vector<float> widen(const std::vector<bf16>& v) { return {v.begin(), v.end()}; }

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

inline void require_close(const std::vector<float>& got, const std::vector<float>& ref, double atol,
                          double rtol, const char* what) {
  REQUIRE(got.size() == ref.size());
  size_t worst = got.size();
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double excess = std::abs(double(got[i]) - ref[i]) - (atol + rtol * std::abs(double(ref[i])));
    if (!(excess <= 0) && (worst == got.size() || !(excess <= worst_excess))) worst = i, worst_excess = excess;
  }
  if (worst != got.size()) {
    std::ostringstream os;
    os << what << ": element " << worst << " of " << got.size() << ": got " << got[worst]
       << ", expected " << ref[worst] << " (atol " << atol << ", rtol " << rtol << ")";
    FAIL(os.str());
  }
}

/// The bar of every bf16 result: ‖got − ref‖₂ / ‖ref‖₂ < bar (1e-2 for bf16
/// storage with float32 math), every element finite (a NaN or infinity fails
/// outright, naming it: a NaN norm would slip past a plain `<` on some paths);
/// a zero reference needs an exact zero.
inline void require_relative_l2(const std::vector<double>& got, const std::vector<double>& ref,
                                const std::string& what, double bar = 1e-2) {
  INFO(what);
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      std::ostringstream os;
      os << what << ": element " << i << " of " << got.size() << " is " << got[i];
      FAIL(os.str());
    }
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  if (den == 0) {
    INFO("the reference is zero: so must the result be");
    CHECK(num == 0);
    return;
  }
  const double rel = std::sqrt(num / den);
  INFO("relative L2 error " << rel << " (bar " << bar << ") over " << got.size() << " elements");
  CHECK(rel < bar);
}

}  // namespace vit::test
