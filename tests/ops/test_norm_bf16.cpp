// LayerNorm, softmax and cross-entropy on bf16 tensors on the CPU (bf16
// storage, float math, float saved statistics) against float64 references
// computed from the same bf16-valued inputs: every output and gradient within
// ‖out − ref‖₂ / ‖ref‖₂ < 1e-2 (the bf16 bar), NaN or Inf never
// passing. Odd shapes and tails: C or n = 1, 7, 65, 197, rows beyond the
// register length, 3-D inputs; LayerNorm parameter gradients accumulate.
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <type_traits>
#include <vector>
#include <vit/vit.hpp>

#include "support/vector_check.hpp"

using namespace vit;

namespace {


using vit::test::require_relative_l2;


/// scale·N(0,1) + shift rounded to bf16: the inputs are exact bf16 values, so the
/// float64 reference sees what the bf16 op sees.
TensorBF16 random_bf16_tensor(const Shape& shape, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  Generator g(seed);
  const TensorF f = TensorF::normal(shape, shift, scale, g);
  return f.to_dtype<bf16>();
}

TensorD as_double(const TensorBF16& t) {
  TensorD d = TensorD::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) d.data()[i] = static_cast<float>(t.data()[i]);
  return d;
}

// ---- LayerNorm ----------------------------------------------------------------------------

void check_layer_norm(const Shape& shape, uint64_t seed) {
  std::ostringstream name;
  name << "layer_norm " << shape;
  INFO(name.str());
  const int64_t C = shape.back(), R = numel(shape) / C;
  TensorBF16 x = random_bf16_tensor(shape, seed, 2.0, 0.5), w = random_bf16_tensor({C}, seed + 1, 0.5, 1.0),
             b = random_bf16_tensor({C}, seed + 2), g = random_bf16_tensor(shape, seed + 3);
  x.set_requires_grad(true), w.set_requires_grad(true), b.set_requires_grad(true);
  const double eps = 1e-6;

  const TensorD xd = as_double(x), wd = as_double(w), bd = as_double(b), gd = as_double(g);
  std::vector<double> out_ref(R * C), mean_ref(R), rstd_ref(R), dx_ref(R * C), dw_ref(C, 0.0),
      db_ref(C, 0.0);
  ops::layer_norm_forward<double>(xd.data(), wd.data(), bd.data(), out_ref.data(),
                                  mean_ref.data(), rstd_ref.data(), R, C, eps);
  ops::layer_norm_backward<double>(gd.data(), xd.data(), wd.data(), mean_ref.data(),
                                   rstd_ref.data(), dx_ref.data(), dw_ref.data(), db_ref.data(), R,
                                   C);

  // Twice through autograd: dx written per call (accumulated into x.grad), dw/db accumulate.
  for (int pass = 1; pass <= 2; ++pass) {
    TensorBF16 out = layer_norm(x, w, b, eps);
    static_assert(std::is_same_v<decltype(out), TensorBF16>);
    require_relative_l2(test::values_f64(out), out_ref, "out");
    out.backward(g);
    auto scaled = [pass](std::vector<double> v) {
      for (double& e : v) e *= pass;
      return v;
    };
    require_relative_l2(test::values_f64(x.grad()), scaled(dx_ref), "dx, pass " + std::to_string(pass));
    require_relative_l2(test::values_f64(w.grad()), scaled(dw_ref), "dweight, pass " + std::to_string(pass));
    require_relative_l2(test::values_f64(b.grad()), scaled(db_ref), "dbias, pass " + std::to_string(pass));
  }

  // The raw op: mean/rstd saved in float (to float accuracy, not bf16), dw without db
  // accumulating onto a non-zero gradient, dx skipped.
  std::vector<float> mean(R), rstd(R);
  TensorBF16 out = TensorBF16::empty(shape);
  ops::layer_norm_forward(Device::CPU, x.data(), w.data(), b.data(), out.data(), mean.data(),
                          rstd.data(), R, C, static_cast<float>(eps));
  require_relative_l2({mean.begin(), mean.end()}, mean_ref, "mean (float)", 1e-5);
  require_relative_l2({rstd.begin(), rstd.end()}, rstd_ref, "rstd (float)", 1e-5);
  TensorBF16 dw = random_bf16_tensor({C}, seed + 4);
  std::vector<double> dw_acc = test::values_f64(dw);
  for (int64_t c = 0; c < C; ++c) dw_acc[c] += dw_ref[c];
  ops::layer_norm_backward(Device::CPU, g.data(), x.data(), w.data(), mean.data(), rstd.data(),
                           static_cast<bf16*>(nullptr), dw.data(), static_cast<bf16*>(nullptr), R,
                           C);
  require_relative_l2(test::values_f64(dw), dw_acc, "dweight accumulated onto a non-zero gradient");
}

// ---- softmax ------------------------------------------------------------------------------

void check_softmax(const Shape& shape, uint64_t seed) {
  std::ostringstream name;
  name << "softmax " << shape;
  INFO(name.str());
  const int64_t n = shape.back(), R = numel(shape) / n;
  TensorBF16 x = random_bf16_tensor(shape, seed, 3.0, 1.0), g = random_bf16_tensor(shape, seed + 1);
  x.set_requires_grad(true);
  TensorBF16 y = softmax(x);
  const TensorD xd = as_double(x), gd = as_double(g);
  std::vector<double> y_ref(R * n), dx_ref(R * n);
  ops::softmax_forward<double>(xd.data(), y_ref.data(), R, n);
  require_relative_l2(test::values_f64(y), y_ref, "y");
  y.backward(g);
  // The reference backward takes the bf16 y the op saved (its input), widened.
  const std::vector<double> ys = test::values_f64(y);
  ops::softmax_backward<double>(ys.data(), gd.data(), dx_ref.data(), R, n);
  require_relative_l2(test::values_f64(x.grad()), dx_ref, "dx");
}

// ---- cross-entropy ------------------------------------------------------------------------

enum class Target { Labels, LabelTensor, Soft };

void check_cross_entropy(int64_t B, int64_t K, Target kind, double eps, uint64_t seed) {
  INFO("cross_entropy B " << B << ", K " << K << ", kind " << static_cast<int>(kind)
                          << ", smoothing " << eps);
  TensorBF16 z = random_bf16_tensor({B, K}, seed, 2.0, 0.3);
  z.set_requires_grad(true);
  std::vector<int64_t> labels(B);
  for (int64_t b = 0; b < B; ++b) labels[b] = (b * 7 + static_cast<int64_t>(seed)) % K;
  // q in double as the op defines it: ε/K everywhere plus 1 − ε at the label, or soft rows.
  std::vector<double> q(B * K, kind == Target::Soft ? 0.0 : eps / K);
  TensorBF16 soft;
  if (kind == Target::Soft) {
    const TensorBF16 r = random_bf16_tensor({B, K}, seed + 1);
    TensorF p = TensorF::empty({B, K});
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += std::exp(float(r.data()[b * K + k]));
      for (int64_t k = 0; k < K; ++k)
        p.data()[b * K + k] = static_cast<float>(std::exp(float(r.data()[b * K + k])) / s);
    }
    soft = p.to_dtype<bf16>();
    q = test::values_f64(soft);  // the reference uses the bf16 targets the op receives
  } else {
    for (int64_t b = 0; b < B; ++b) q[b * K + labels[b]] += 1.0 - eps;
  }

  TensorBF16 loss;
  if (kind == Target::Labels) {
    loss = cross_entropy(z, labels, eps);
  } else if (kind == Target::LabelTensor) {
    Tensor<int32_t> l32 = Tensor<int32_t>::empty({B});
    for (int64_t b = 0; b < B; ++b) l32.data()[b] = static_cast<int32_t>(labels[b]);
    loss = cross_entropy(z, l32, eps);
  } else {
    loss = cross_entropy(z, soft);
  }
  REQUIRE(loss.numel() == 1);

  const TensorD zd = as_double(z);
  std::vector<double> probs_ref(B * K), dz_ref(B * K);
  const double loss_ref = ops::cross_entropy_forward<double>(zd.data(), q.data(), probs_ref.data(), B, K);
  require_relative_l2(test::values_f64(loss), {loss_ref}, "loss");

  const bf16 dloss(0.37f);  // the upstream gradient is not always 1
  loss.backward(TensorBF16::full({}, dloss));
  ops::cross_entropy_backward<double>(static_cast<float>(dloss), probs_ref.data(), q.data(),
                                      dz_ref.data(), B, K);
  require_relative_l2(test::values_f64(z.grad()), dz_ref, "dlogits");
}

}  // namespace

TEST_CASE("bf16 layer_norm on the CPU matches float64, forward and backward", "[ops][bf16][layernorm]") {
  uint64_t seed = 10;
  for (const Shape& s : std::vector<Shape>{{1, 1}, {3, 7}, {5, 65}, {2, 197}, {33, 200}, {2, 3, 40},
                                           {3, 1100}})
    check_layer_norm(s, seed += 10);
}

// The bf16 rows (in registers on AVX-512 builds, float copies otherwise),
// element by element against float64 on the same bf16 values. Each output is
// one float result rounded once, so it lies within one bf16 ulp of the exact
// value plus the float error; that error is bounded by the size of the terms
// the element is made of (not by the element, which cancels to ~0 where
// g·w ≈ mean(g·w) + x̂·mean(g·w·x̂)), so the bound is
// ulp_bf16(ref) + 2⁻¹³·(sum of the terms' magnitudes). 2⁻¹³ is ~1000 float
// ulps (room for any summation order and vector width the compiler picks)
// and 32× finer than bf16, so a wrong or missing term fails. mean and rstd
// against the float loops to float rounding; dw and db within 4e-3.
TEST_CASE("bf16 layer_norm rows are within bf16 rounding of float64, element by element",
          "[ops][bf16][layernorm]") {
  auto bf16_ulp = [](double v) {
    int e = 0;
    std::frexp(v, &e);
    return v == 0.0 ? 0.0 : std::ldexp(1.0, e - 8);  // 8 significant bits
  };
  for (const auto& [R, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 15}, {300, 192}, {65, 200}, {9, 1100}}) {
    CAPTURE(R, C);
    auto bf = [](const std::vector<float>& v) { return std::vector<bf16>(v.begin(), v.end()); };
    auto fl = [](const std::vector<bf16>& v) { return std::vector<float>(v.begin(), v.end()); };
    const std::vector<bf16> x = bf(test::random_vector(R * C, 70 + C, 3.0)), g = bf(test::random_vector(R * C, 71 + C));
    const std::vector<bf16> w = bf(test::random_vector(C, 72 + C)), b = bf(test::random_vector(C, 73 + C));
    std::vector<bf16> out(R * C), dx(R * C), dw(C, bf16(0.f)), db(C, bf16(0.f));
    std::vector<float> mean(R), rstd(R);
    ops::layer_norm_forward(x.data(), w.data(), b.data(), out.data(), mean.data(), rstd.data(), R, C, 1e-6f);
    ops::layer_norm_backward(g.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data(), R, C);
    const std::vector<float> xf = fl(x), gf = fl(g), wf = fl(w), bfl = fl(b);
    std::vector<float> outf(R * C), dxf(R * C), dwf(C, 0.f), dbf(C, 0.f), meanf(R), rstdf(R);
    ops::layer_norm_forward(xf.data(), wf.data(), bfl.data(), outf.data(), meanf.data(), rstdf.data(), R, C, 1e-6f);
    ops::layer_norm_backward(gf.data(), xf.data(), wf.data(), meanf.data(), rstdf.data(), dxf.data(), dwf.data(),
                             dbf.data(), R, C);
    require_relative_l2(std::vector<double>(mean.begin(), mean.end()), std::vector<double>(meanf.begin(), meanf.end()), "mean", 1e-6);
    require_relative_l2(std::vector<double>(rstd.begin(), rstd.end()), std::vector<double>(rstdf.begin(), rstdf.end()), "rstd", 1e-6);

    // float64 written out here rather than the library's layer_norm<double>:
    // an error in the shared template would be in both and pass unseen.
    int64_t bad_out = -1, bad_dx = -1;
    for (int64_t r = R - 1; r >= 0; --r) {
      const float* xr = xf.data() + r * C;
      const float* gr = gf.data() + r * C;
      double m = 0, v = 0;
      for (int64_t c = 0; c < C; ++c) m += xr[c];
      m /= double(C);
      for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
      const double rs = 1.0 / std::sqrt(v / double(C) + double(1e-6f));
      // a = mean(dy), bb = mean(dy·x̂) with dy = g·w; their magnitudes for the bound,
      // with |x̂| taken as (|x| + |m|)·rs (the error of m enters x̂ that way).
      double a = 0, bb = 0, abs_a = 0, abs_bb = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double dy = double(gr[c]) * wf[c], xhat = (xr[c] - m) * rs;
        a += dy, bb += dy * xhat;
        abs_a += std::abs(dy), abs_bb += std::abs(dy) * (std::abs(xr[c]) + std::abs(m)) * rs;
      }
      a /= double(C), bb /= double(C), abs_a /= double(C), abs_bb /= double(C);
      for (int64_t c = C - 1; c >= 0; --c) {
        const int64_t i = r * C + c;
        const double xhat = (xr[c] - m) * rs, xhat_mag = (std::abs(xr[c]) + std::abs(m)) * rs;
        const double dy = double(gr[c]) * wf[c];
        const double out_ref = xhat * wf[c] + bfl[c];
        const double out_terms = xhat_mag * std::abs(wf[c]) + std::abs(bfl[c]);
        const double dx_ref = rs * (dy - a - xhat * bb);
        const double dx_terms = rs * (std::abs(dy) + abs_a + xhat_mag * abs_bb);
        if (!(std::abs(float(out[i]) - out_ref) <= bf16_ulp(out_ref) + 0x1p-13 * out_terms)) bad_out = i;
        if (!(std::abs(float(dx[i]) - dx_ref) <= bf16_ulp(dx_ref) + 0x1p-13 * dx_terms)) bad_dx = i;
      }
    }
    INFO("first out beyond the bound " << bad_out << ", first dx beyond the bound " << bad_dx);
    CHECK(bad_out == -1);
    CHECK(bad_dx == -1);
    require_relative_l2(std::vector<double>(dw.begin(), dw.end()), std::vector<double>(dwf.begin(), dwf.end()), "dw", 4e-3);
    require_relative_l2(std::vector<double>(db.begin(), db.end()), std::vector<double>(dbf.begin(), dbf.end()), "db", 4e-3);
  }
}

TEST_CASE("bf16 layer_norm saves float statistics in its graph", "[ops][bf16][layernorm]") {
  TensorBF16 x = random_bf16_tensor({4, 16}, 5), w = random_bf16_tensor({16}, 6), b = random_bf16_tensor({16}, 7);
  x.set_requires_grad(true);
  TensorBF16 out = layer_norm(x, w, b);
  auto node = std::dynamic_pointer_cast<vit::detail::LayerNormNode<bf16>>(out.grad_fn());
  REQUIRE(node);
  static_assert(std::is_same_v<decltype(node->mean), TensorF>);
  CHECK(node->mean.numel() == 4);
}

TEST_CASE("bf16 softmax on the CPU matches float64, forward and backward", "[ops][bf16][softmax]") {
  uint64_t seed = 200;
  for (const Shape& s : std::vector<Shape>{{1, 1}, {3, 5}, {7, 65}, {4, 197}, {2, 3, 64}, {2, 1100}})
    check_softmax(s, seed += 10);
}

TEST_CASE("bf16 cross_entropy on the CPU matches float64 with labels, smoothing and soft targets",
          "[ops][bf16][cross_entropy]") {
  uint64_t seed = 400;
  for (int64_t B : {1, 5, 33})
    for (int64_t K : {1, 10, 37, 1000}) {
      check_cross_entropy(B, K, Target::Labels, 0.0, seed += 10);
      check_cross_entropy(B, K, Target::Labels, 0.1, seed += 10);
      check_cross_entropy(B, K, Target::LabelTensor, 0.33, seed += 10);
      check_cross_entropy(B, K, Target::Soft, 0.0, seed += 10);
    }
}

TEST_CASE("bf16 cross_entropy returns a bf16 loss and checks labels on the CPU",
          "[ops][bf16][cross_entropy]") {
  const TensorBF16 z = random_bf16_tensor({2, 5}, 9);
  auto loss = cross_entropy(z, std::vector<int64_t>{1, 4}, 0.1);
  static_assert(std::is_same_v<decltype(loss), TensorBF16>);
  CHECK(std::isfinite(static_cast<float>(loss.data()[0])));
  REQUIRE_THROWS_WITH(cross_entropy(z, std::vector<int64_t>{1, 5}),
                      Catch::Contains("out of range"));
}
