// Generator: normals must not reuse the bits that uniform draws at other
// counters see (a Tensor::normal fill followed by uniform draws would otherwise
// be correlated), and the normal stream must look standard normal.
#include "support/check.hpp"

#include <cmath>

using namespace vit;

TEST_CASE("generator normals are independent of uniforms at any counter", "[core][rng]") {
  Generator g(7);
  const int n = 20000;
  for (uint64_t shift : {0ull, 1ull}) {
    // |normal(c)| against uniform(2c + shift): Box-Muller over bits(2c) would tie them.
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int c = 0; c < n; ++c) {
      const double x = std::abs(g.normal(c)), y = g.uniform(2 * c + shift);
      sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    const double cov = sxy / n - sx / n * sy / n;
    const double r = cov / std::sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
    INFO("shift " << shift << ": correlation " << r);
    CHECK(std::abs(r) < 0.03);
  }
  double m = 0, v = 0;
  for (int c = 0; c < n; ++c) m += g.normal(c);
  m /= n;
  for (int c = 0; c < n; ++c) v += (g.normal(c) - m) * (g.normal(c) - m);
  v /= n;
  CHECK(std::abs(m) < 0.03);
  CHECK(std::abs(v - 1) < 0.05);
}
