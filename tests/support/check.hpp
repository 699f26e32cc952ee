// Test helpers shared by every op test, so a new op's test stays short:
//  - require_close: |a − b| <= atol + rtol·|b| elementwise, reporting the worst element;
//  - require_relative_l2: ‖a − ref‖₂ / ‖ref‖₂ below a bound, every element finite
//    (the bf16 bar: bf16 results against the float64 reference);
//  - check_gradients: autograd against central finite differences in double.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <sstream>
#include <vit/vit.hpp>

#include "support/vector_check.hpp"

namespace vit::test {

template <class T>
Tensor<T> randn(const Shape& s, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  return Tensor<T>::normal(s, 0.0, std, g);
}

inline TensorF to_float(const TensorD& t) { return t.to_dtype<float>(); }
inline TensorD to_double(const TensorF& t) { return t.to_dtype<double>(); }

/// Requires a ≈ ref elementwise; on failure prints the worst index and values.
template <class A, class B>
void require_close(const Tensor<A>& a, const Tensor<B>& ref, double atol, double rtol) {
  REQUIRE(a.shape() == ref.shape());
  int64_t worst = -1;
  double worst_excess = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data()[i], y = ref.data()[i];
    const double excess = std::abs(x - y) - (atol + rtol * std::abs(y));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worst_excess))) worst = i, worst_excess = excess;
  }
  if (worst >= 0) {
    std::ostringstream os;
    os << "element " << worst << " of " << to_string(a.shape()) << ": got " << a.data()[worst]
       << ", expected " << ref.data()[worst] << " (atol " << atol << ", rtol " << rtol << ")";
    FAIL(os.str());
  }
}

/// The bf16 bar on tensors (any element types): see the vector version in
/// support/vector_check.hpp.
template <class A, class B>
void require_relative_l2(const Tensor<A>& a, const Tensor<B>& ref, double bound = 1e-2) {
  REQUIRE(a.shape() == ref.shape());
  std::vector<double> got, want;
  for (int64_t i = 0; i < a.numel(); ++i) got.push_back(static_cast<float>(a.data()[i]));
  for (int64_t i = 0; i < ref.numel(); ++i) want.push_back(static_cast<double>(ref.data()[i]));
  require_relative_l2(got, want, "shape " + to_string(a.shape()), bound);
}

using Fn = std::function<TensorD(const std::vector<TensorD>&)>;

/// Checks d/d(inputs) of sum(f(inputs) ⊙ w), w fixed random, against central
/// differences. Every input is made a leaf that requires grad.
inline void check_gradients(const Fn& f, std::vector<TensorD> inputs, double eps = 1e-6,
                            double atol = 1e-7, double rtol = 1e-5) {
  for (auto& x : inputs) {
    x = x.detach();
    x.set_requires_grad(true);
  }
  TensorD out = f(inputs);
  const TensorD w = randn<double>(out.shape(), 12345);
  sum(mul(out, w)).backward();
  auto objective = [&]() {
    NoGradGuard ng;
    TensorD o = f(inputs);
    double s = 0;
    for (int64_t i = 0; i < o.numel(); ++i) s += o.data()[i] * w.data()[i];
    return s;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    TensorD analytic = inputs[k].grad();
    INFO("input " << k << " of shape " << to_string(inputs[k].shape()));
    REQUIRE(analytic.defined());
    TensorD numeric = TensorD::empty(inputs[k].shape());
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      double& xi = inputs[k].data()[i];
      const double saved = xi;
      xi = saved + eps;
      const double fp = objective();
      xi = saved - eps;
      const double fm = objective();
      xi = saved;
      numeric.data()[i] = (fp - fm) / (2 * eps);
    }
    require_close(analytic, numeric, atol, rtol);
  }
}

}  // namespace vit::test
