// reshape, permute, transpose, expand, concat, select: forward against float64
// index loops, backward by finite differences, reshape's storage sharing, and
// the misuse errors.
#include "support/check.hpp"

#include <numeric>

using namespace vit;

namespace {
/// Multi-index of flat offset i in a row-major shape.
std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t off = 0;
  for (size_t d = 0; d < s.size(); ++d) off = off * s[d] + idx[d];
  return off;
}

// out[i0..] = x[j] with j[perm[d]] = i[d]
TensorD permute_reference(const TensorD& x, const std::vector<int>& perm) {
  Shape os(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) os[d] = x.shape()[perm[d]];
  TensorD out = TensorD::empty(os);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto oi = unravel(i, os);
    std::vector<int64_t> xi(perm.size());
    for (size_t d = 0; d < perm.size(); ++d) xi[perm[d]] = oi[d];
    out.data()[i] = x.data()[ravel(xi, x.shape())];
  }
  return out;
}

TensorD expand_reference(const TensorD& x, const Shape& s) {
  TensorD out = TensorD::empty(s);
  const size_t lead = s.size() - x.dim();
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto oi = unravel(i, s);
    std::vector<int64_t> xi(x.dim());
    for (size_t d = 0; d < xi.size(); ++d) xi[d] = x.shape()[d] == 1 ? 0 : oi[lead + d];
    out.data()[i] = x.data()[ravel(xi, x.shape())];
  }
  return out;
}

TensorD concat_reference(const std::vector<TensorD>& xs, int dim) {
  Shape os = xs[0].shape();
  os[dim] = 0;
  for (const auto& x : xs) os[dim] += x.shape()[dim];
  TensorD out = TensorD::empty(os);
  for (int64_t i = 0; i < out.numel(); ++i) {
    auto idx = unravel(i, os);
    size_t k = 0;
    while (idx[dim] >= xs[k].shape()[dim]) idx[dim] -= xs[k++].shape()[dim];
    out.data()[i] = xs[k].data()[ravel(idx, xs[k].shape())];
  }
  return out;
}

TensorD select_reference(const TensorD& x, int dim, int64_t index) {
  Shape os = x.shape();
  os.erase(os.begin() + dim);
  TensorD out = TensorD::empty(os);
  for (int64_t i = 0; i < out.numel(); ++i) {
    auto idx = unravel(i, os);
    idx.insert(idx.begin() + dim, index);
    out.data()[i] = x.data()[ravel(idx, x.shape())];
  }
  return out;
}
}  // namespace

TEST_CASE("reshape keeps the data, infers -1 and shares storage", "[ops][shape_ops]") {
  const auto x = test::randn<double>({2, 3, 4}, 1);
  for (const Shape& target : {Shape{6, 4}, Shape{-1, 4}, Shape{4, -1, 2}, Shape{24}, Shape{-1},
                              Shape{2, 12, 1}, Shape{1, 2, 3, 4}}) {
    INFO("reshape to " << to_string(target));
    const TensorD y = reshape(x, target);
    Shape expect = target;
    for (auto& d : expect)
      if (d == -1) d = 24 / -std::accumulate(target.begin(), target.end(), int64_t{1}, std::multiplies<>());
    REQUIRE(y.shape() == expect);
    REQUIRE(y.shares_storage(x));
    REQUIRE(y.data() == x.data());
    REQUIRE(y.to_vector() == x.to_vector());
  }
  REQUIRE(reshape(x, {4, -1}).shape() == Shape{4, 6});
  // A view: a write through the input is seen through the reshape.
  const TensorD y = reshape(x, {-1});
  x.data()[5] = 42.0;
  REQUIRE(y(5) == 42.0);
}

TEST_CASE("reshape of a tensor that requires grad is still a view", "[ops][shape_ops]") {
  auto x = test::randn<double>({2, 6}, 2);
  x.set_requires_grad(true);
  const TensorD y = reshape(x, {3, -1});
  REQUIRE(y.shape() == Shape{3, 4});
  REQUIRE(y.shares_storage(x));
  REQUIRE(y.requires_grad());
}

TEST_CASE("permute and transpose match a float64 index loop", "[ops][shape_ops]") {
  const auto x = test::randn<double>({2, 3, 4, 5}, 3);
  for (const std::vector<int>& perm : {std::vector<int>{0, 2, 1, 3}, {3, 1, 0, 2}, {0, 1, 2, 3}, {1, 3, 2, 0}}) {
    INFO("perm " << perm[0] << perm[1] << perm[2] << perm[3]);
    const TensorD y = permute(x, perm);
    test::require_close(y, permute_reference(x, perm), 0, 0);
    REQUIRE_FALSE(y.shares_storage(x));
  }
  // Negative dims count from the end.
  test::require_close(permute(x, {-1, 0, -2, 1}), permute_reference(x, {3, 0, 2, 1}), 0, 0);
  test::require_close(transpose(x, 1, 2), permute_reference(x, {0, 2, 1, 3}), 0, 0);
  test::require_close(transpose(x, -1, -2), permute_reference(x, {0, 1, 3, 2}), 0, 0);
  test::require_close(transpose(x, 0, 3), permute_reference(x, {3, 1, 2, 0}), 0, 0);
  // The attention layout change (B,N,3,H,D) -> (3,B,H,N,D), at a size that threads.
  const auto qkv = test::randn<double>({4, 65, 3, 4, 48}, 4);
  test::require_close(permute(qkv, {2, 0, 3, 1, 4}), permute_reference(qkv, {2, 0, 3, 1, 4}), 0, 0);
  // A hand-checked element: y[i,j] = x[j,i]
  const auto m = TensorD::from_data({2, 3}, {0, 1, 2, 3, 4, 5});
  const TensorD mt = transpose(m, 0, 1);
  REQUIRE(mt.shape() == Shape{3, 2});
  REQUIRE(mt.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("expand matches a float64 broadcast loop", "[ops][shape_ops]") {
  const struct { Shape in, out; } cases[] = {
      {{1, 1, 4}, {3, 1, 4}}, {{3, 1}, {2, 3, 4}}, {{1}, {2, 3}}, {{2, 1, 4}, {2, 5, 4}}, {{2, 3}, {2, 3}}};
  uint64_t seed = 10;
  for (const auto& c : cases) {
    INFO("expand " << to_string(c.in) << " to " << to_string(c.out));
    const auto x = test::randn<double>(c.in, ++seed);
    const TensorD y = expand(x, c.out);
    REQUIRE(y.shape() == c.out);
    test::require_close(y, expand_reference(x, c.out), 0, 0);
  }
}

TEST_CASE("concat matches a float64 index loop along every dim", "[ops][shape_ops]") {
  const auto a = test::randn<double>({2, 3, 4}, 20);
  SECTION("dim 0") {
    const auto b = test::randn<double>({1, 3, 4}, 21), c = test::randn<double>({3, 3, 4}, 22);
    const TensorD y = concat<double>({a, b, c}, 0);
    REQUIRE(y.shape() == Shape{6, 3, 4});
    test::require_close(y, concat_reference({a, b, c}, 0), 0, 0);
  }
  SECTION("dim 1") {
    const auto b = test::randn<double>({2, 5, 4}, 23);
    const TensorD y = concat<double>({a, b}, 1);
    REQUIRE(y.shape() == Shape{2, 8, 4});
    test::require_close(y, concat_reference({a, b}, 1), 0, 0);
  }
  SECTION("dim 2 and dim -1") {
    const auto b = test::randn<double>({2, 3, 1}, 24), c = test::randn<double>({2, 3, 2}, 25);
    const TensorD y = concat<double>({a, b, c}, 2);
    REQUIRE(y.shape() == Shape{2, 3, 7});
    test::require_close(y, concat_reference({a, b, c}, 2), 0, 0);
    test::require_close(concat<double>({a, b, c}, -1), y, 0, 0);
  }
  SECTION("cls token: concat({expand(cls,(B,1,C)), x}, 1)") {
    const auto cls = test::randn<double>({1, 1, 4}, 26);
    const TensorD y = concat<double>({expand(cls, {2, 1, 4}), a}, 1);
    REQUIRE(y.shape() == Shape{2, 4, 4});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 4; ++c) {
        REQUIRE(y(b, 0, c) == cls(0, 0, c));
        for (int64_t n = 0; n < 3; ++n) REQUIRE(y(b, n + 1, c) == a(b, n, c));
      }
  }
}

TEST_CASE("select matches a float64 index loop", "[ops][shape_ops]") {
  const auto x = test::randn<double>({2, 3, 4}, 30);
  SECTION("dim 1 index 0: the cls token x[:, 0]") {
    const TensorD y = select(x, 1, 0);
    REQUIRE(y.shape() == Shape{2, 4});
    test::require_close(y, select_reference(x, 1, 0), 0, 0);
  }
  SECTION("negative index counts from the end") {
    test::require_close(select(x, 1, -1), select_reference(x, 1, 2), 0, 0);
    test::require_close(select(x, 2, -4), select_reference(x, 2, 0), 0, 0);
  }
  SECTION("dim 0, dim 2 and negative dim") {
    test::require_close(select(x, 0, 1), select_reference(x, 0, 1), 0, 0);
    test::require_close(select(x, 2, 3), select_reference(x, 2, 3), 0, 0);
    test::require_close(select(x, -1, 2), select_reference(x, 2, 2), 0, 0);
  }
}

TEST_CASE("shape ops backward match finite differences", "[ops][shape_ops]") {
  using In = const std::vector<TensorD>&;
  SECTION("reshape") {
    test::check_gradients([](In in) { return reshape(in[0], {3, -1}); }, {test::randn<double>({2, 3, 2}, 40)});
  }
  SECTION("reshape then an op that reads the view") {
    test::check_gradients([](In in) { return mul(reshape(in[0], {2, 6}), reshape(in[0], {2, -1})); },
                          {test::randn<double>({3, 4}, 41)});
  }
  SECTION("permute") {
    test::check_gradients([](In in) { return permute(in[0], {2, 0, 3, 1}); },
                          {test::randn<double>({2, 3, 2, 3}, 42)});
  }
  SECTION("transpose") {
    test::check_gradients([](In in) { return transpose(in[0], -1, 0); }, {test::randn<double>({2, 3, 4}, 43)});
  }
  SECTION("expand") {
    test::check_gradients([](In in) { return expand(in[0], {2, 3, 4}); }, {test::randn<double>({3, 1}, 44)});
    test::check_gradients([](In in) { return expand(in[0], {3, 2, 4}); }, {test::randn<double>({1, 2, 1}, 45)});
  }
  SECTION("concat along 0, 1, 2") {
    for (int dim : {0, 1, 2}) {
      INFO("dim " << dim);
      Shape sb = {2, 3, 2};
      sb[dim] = 1;
      test::check_gradients([dim](In in) { return concat<double>({in[0], in[1], in[2]}, dim); },
                            {test::randn<double>({2, 3, 2}, 46), test::randn<double>(sb, 47),
                             test::randn<double>({2, 3, 2}, 48)});
    }
  }
  SECTION("cls-token concat") {
    test::check_gradients(
        [](In in) { return concat<double>({expand(in[0], {2, 1, 3}), in[1]}, 1); },
        {test::randn<double>({1, 1, 3}, 49), test::randn<double>({2, 4, 3}, 50)});
  }
  SECTION("concat with one input that needs no gradient") {
    const auto fixed = test::randn<double>({2, 2}, 51);
    test::check_gradients([fixed](In in) { return concat<double>({fixed, in[0]}, 0); },
                          {test::randn<double>({3, 2}, 52)});
  }
  SECTION("select") {
    test::check_gradients([](In in) { return select(in[0], 1, 0); }, {test::randn<double>({2, 3, 4}, 53)});
    test::check_gradients([](In in) { return select(in[0], 1, -1); }, {test::randn<double>({2, 3, 4}, 54)});
    test::check_gradients([](In in) { return select(in[0], 0, 1); }, {test::randn<double>({2, 3, 4}, 55)});
    test::check_gradients([](In in) { return select(in[0], -1, 2); }, {test::randn<double>({2, 3, 4}, 56)});
  }
}

TEST_CASE("shape ops reject misuse with a message naming op and shapes", "[ops][shape_ops][errors]") {
  const auto x = test::randn<float>({2, 3, 4}, 1);
  // reshape
  REQUIRE_THROWS_WITH(reshape(x, {5, 5}), Catch::Contains("reshape: cannot reshape (2,3,4) (24 elements) to (5,5)"));
  REQUIRE_THROWS_WITH(reshape(x, {5, -1}), Catch::Contains("reshape: cannot reshape (2,3,4) to (5,-1)"));
  REQUIRE_THROWS_WITH(reshape(x, {-1, -1}), Catch::Contains("reshape: more than one -1 in (-1,-1)"));
  REQUIRE_THROWS_WITH(reshape(x, {-2, -12}), Catch::Contains("reshape: negative size in (-2,-12)"));
  // permute / transpose
  REQUIRE_THROWS_WITH(permute(x, {0, 0, 1}), Catch::Contains("permute: dimension 0 repeated"));
  REQUIRE_THROWS_WITH(permute(x, {0, 2, -1}), Catch::Contains("permute: dimension 2 repeated"));
  REQUIRE_THROWS_WITH(permute(x, {1, 0}), Catch::Contains("permute: 2 dims for shape (2,3,4)"));
  REQUIRE_THROWS_WITH(permute(x, {0, 1, 3}), Catch::Contains("permute: dim 3 out of range for rank 3"));
  REQUIRE_THROWS_WITH(transpose(x, 0, 3), Catch::Contains("transpose: dim 3 out of range for rank 3"));
  // expand
  REQUIRE_THROWS_WITH(expand(x, {2, 5, 4}), Catch::Contains("expand: shapes (2,3,4) and (2,5,4) cannot be broadcast"));
  REQUIRE_THROWS_WITH(expand(test::randn<float>({3, 1}, 2), {3}), Catch::Contains("expand: cannot expand (3,1) to (3)"));
  // concat
  REQUIRE_THROWS_WITH(concat<float>({x, test::randn<float>({2, 5, 3}, 3)}, 1),
                      Catch::Contains("concat: shapes (2,3,4) and (2,5,3) differ outside dim 1"));
  REQUIRE_THROWS_WITH(concat<float>({x, test::randn<float>({3, 4}, 4)}, 0),
                      Catch::Contains("concat: ranks differ: (2,3,4) and (3,4)"));
  REQUIRE_THROWS_WITH(concat<float>({}, 0), Catch::Contains("concat: no tensors"));
  REQUIRE_THROWS_WITH(concat<float>({x, x}, 3), Catch::Contains("concat: dim 3 out of range for rank 3"));
  // select
  REQUIRE_THROWS_WITH(select(x, 1, 3), Catch::Contains("select: index 3 out of range for dim 1 of shape (2,3,4)"));
  REQUIRE_THROWS_WITH(select(x, 1, -4), Catch::Contains("select: index -4 out of range for dim 1 of shape (2,3,4)"));
  REQUIRE_THROWS_WITH(select(x, 3, 0), Catch::Contains("select: dim 3 out of range for rank 3"));
}
