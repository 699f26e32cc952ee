// The CPU bf16 paths of the elementwise op families (elementwise, reduce,
// shape ops, gelu and the fused bias+GELU, patchify, dropout / drop-path,
// autograd's gradient add, the bias-gradient column sums) and the casts of
// ops/cast.hpp. Every bf16 output and gradient is checked against the same op
// run in float64 on the same (bf16-representable) values:
// ||got - ref||_2 / ||ref||_2 < 1e-2, and any NaN or Inf fails. Pure data
// movement and the casts are checked bit for bit. Odd shapes throughout
// (tails that are not multiples of 8, N = 1, 65, 197).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "vit/ops/cast.hpp"
#include "vit/vit.hpp"
#include "support/vector_check.hpp"

namespace {

using vit::bf16;
using vit::Shape;
using vit::TensorBF16;
using vit::TensorD;
using vit::TensorF;


using vit::test::require_relative_l2;


/// A bf16 tensor of N(0, std) values and its exact float64 twin.
struct Pair {
  TensorBF16 b;
  TensorD d;
};
Pair random_pair(const Shape& s, uint64_t seed, double std = 1.0, double shift = 0.0) {
  vit::Generator g(seed);
  TensorF f = TensorF::normal(s, shift, std, g);
  TensorBF16 b = f.to_dtype<bf16>();
  return {b, b.to_dtype<double>()};
}

/// Runs f on bf16 inputs and on their float64 twins, compares the outputs,
/// back-propagates the same random upstream gradient through both and
/// compares every input gradient.
template <class F>
void check_op(const std::vector<Shape>& shapes, F&& f, const std::string& what, uint64_t seed = 1,
              bool backward = true) {
  std::vector<TensorBF16> xb;
  std::vector<TensorD> xd;
  for (size_t k = 0; k < shapes.size(); ++k) {
    Pair p = random_pair(shapes[k], seed * 100 + k);
    p.b.set_requires_grad(backward);
    p.d.set_requires_grad(backward);
    xb.push_back(p.b);
    xd.push_back(p.d);
  }
  TensorBF16 ob = f(xb);
  TensorD od = f(xd);
  REQUIRE(ob.shape() == od.shape());
  require_relative_l2(vit::test::values_f64(ob), vit::test::values_f64(od), what + ": forward");
  if (!backward) return;
  Pair g = random_pair(od.shape(), seed * 100 + 99);
  ob.backward(g.b);
  od.backward(g.d);
  for (size_t k = 0; k < shapes.size(); ++k) {
    REQUIRE(xb[k].grad().defined());
    require_relative_l2(vit::test::values_f64(xb[k].grad()), vit::test::values_f64(xd[k].grad()),
                   what + ": gradient of input " + std::to_string(k));
  }
}

}  // namespace

TEST_CASE("bf16 add sub mul and their broadcasts match float64", "[bf16][ops][elementwise]") {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 65, 7}, {3, 65, 7}},    // same shape, 1365 elements (odd tail)
      {{2, 197, 9}, {9}},          // bias over rows
      {{2, 65, 5}, {1, 65, 5}},    // pos_embed over the batch
      {{3, 1, 1}, {3, 65, 7}},     // a per-sample mask (leading)
      {{2, 1, 9}, {1, 5, 1}},      // general
      {{1, 1, 1}, {1, 1, 1}},      // N = 1
  };
  uint64_t seed = 10;
  for (const auto& [sa, sb] : cases) {
    std::ostringstream os;
    os << vit::to_string(sa) << " and " << vit::to_string(sb);
    check_op({sa, sb}, [](const auto& x) { return vit::add(x[0], x[1]); }, "add " + os.str(), ++seed);
    check_op({sa, sb}, [](const auto& x) { return vit::sub(x[0], x[1]); }, "sub " + os.str(), ++seed);
    check_op({sa, sb}, [](const auto& x) { return vit::mul(x[0], x[1]); }, "mul " + os.str(), ++seed);
  }
}

TEST_CASE("bf16 scale and tanh match float64", "[bf16][ops][elementwise]") {
  for (const Shape& s : {Shape{1}, Shape{65, 3}, Shape{2, 197, 5}}) {
    check_op({s}, [](const auto& x) { return vit::scale(x[0], 0.125 / 3); }, "scale", 3);
    check_op({s}, [](const auto& x) { return vit::tanh(x[0]); }, "tanh", 4);
  }
}

TEST_CASE("bf16 sum and mean match float64", "[bf16][ops][reduce]") {
  for (const Shape& s : {Shape{1}, Shape{197}, Shape{3, 65, 7}}) {
    check_op({s}, [](const auto& x) { return vit::sum(x[0]); }, "sum", 5);
    check_op({s}, [](const auto& x) { return vit::mean(x[0]); }, "mean", 6);
  }
  const Shape s{3, 65, 7};
  for (int dim = 0; dim < 3; ++dim) {
    check_op({s}, [dim](const auto& x) { return vit::sum(x[0], dim); }, "sum over a dim", 7 + dim);
    check_op({s}, [dim](const auto& x) { return vit::mean(x[0], dim, true); }, "mean keepdim", 17 + dim);
  }
}

TEST_CASE("bf16 shape ops move elements exactly and match float64", "[bf16][ops][shape]") {
  const Shape s{2, 65, 3, 5};
  check_op({s}, [](const auto& x) { return vit::reshape(x[0], {2, -1, 5}); }, "reshape", 30);
  check_op({s}, [](const auto& x) { return vit::permute(x[0], {2, 0, 3, 1}); }, "permute", 31);
  check_op({s}, [](const auto& x) { return vit::transpose(x[0], 1, 2); }, "transpose", 32);
  check_op({Shape{1, 65, 1}}, [](const auto& x) { return vit::expand(x[0], {3, 65, 7}); }, "expand", 33);
  check_op({Shape{2, 1, 5}, Shape{2, 64, 5}},
           [](const auto& x) { return vit::concat(std::vector{x[0], x[1]}, 1); }, "concat", 34);
  check_op({Shape{2, 65, 5}}, [](const auto& x) { return vit::select(x[0], 1, 0); }, "select", 35);

  // Data movement is bit-exact: the permuted elements are the inputs' bits.
  Pair p = random_pair(s, 36);
  TensorBF16 y = vit::permute(p.b, {3, 1, 0, 2});
  TensorBF16 back = vit::permute(y, {2, 1, 3, 0});
  const auto a = p.b.to_vector(), b = back.to_vector();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].bits == b[i].bits);
  TensorBF16 c = vit::concat(std::vector{p.b, p.b}, 2);
  const auto cv = c.to_vector();
  CHECK(cv[3 * 5].bits == a[0].bits);  // element (0,0,3,0) = x(0,0,0,0)
}

TEST_CASE("bf16 gelu exact and tanh match float64", "[bf16][ops][gelu]") {
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{65, 13}, Shape{197, 9}}) {
    check_op({s}, [](const auto& x) { return vit::gelu(x[0]); }, "gelu exact", 40);
    check_op({s}, [](const auto& x) { return vit::gelu(x[0], vit::GeluApprox::Tanh); }, "gelu tanh", 41);
  }
}

// The bf16 GELU (erf: one pass on AVX-512 builds; else, and tanh, float copies
// of blocks) against the float op on the same values, rounded once: within one
// bf16 ulp (both evaluate the same packet math on every element, tails
// included; FMA contraction may differ), NaN where the float op gives NaN;
// every tail length, long runs, ±0, ±Inf, NaN and saturating inputs.
TEST_CASE("bf16 gelu forward and backward equal the float op rounded once", "[bf16][ops][gelu]") {
  auto within_one_ulp = [](bf16 got, float ref) {
    const bf16 r(ref);
    if (std::isnan(ref)) return std::isnan(float(got));
    const int diff = int(got.bits) - int(r.bits);
    return ((got.bits ^ r.bits) & 0x8000) == 0 ? diff >= -1 && diff <= 1 : got.bits == r.bits;
  };
  const float specials[] = {0.f, -0.f, 1e-30f, -7.f, 7.f, 30.f, -30.f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (int64_t n : {1, 2, 15, 16, 17, 31, 33, 4095, 4097, 100003}) {
    CAPTURE(n);
    const std::vector<float> xs = vit::test::random_vector(n, 500 + n, 2.5), gs = vit::test::random_vector(n, 600 + n);
    std::vector<bf16> x(n), g(n), y(n), dx(n);
    std::vector<float> xf(n), gf(n), yf(n), dxf(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = bf16(i < 10 && n > 10 ? specials[i] : xs[i]);
      g[i] = bf16(gs[i]);
      xf[i] = float(x[i]);
      gf[i] = float(g[i]);
    }
    for (auto approx : {vit::GeluApprox::None, vit::GeluApprox::Tanh}) {
      CAPTURE(approx == vit::GeluApprox::Tanh);
      vit::ops::gelu_forward(x.data(), y.data(), n, approx);
      vit::ops::gelu_backward(g.data(), x.data(), dx.data(), n, approx);
      vit::ops::gelu_forward(xf.data(), yf.data(), n, approx);
      vit::ops::gelu_backward(gf.data(), xf.data(), dxf.data(), n, approx);
      int64_t bad_y = -1, bad_dx = -1;
      for (int64_t i = n - 1; i >= 0; --i) {
        if (!within_one_ulp(y[i], yf[i])) bad_y = i;
        if (!within_one_ulp(dx[i], dxf[i])) bad_dx = i;
      }
      INFO("first forward mismatch " << bad_y << ", first backward mismatch " << bad_dx);
      CHECK(bad_y == -1);
      CHECK(bad_dx == -1);
    }
  }
}

TEST_CASE("bias_gelu matches gelu of the bias add, in bf16 against float64", "[bf16][ops][gelu]") {
  for (const Shape& s : {Shape{1, 1}, Shape{65, 13}, Shape{2, 197, 9}, Shape{3, 24}}) {
    const Shape b{s.back()};
    for (auto approx : {vit::GeluApprox::None, vit::GeluApprox::Tanh}) {
      // float64 reference: the composition gelu(x + b), both inputs' gradients.
      std::vector<TensorBF16> xb;
      Pair x = random_pair(s, 50), bias = random_pair(b, 51, 0.5);
      for (Pair* p : {&x, &bias}) p->b.set_requires_grad(true), p->d.set_requires_grad(true);
      TensorBF16 ob = vit::bias_gelu(x.b, bias.b, approx);
      TensorD od = vit::gelu(vit::add(x.d, bias.d), approx);
      TensorD od2 = vit::bias_gelu(x.d, bias.d, approx);
      require_relative_l2(vit::test::values_f64(ob), vit::test::values_f64(od), "bias_gelu forward");
      require_relative_l2(vit::test::values_f64(od2), vit::test::values_f64(od), "bias_gelu forward, float64", 1e-12);
      Pair g = random_pair(s, 52);
      ob.backward(g.b);
      od.backward(g.d);
      require_relative_l2(vit::test::values_f64(x.b.grad()), vit::test::values_f64(x.d.grad()), "bias_gelu dx");
      require_relative_l2(vit::test::values_f64(bias.b.grad()), vit::test::values_f64(bias.d.grad()), "bias_gelu dbias");
    }
  }
}

TEST_CASE("bias_gelu in float equals the composition bit for bit", "[ops][gelu]") {
  vit::Generator g(60);
  TensorF x = TensorF::normal({65, 24}, 0, 1, g), b = TensorF::normal({24}, 0, 1, g);
  TensorF dout = TensorF::normal({65, 24}, 0, 1, g);
  TensorF x2 = x.clone(), b2 = b.clone();
  for (TensorF* t : {&x, &b, &x2, &b2}) t->set_requires_grad(true);
  TensorF fused = vit::bias_gelu(x, b);
  TensorF comp = vit::gelu(vit::add(x2, b2));
  CHECK(fused.to_vector() == comp.to_vector());
  fused.backward(dout);
  comp.backward(dout);
  CHECK(x.grad().to_vector() == x2.grad().to_vector());
  CHECK(b.grad().to_vector() == b2.grad().to_vector());
}

TEST_CASE("bias_gelu accumulates the bias gradient", "[bf16][ops][gelu]") {
  Pair x = random_pair({9, 5}, 70), bias = random_pair({5}, 71);
  bias.b.set_requires_grad(true);
  bias.d.set_requires_grad(true);
  vit::bias_gelu(x.b, bias.b).backward(TensorBF16::ones({9, 5}));
  vit::bias_gelu(x.b, bias.b).backward(TensorBF16::ones({9, 5}));
  vit::bias_gelu(x.d, bias.d).backward(TensorD::ones({9, 5}));
  vit::bias_gelu(x.d, bias.d).backward(TensorD::ones({9, 5}));
  require_relative_l2(vit::test::values_f64(bias.b.grad()), vit::test::values_f64(bias.d.grad()), "two backwards add up");
}

TEST_CASE("bf16 patchify and unpatchify move elements exactly", "[bf16][ops][patch_embed]") {
  const int64_t B = 2, ch = 3, H = 12, W = 8, P = 4;
  Pair x = random_pair({B, ch, H, W}, 80);
  TensorBF16 cols = TensorBF16::empty({B * (H / P) * (W / P), ch * P * P});
  vit::ops::patchify(vit::Device::CPU, x.b.data(), cols.data(), B, ch, H, W, P);
  TensorD cols_d = TensorD::empty(cols.shape());
  vit::ops::patchify(vit::Device::CPU, x.d.data(), cols_d.data(), B, ch, H, W, P);
  CHECK(vit::test::values_f64(cols) == vit::test::values_f64(cols_d));
  TensorBF16 back = TensorBF16::empty(x.b.shape());
  vit::ops::unpatchify(vit::Device::CPU, cols.data(), back.data(), B, ch, H, W, P);
  CHECK(vit::test::values_f64(back) == vit::test::values_f64(x.b));
}

TEST_CASE("bf16 dropout and drop_path round the float masks' products once", "[bf16][ops][dropout]") {
  for (double p : {0.1, 0.5}) {
    Pair x = random_pair({4, 65, 7}, 90);
    TensorF xf = x.b.to_dtype<float>();
    x.b.set_requires_grad(true);
    xf.set_requires_grad(true);
    for (bool path : {false, true}) {
      vit::Generator g1(91), g2(91);
      TensorBF16 yb = path ? vit::drop_path(x.b, p, true, g1) : vit::dropout(x.b, p, true, g1);
      TensorF yf = path ? vit::drop_path(xf, p, true, g2) : vit::dropout(xf, p, true, g2);
      const auto vb = yb.to_vector();
      const auto vf = yf.to_vector();
      for (size_t i = 0; i < vb.size(); ++i) REQUIRE(vb[i].bits == bf16(vf[i]).bits);
      Pair dout = random_pair(yb.shape(), 92);
      yb.backward(dout.b);
      yf.backward(dout.b.to_dtype<float>());
      const auto gb = x.b.grad().to_vector();
      const auto gf = xf.grad().to_vector();
      for (size_t i = 0; i < gb.size(); ++i) REQUIRE(gb[i].bits == bf16(gf[i]).bits);
      x.b.zero_grad();
      xf.zero_grad();
    }
  }
}

TEST_CASE("bf16 gradients of a tensor used twice add up", "[bf16][autograd]") {
  Pair x = random_pair({65, 3}, 100);
  x.b.set_requires_grad(true);
  x.d.set_requires_grad(true);
  auto f = [](const auto& t) { return vit::sum(vit::add(vit::mul(t, t), vit::tanh(t))); };
  f(x.b).backward();
  f(x.d).backward();
  require_relative_l2(vit::test::values_f64(x.b.grad()), vit::test::values_f64(x.d.grad()), "x·x + tanh(x)");

  // The raw gradient add: float math, one rounding.
  const auto a = random_pair({1027}, 101).b.to_vector(), b = random_pair({1027}, 102).b.to_vector();
  std::vector<bf16> out(a.size());
  vit::detail::add_values(a.data(), b.data(), out.data(), vit::Device::CPU, static_cast<int64_t>(a.size()));
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(out[i].bits == bf16(float(a[i]) + float(b[i])).bits);
}

TEST_CASE("bf16 column sums sum in float and round once", "[bf16][ops]") {
  for (int64_t R : {1, 65, 197, 4001}) {
    const int64_t C = 13;
    Pair x = random_pair({R, C}, 110);
    Pair acc = random_pair({C}, 111);
    std::vector<bf16> accb = acc.b.to_vector();
    vit::ops::detail::add_column_sums(x.b.data(), R, C, accb.data());
    std::vector<double> ref(acc.d.to_vector());
    const auto xv = x.d.to_vector();
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) ref[c] += xv[r * C + c];
    std::vector<double> got;
    for (bf16 v : accb) got.push_back(float(v));
    require_relative_l2(got, ref, "column sums, R " + std::to_string(R));
  }
}

TEST_CASE("to_dtype and ops::convert round to nearest even as vit::bf16", "[bf16][ops][cast]") {
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1;
  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6 and goes to 1 + 2^-6.
  std::vector<float> v = {1.f + 0x1p-8f, 1.f + 3 * 0x1p-8f, -1.f - 0x1p-8f, 0.f, -0.f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), 1e-40f, 3.4e38f, 65504.f};
  const auto r = random_pair({1000}, 120, 100.0);
  for (bf16 b : r.b.to_vector()) v.push_back(float(b) * 1.00390625f);  // off the bf16 grid
  vit::Generator g(121);
  for (float f : TensorF::normal({1001}, 0, 3, g).to_vector()) v.push_back(f);
  TensorF t = TensorF::from_data({static_cast<int64_t>(v.size())}, v);
  TensorBF16 b = vit::to_dtype<bf16>(t);
  std::vector<bf16> raw(v.size());
  vit::ops::convert(vit::Device::CPU, v.data(), raw.data(), static_cast<int64_t>(v.size()));
  const auto bv = b.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("value " << v[i]);
    REQUIRE(bv[i].bits == bf16(v[i]).bits);
    REQUIRE(raw[i].bits == bf16(v[i]).bits);
  }
  CHECK(bv[0].bits == bf16(1.f).bits);
  CHECK(float(bv[1]) == 1.f + 0x1p-6f);
  CHECK(std::isnan(float(bv[7])));

  // Back to float is exact; float <-> double on the CPU; same type is a copy.
  TensorF back = vit::to_dtype<float>(b);
  const auto fv = back.to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isnan(fv[i])) REQUIRE(fv[i] == float(bv[i]));
  TensorD d = vit::to_dtype<double>(back);
  const auto dv = vit::to_dtype<float>(d).to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isnan(fv[i])) REQUIRE(dv[i] == fv[i]);
  TensorBF16 same = vit::to_dtype<bf16>(b);
  CHECK(same.data() != b.data());
  // No autograd across dtypes.
  TensorF leaf = TensorF::ones({3});
  leaf.set_requires_grad(true);
  CHECK_FALSE(vit::to_dtype<bf16>(leaf).requires_grad());
}

TEST_CASE("accumulate_widened adds bf16 gradients into float exactly once", "[bf16][ops][cast]") {
  const auto gb = random_pair({1031}, 130).b.to_vector();
  vit::Generator g(131);
  std::vector<float> acc = TensorF::normal({1031}, 0, 1, g).to_vector(), ref = acc;
  vit::ops::accumulate_widened(vit::Device::CPU, gb.data(), acc.data(), static_cast<int64_t>(gb.size()));
  for (size_t i = 0; i < gb.size(); ++i) REQUIRE(acc[i] == ref[i] + float(gb[i]));
}
