// layer_norm: forward against a float64 loop, backward by finite differences,
// and float32 against float64 to float32 rounding.
#include "support/check.hpp"

using namespace vit;

namespace {
TensorD layer_norm_reference(const TensorD& x, const TensorD& w, const TensorD& b, double eps) {
  const int64_t C = x.shape().back(), R = x.numel() / C;
  TensorD out = TensorD::empty(x.shape());
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x.data()[r * C + c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += std::pow(x.data()[r * C + c] - mean, 2);
    var /= C;
    for (int64_t c = 0; c < C; ++c)
      out.data()[r * C + c] = (x.data()[r * C + c] - mean) / std::sqrt(var + eps) * w.data()[c] + b.data()[c];
  }
  return out;
}
}  // namespace

TEST_CASE("layer_norm forward matches a float64 reference", "[ops][layernorm]") {
  const auto x = test::randn<double>({3, 5, 7}, 1, 2.0);
  const auto w = test::randn<double>({7}, 2), b = test::randn<double>({7}, 3);
  test::require_close(layer_norm(x, w, b, 1e-5), layer_norm_reference(x, w, b, 1e-5), 1e-12, 1e-12);
}

TEST_CASE("layer_norm backward matches finite differences", "[ops][layernorm]") {
  test::check_gradients([](const std::vector<TensorD>& in) { return layer_norm(in[0], in[1], in[2], 1e-6); },
                        {test::randn<double>({4, 6}, 4), test::randn<double>({6}, 5),
                         test::randn<double>({6}, 6)});
}

TEST_CASE("layer_norm in float32 agrees with float64", "[ops][layernorm]") {
  const auto x = test::randn<double>({64, 192}, 7, 3.0);
  const auto w = test::randn<double>({192}, 8), b = test::randn<double>({192}, 9);
  auto f = [](const TensorD& t) {
    TensorF r = TensorF::empty(t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) r.data()[i] = static_cast<float>(t.data()[i]);
    return r;
  };
  test::require_close(layer_norm(f(x), f(w), f(b), 1e-6), layer_norm_reference(x, w, b, 1e-6), 1e-5, 1e-5);
}

TEST_CASE("layer_norm rejects a weight of the wrong size", "[ops][layernorm][errors]") {
  const auto x = test::randn<float>({2, 8}, 1);
  REQUIRE_THROWS_WITH(layer_norm(x, TensorF::ones({7}), TensorF::zeros({7})),
                      Catch::Contains("layer_norm: x (2,8) vs weight (7)"));
}

TEST_CASE("layer_norm backward on the threaded path matches a float64 reference", "[ops][layernorm]") {
  // R·C above the threading threshold: per-thread partial sums of dweight/dbias.
  const int64_t R = 300, C = 192;
  const auto x = test::randn<double>({R, C}, 11), w = test::randn<double>({C}, 12),
             b = test::randn<double>({C}, 13), g = test::randn<double>({R, C}, 14);
  TensorD xs = x.detach(), ws = w.detach(), bs = b.detach();
  xs.set_requires_grad(true), ws.set_requires_grad(true), bs.set_requires_grad(true);
  set_num_threads(2);
  layer_norm(xs, ws, bs, 1e-6).backward(g);
  TensorD dx = TensorD::empty({R, C}), dw = TensorD::zeros({C}), db = TensorD::zeros({C});
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x(r, c) / C;
    for (int64_t c = 0; c < C; ++c) var += (x(r, c) - mean) * (x(r, c) - mean) / C;
    const double rstd = 1 / std::sqrt(var + 1e-6);
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (x(r, c) - mean) * rstd;
      s1 += g(r, c) * w(c), s2 += g(r, c) * w(c) * xhat;
      dw(c) += g(r, c) * xhat, db(c) += g(r, c);
    }
    for (int64_t c = 0; c < C; ++c)
      dx(r, c) = rstd * (g(r, c) * w(c) - s1 / C - (x(r, c) - mean) * rstd * s2 / C);
  }
  test::require_close(xs.grad(), dx, 1e-10, 1e-9);
  test::require_close(ws.grad(), dw, 1e-10, 1e-9);
  test::require_close(bs.grad(), db, 1e-10, 1e-9);
}
