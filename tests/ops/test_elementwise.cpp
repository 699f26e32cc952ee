// add/sub/mul with broadcasting, scale and tanh: forward against a float64
// loop that broadcasts by index arithmetic, backward of both operands by finite
// differences for every broadcast kind (the flat fast paths and the general
// strided one), float32 against float64, and the incompatible-shape error.
#include "support/check.hpp"

using namespace vit;
using test::to_double;
using test::to_float;

namespace {
/// Flat offset into a tensor of shape `in` for the output multi-index `idx`
/// (numpy rules: align right, size-1 dims repeat).
int64_t broadcast_offset(const Shape& in, const std::vector<int64_t>& idx) {
  const size_t lead = idx.size() - in.size();
  int64_t off = 0;
  for (size_t d = 0; d < in.size(); ++d) off = off * in[d] + (in[d] == 1 ? 0 : idx[lead + d]);
  return off;
}

enum class Op { Add, Sub, Mul };

TensorD binary_reference(Op op, const TensorD& a, const TensorD& b, const Shape& out_shape) {
  TensorD out = TensorD::empty(out_shape);
  std::vector<int64_t> idx(out_shape.size(), 0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i;
    for (int d = static_cast<int>(out_shape.size()) - 1; d >= 0; --d) {
      idx[d] = rem % out_shape[d];
      rem /= out_shape[d];
    }
    const double x = a.data()[broadcast_offset(a.shape(), idx)];
    const double y = b.data()[broadcast_offset(b.shape(), idx)];
    out.data()[i] = op == Op::Add ? x + y : op == Op::Sub ? x - y : x * y;
  }
  return out;
}

template <class T>
Tensor<T> apply(Op op, const Tensor<T>& a, const Tensor<T>& b) {
  return op == Op::Add ? add(a, b) : op == Op::Sub ? sub(a, b) : mul(a, b);
}

const char* op_name(Op op) { return op == Op::Add ? "add" : op == Op::Sub ? "sub" : "mul"; }

struct BroadcastCase {
  const char* what;
  Shape a, b, out;
};

// Every broadcast the ViT uses, plus the general strided case and a
// scalar-like operand; each is also run with the operands swapped.
const std::vector<BroadcastCase> kCases = {
    {"same shape", {2, 3, 4}, {2, 3, 4}, {2, 3, 4}},
    {"bias (C) over (B,N,C)", {2, 3, 4}, {4}, {2, 3, 4}},
    {"pos_embed (1,N,C) over (B,N,C)", {2, 3, 4}, {1, 3, 4}, {2, 3, 4}},
    {"per-sample (B,1,1) over (B,N,C)", {2, 3, 4}, {2, 1, 1}, {2, 3, 4}},
    {"keepdim-style (B,N,1) over (B,N,C)", {2, 3, 4}, {2, 3, 1}, {2, 3, 4}},
    {"middle (B,1,C) over (B,N,C)", {2, 3, 4}, {2, 1, 4}, {2, 3, 4}},
    {"general (3,1,5) with (1,4,1)", {3, 1, 5}, {1, 4, 1}, {3, 4, 5}},
    {"general, ranks differ (2,1,3,1) with (4,1,1)", {2, 1, 3, 1}, {4, 1, 1}, {2, 4, 3, 1}},
    {"scalar-like (1) over (B,N,C)", {2, 3, 4}, {1}, {2, 3, 4}},
    {"scalar-like (1,1,1) over (B,N,C)", {2, 3, 4}, {1, 1, 1}, {2, 3, 4}},
    {"rank-2 (N,C) over (B,N,C)", {2, 3, 4}, {3, 4}, {2, 3, 4}},
};
}  // namespace

TEST_CASE("add/sub/mul forward match a float64 broadcasting reference", "[ops][elementwise]") {
  uint64_t seed = 100;
  for (const auto& c : kCases)
    for (bool swapped : {false, true})
      for (Op op : {Op::Add, Op::Sub, Op::Mul}) {
        const Shape& sa = swapped ? c.b : c.a;
        const Shape& sb = swapped ? c.a : c.b;
        INFO(op_name(op) << " " << c.what << ": " << to_string(sa) << " with " << to_string(sb));
        const auto a = test::randn<double>(sa, ++seed), b = test::randn<double>(sb, ++seed);
        const TensorD out = apply(op, a, b);
        REQUIRE(out.shape() == c.out);
        // Exactly one rounding per element, same as the reference.
        test::require_close(out, binary_reference(op, a, b, c.out), 0, 0);
      }
}

TEST_CASE("add/sub/mul backward of both operands match finite differences", "[ops][elementwise]") {
  for (const auto& c : kCases)
    for (bool swapped : {false, true})
      for (Op op : {Op::Add, Op::Sub, Op::Mul}) {
        const Shape& sa = swapped ? c.b : c.a;
        const Shape& sb = swapped ? c.a : c.b;
        INFO(op_name(op) << " " << c.what << ": " << to_string(sa) << " with " << to_string(sb));
        test::check_gradients([op](const std::vector<TensorD>& in) { return apply(op, in[0], in[1]); },
                              {test::randn<double>(sa, 7), test::randn<double>(sb, 8)});
      }
}

TEST_CASE("broadcast gradients are the sums over the broadcast dims", "[ops][elementwise]") {
  // d/d bias of sum(x + bias) is the count of rows each bias element was added to.
  auto x = test::randn<double>({2, 3, 4}, 1);
  auto bias = TensorD::zeros({4}), pos = TensorD::zeros({1, 3, 4}), s = TensorD::ones({2, 1, 1});
  for (auto* t : {&x, &bias, &pos, &s}) t->set_requires_grad(true);
  sum(mul(add(add(x, bias), pos), s)).backward();
  test::require_close(bias.grad(), TensorD::full({4}, 6.0), 0, 0);
  test::require_close(pos.grad(), TensorD::full({1, 3, 4}, 2.0), 0, 0);
  test::require_close(x.grad(), TensorD::ones({2, 3, 4}), 0, 0);
  // d/ds_b = Σ_{n,c} x[b,n,c] (bias and pos are zero)
  for (int64_t b = 0; b < 2; ++b) {
    double acc = 0;
    for (int64_t i = 0; i < 12; ++i) acc += x.data()[b * 12 + i];
    REQUIRE(s.grad()(b, 0, 0) == Approx(acc).epsilon(1e-12));
  }
}

TEST_CASE("add/sub/mul in float32 agree with float64 at ViT sizes", "[ops][elementwise]") {
  const struct { Shape a, b; } cases[] = {
      {{4, 65, 192}, {4, 65, 192}}, {{4, 65, 192}, {192}},      {{4, 65, 192}, {1, 65, 192}},
      {{4, 65, 192}, {4, 1, 1}},    {{4, 65, 192}, {4, 65, 1}}, {{6, 1, 50}, {1, 40, 1}}};
  uint64_t seed = 300;
  for (const auto& c : cases)
    for (Op op : {Op::Add, Op::Sub, Op::Mul}) {
      INFO(op_name(op) << " " << to_string(c.a) << " with " << to_string(c.b));
      const auto a = test::randn<double>(c.a, ++seed), b = test::randn<double>(c.b, ++seed);
      const Shape out = broadcast_shapes(c.a, c.b, "test");
      test::require_close(apply(op, to_float(a), to_float(b)), binary_reference(op, a, b, out), 1e-6, 1e-6);
    }
}

TEST_CASE("add and sub gradients of the two operands are independent tensors", "[ops][elementwise]") {
  // add's backward hands the output gradient through unchanged; it must not end
  // up as one shared buffer behind both operands' .grad.
  SECTION("a later contribution to one operand leaves the other alone") {
    // loss = sum(w ⊙ ((x + y) + x)): dx = 2w, dy = w
    auto x = test::randn<double>({2, 3}, 1), y = test::randn<double>({2, 3}, 2);
    const auto w = test::randn<double>({2, 3}, 3);
    x.set_requires_grad(true);
    y.set_requires_grad(true);
    sum(mul(add(add(x, y), x), w)).backward();
    test::require_close(x.grad(), scale(w, 2.0), 0, 0);
    test::require_close(y.grad(), w, 0, 0);
  }
  SECTION("two backward calls accumulate once into each operand") {
    auto x = test::randn<double>({2, 3}, 4), y = test::randn<double>({2, 3}, 5);
    const auto w = test::randn<double>({2, 3}, 6);
    x.set_requires_grad(true);
    y.set_requires_grad(true);
    sum(mul(add(x, y), w)).backward();
    sum(mul(add(x, y), w)).backward();
    test::require_close(x.grad(), scale(w, 2.0), 0, 0);
    test::require_close(y.grad(), scale(w, 2.0), 0, 0);
  }
  SECTION("zeroing one operand's gradient leaves the other's") {
    auto p = test::randn<double>({3}, 10), q = test::randn<double>({3}, 11);
    const auto w = test::randn<double>({3}, 12);
    p.set_requires_grad(true);
    q.set_requires_grad(true);
    sum(mul(add(p, q), w)).backward();
    p.zero_grad();
    test::require_close(p.grad(), TensorD::zeros({3}), 0, 0);
    test::require_close(q.grad(), w, 0, 0);
  }
}

TEST_CASE("scale and tanh forward match float64, backward matches finite differences",
          "[ops][elementwise]") {
  const auto x = test::randn<double>({3, 4, 5}, 31, 1.5);
  const TensorD s = scale(x, -0.37), t = vit::tanh(x);
  REQUIRE(s.shape() == x.shape());
  REQUIRE(t.shape() == x.shape());
  TensorD s_ref = TensorD::empty(x.shape()), t_ref = TensorD::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    s_ref.data()[i] = x.data()[i] * -0.37;
    t_ref.data()[i] = std::tanh(x.data()[i]);
  }
  test::require_close(s, s_ref, 0, 0);
  test::require_close(t, t_ref, 0, 0);
  test::require_close(scale(to_float(x), -0.37), s_ref, 1e-6, 1e-6);
  test::require_close(vit::tanh(to_float(x)), t_ref, 1e-6, 1e-6);

  test::check_gradients([](const std::vector<TensorD>& in) { return scale(in[0], -0.37); },
                        {test::randn<double>({2, 3, 4}, 32)});
  test::check_gradients([](const std::vector<TensorD>& in) { return vit::tanh(in[0]); },
                        {test::randn<double>({2, 3, 4}, 33, 1.5)});
  // Composed: tanh(scale(x)) * y + x, x used twice
  test::check_gradients(
      [](const std::vector<TensorD>& in) { return add(mul(vit::tanh(scale(in[0], 0.5)), in[1]), in[0]); },
      {test::randn<double>({3, 4}, 34), test::randn<double>({4}, 35)});
}

TEST_CASE("add/sub/mul reject shapes that cannot be broadcast", "[ops][elementwise][errors]") {
  const auto a = test::randn<float>({2, 3, 4}, 1);
  REQUIRE_THROWS_WITH(add(a, test::randn<float>({3}, 2)),
                      Catch::Contains("add: shapes (2,3,4) and (3) cannot be broadcast"));
  REQUIRE_THROWS_WITH(sub(a, test::randn<float>({3, 4, 4}, 2)),
                      Catch::Contains("sub: shapes (2,3,4) and (3,4,4) cannot be broadcast"));
  REQUIRE_THROWS_WITH(mul(test::randn<float>({2, 1, 5}, 3), test::randn<float>({3, 4}, 4)),
                      Catch::Contains("mul: shapes (2,1,5) and (3,4) cannot be broadcast"));
  REQUIRE_THROWS_AS(a + test::randn<float>({5}, 5), vit::Error);
}
