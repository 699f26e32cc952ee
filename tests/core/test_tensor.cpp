// Core: Tensor factories, element access, views, printing, errors, the
// counter-based Generator and the CPU caching allocator.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "support/check.hpp"

using namespace vit;
using Catch::Contains;

namespace {
struct Moments {
  double mean = 0, std = 0, min = 0, max = 0;
};
template <class T>
Moments moments(const Tensor<T>& t) {
  Moments m;
  const int64_t n = t.numel();
  m.min = m.max = t.data()[0];
  for (int64_t i = 0; i < n; ++i) {
    const double v = t.data()[i];
    m.mean += v;
    m.min = std::min(m.min, v);
    m.max = std::max(m.max, v);
  }
  m.mean /= n;
  for (int64_t i = 0; i < n; ++i) m.std += (t.data()[i] - m.mean) * (t.data()[i] - m.mean);
  m.std = std::sqrt(m.std / (n - 1));
  return m;
}
template <class T>
bool same_values(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no vit::Error thrown>";
}
}  // namespace

// ---- factories -------------------------------------------------------------

TEST_CASE("zeros, ones and full fill every element", "[core][tensor]") {
  const TensorF z = TensorF::zeros({2, 3}), o = TensorF::ones({2, 3});
  const TensorD f = TensorD::full({4, 1, 2}, -2.5);
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dim() == 2);
  CHECK(f.numel() == 8);
  for (float v : z.to_vector()) CHECK(v == 0.0f);
  for (float v : o.to_vector()) CHECK(v == 1.0f);
  for (double v : f.to_vector()) CHECK(v == -2.5);
  // A 0-dim tensor holds one element; a zero-sized dim holds none.
  const TensorD s = TensorD::full({}, 3.25);
  CHECK(s.numel() == 1);
  CHECK(s.dim() == 0);
  CHECK(s.item() == 3.25);
  CHECK(TensorF::zeros({3, 0, 2}).numel() == 0);
  CHECK(z.device() == Device::CPU);
  CHECK_FALSE(z.requires_grad());
}

TEST_CASE("arange follows torch.arange", "[core][tensor]") {
  SECTION("integer count") {
    CHECK(TensorD::arange(5).to_vector() == std::vector<double>{0, 1, 2, 3, 4});
    CHECK(TensorF::arange(0).numel() == 0);
  }
  SECTION("start, end, integer step") {
    CHECK(TensorD::arange(2, 9, 3).to_vector() == std::vector<double>{2, 5, 8});
    CHECK(TensorD::arange(5, 0, -2).to_vector() == std::vector<double>{5, 3, 1});
  }
  SECTION("fractional step: ceil((end-start)/step) elements, start + i*step") {
    // torch.arange(1, 2.5, 0.5) -> [1.0, 1.5, 2.0]
    CHECK(TensorD::arange(1, 2.5, 0.5).to_vector() == std::vector<double>{1.0, 1.5, 2.0});
    // torch.arange(-1, 1, 0.3) has ceil(6.67) = 7 elements, the last -1 + 6*0.3 = 0.8
    const TensorD a = TensorD::arange(-1, 1, 0.3);
    REQUIRE(a.numel() == 7);
    for (int64_t i = 0; i < 7; ++i) CHECK(a.data()[i] == -1.0 + 0.3 * static_cast<double>(i));
    // torch.arange(0, 1, 0.1) has exactly 10 elements (1.0 excluded)
    const TensorF b = TensorF::arange(0, 1, 0.1);
    REQUIRE(b.numel() == 10);
    CHECK(b.data()[9] == Approx(0.9f).margin(1e-7));
  }
  SECTION("empty range") {
    CHECK(TensorD::arange(3, 3).numel() == 0);
    CHECK(TensorD::arange(3, 3).shape() == Shape{0});
    CHECK(TensorD::arange(0.5, 0.5, 0.25).numel() == 0);
  }
  SECTION("zero step is an error") {
    CHECK_THROWS_WITH(TensorD::arange(0, 1, 0), Contains("arange: step must be non-zero"));
  }
}

TEST_CASE("from_data copies the values in row-major order", "[core][tensor]") {
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  const TensorF t = TensorF::from_data({2, 3}, v);
  v[0] = 100;  // a copy, not a view of the vector
  CHECK(t(0, 0) == 1);
  CHECK(t(0, 2) == 3);
  CHECK(t(1, 0) == 4);
  CHECK(t(1, 2) == 6);
  const double raw[4] = {0.5, 1.5, 2.5, 3.5};
  const TensorD d = TensorD::from_data({2, 2}, raw);
  CHECK(d(1, 1) == 3.5);
  CHECK_THROWS_WITH(TensorF::from_data({2, 2}, std::vector<float>{1, 2, 3}),
                    Contains("from_data: 3 values for shape (2,2)"));
}

TEST_CASE("uniform: values in lo <= v < hi, mean and std of U(lo, hi)", "[core][tensor][rng]") {
  Generator g(7);
  const TensorD t = TensorD::uniform({100000}, -1.0, 3.0, g);
  const Moments m = moments(t);
  CHECK(m.min >= -1.0);
  CHECK(m.max < 3.0);
  CHECK(m.min < -0.99);  // covers the whole interval
  CHECK(m.max > 2.99);
  // mean 1, std 4/sqrt(12) = 1.1547; standard errors ~0.004 and ~0.002
  CHECK(m.mean == Approx(1.0).margin(0.02));
  CHECK(m.std == Approx(4.0 / std::sqrt(12.0)).epsilon(0.01));
  CHECK(g.offset() == 100000);  // one counter per element
}

TEST_CASE("normal: sample mean and std", "[core][tensor][rng]") {
  Generator g(11);
  const TensorF t = TensorF::normal({100000}, 2.0, 0.5, g);
  const Moments m = moments(t);
  CHECK(m.mean == Approx(2.0).margin(0.01));  // standard error 0.0016
  CHECK(m.std == Approx(0.5).epsilon(0.01));
  // Tails exist: a normal, not something bounded.
  CHECK(m.min < 2.0 - 4 * 0.5 + 1.0);
  CHECK(m.max > 2.0 + 2 * 0.5);
  // Fraction inside one sigma is 68.27%.
  int64_t inside = 0;
  for (float v : t.to_vector()) inside += std::abs(v - 2.0) < 0.5;
  CHECK(static_cast<double>(inside) / t.numel() == Approx(0.6827).margin(0.01));
}

TEST_CASE("trunc_normal: bounds hold and the std is right", "[core][tensor][rng]") {
  SECTION("timm init N(0, 0.02) cut at +-2: practically untruncated") {
    Generator g(3);
    const TensorF t = TensorF::trunc_normal({100000}, 0.0, 0.02, -2.0, 2.0, g);
    const Moments m = moments(t);
    CHECK(m.min >= -2.0);
    CHECK(m.max <= 2.0);
    CHECK(m.std == Approx(0.02).epsilon(0.03));
    CHECK(m.mean == Approx(0.0).margin(0.001));
  }
  SECTION("a real truncation at +-1 sigma") {
    Generator g(4);
    const TensorD t = TensorD::trunc_normal({100000}, 1.0, 2.0, -1.0, 3.0, g);
    const Moments m = moments(t);
    CHECK(m.min >= -1.0);
    CHECK(m.max <= 3.0);
    // N(0,1) cut to [-1,1] has variance 1 - 2 phi(1) / (Phi(1) - Phi(-1)) = 0.291125.
    const double phi1 = std::exp(-0.5) / std::sqrt(2 * M_PI);
    const double mass = std::erf(1.0 / std::sqrt(2.0));
    CHECK(m.std == Approx(2.0 * std::sqrt(1.0 - 2.0 * phi1 / mass)).epsilon(0.02));
    CHECK(m.mean == Approx(1.0).margin(0.02));
  }
  SECTION("bad arguments and bounds without mass") {
    Generator g(5);
    CHECK_THROWS_WITH(TensorF::trunc_normal({3}, 0, 1, 1, -1, g), Contains("trunc_normal: need a < b"));
    CHECK_THROWS_WITH(TensorF::trunc_normal({3}, 0, 0, -1, 1, g), Contains("std > 0"));
    // Bounds 20 sigma out: the redraws give up with an error instead of looping forever.
    CHECK_THROWS_WITH(TensorF::trunc_normal({3}, 0, 1, 20, 21, g),
                      Contains("trunc_normal: bounds [20,21] hold"));
  }
}

TEST_CASE("random factories: same seed same values, different seeds differ", "[core][tensor][rng]") {
  auto draw = [](uint64_t seed) {
    Generator g(seed);
    TensorF u = TensorF::uniform({64}, 0, 1, g);
    TensorF n = TensorF::normal({64}, 0, 1, g);
    TensorF t = TensorF::trunc_normal({64}, 0, 0.02, -2, 2, g);
    return std::vector<TensorF>{u, n, t};
  };
  const auto a = draw(42), b = draw(42), c = draw(43);
  for (int k = 0; k < 3; ++k) {
    INFO("factory " << k);
    CHECK(same_values(a[k], b[k]));
    int64_t equal = 0;
    for (int64_t i = 0; i < 64; ++i) equal += a[k].data()[i] == c[k].data()[i];
    CHECK(equal == 0);
  }
  // Successive fills from one generator continue the stream rather than repeat it.
  Generator g(42);
  const TensorF first = TensorF::normal({64}, 0, 1, g), second = TensorF::normal({64}, 0, 1, g);
  CHECK_FALSE(same_values(first, second));
}

TEST_CASE("Generator state round-trip reproduces the stream", "[core][rng]") {
  Generator g(1234);
  (void)TensorD::normal({37}, 0, 1, g);  // advance somewhere
  (void)g.next_u64();
  const uint64_t seed = g.seed(), offset = g.offset();
  CHECK(seed == 1234);
  CHECK(offset == 38);
  const TensorD n1 = TensorD::normal({16}, 0, 1, g);
  const TensorD t1 = TensorD::trunc_normal({16}, 0, 1, -0.5, 0.5, g);
  const uint64_t u1 = g.next_u64();

  Generator h(999);  // a different generator restored to the saved state
  h.set_state(seed, offset);
  CHECK(same_values(TensorD::normal({16}, 0, 1, h), n1));
  CHECK(same_values(TensorD::trunc_normal({16}, 0, 1, -0.5, 0.5, h), t1));
  CHECK(h.next_u64() == u1);
  CHECK(h.offset() == g.offset());
  // Counter-based: a draw depends only on (seed, counter).
  CHECK(Generator(5).bits(17) == Generator(5).bits(17));
  CHECK(Generator(5).bits(17) != Generator(6).bits(17));
  CHECK(Generator(5).bits(17) != Generator(5).bits(18));
}

TEST_CASE("draws from neighbouring seeds are uncorrelated", "[core][rng]") {
  Generator g1(1), g2(2);
  const TensorD a = TensorD::normal({50000}, 0, 1, g1), b = TensorD::normal({50000}, 0, 1, g2);
  double dot = 0;
  for (int64_t i = 0; i < a.numel(); ++i) dot += a.data()[i] * b.data()[i];
  CHECK(std::abs(dot / a.numel()) < 0.02);  // standard error 0.0045
}

// ---- element access and errors ------------------------------------------

TEST_CASE("element access t(i,j) and at() are row-major and bounds-checked", "[core][tensor]") {
  const TensorF t = TensorF::arange(6).view_as_shape({2, 3});
  CHECK(t(0, 0) == 0);
  CHECK(t(0, 2) == 2);
  CHECK(t(1, 0) == 3);
  CHECK(t.at({1, 2}) == 5);
  t(1, 1) = 42;  // writable
  CHECK(t.data()[4] == 42);
  const TensorD s = TensorD::full({}, 7.0);
  CHECK(s() == 7.0);

  CHECK_THROWS_WITH(t(0, 3), Contains("at: index 3 out of range for dim 1 of shape (2,3)"));
  CHECK_THROWS_WITH(t(2, 0), Contains("at: index 2 out of range for dim 0 of shape (2,3)"));
  CHECK_THROWS_WITH(t(-1, 0), Contains("at: index -1 out of range for dim 0"));
  CHECK_THROWS_WITH(t.at({1}), Contains("at: 1 indices for shape (2,3)"));
  CHECK_THROWS_AS(t(0, 0, 0), Error);
}

TEST_CASE("item() needs exactly one element", "[core][tensor]") {
  CHECK(TensorF::full({1, 1}, 2.5f).item() == 2.5f);
  CHECK_THROWS_WITH(TensorF::zeros({2, 3}).item(),
                    Contains("item: tensor of shape (2,3) has 6 elements"));
  CHECK_THROWS_AS(TensorF::zeros({0}).item(), Error);
}

TEST_CASE("negative dimensions and undefined tensors are errors", "[core][tensor]") {
  CHECK_THROWS_WITH(TensorF::zeros({2, -1}), Contains("negative dimension in shape (2,-1)"));
  CHECK_THROWS_WITH(TensorD::empty({-3}), Contains("negative dimension"));
  CHECK_THROWS_WITH(TensorF::ones({4, -2, 1}), Contains("negative dimension"));
  const TensorF t = TensorF::zeros({2, 3});
  CHECK(t.size(-1) == 3);
  CHECK(t.size(-2) == 2);
  CHECK_THROWS_WITH(t.size(2), Contains("size: dim 2 out of range for rank 2"));
  CHECK_THROWS_WITH(t.size(-3), Contains("size: dim -3 out of range for rank 2"));
  const TensorF undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_THROWS_WITH(undefined.shape(), Contains("use of an undefined tensor"));
}

TEST_CASE("broadcast_shapes: numpy rules and errors", "[core][shape]") {
  CHECK(broadcast_shapes({3, 1}, {1, 4}, "t") == Shape{3, 4});
  CHECK(broadcast_shapes({5, 1, 4}, {3, 1}, "t") == Shape{5, 3, 4});
  CHECK(broadcast_shapes({2, 3}, {3}, "t") == Shape{2, 3});
  CHECK(broadcast_shapes({}, {2, 3}, "t") == Shape{2, 3});
  CHECK(broadcast_shapes({2, 0}, {1}, "t") == Shape{2, 0});
  CHECK_THROWS_WITH(broadcast_shapes({2, 3}, {4}, "add"),
                    Contains("add: shapes (2,3) and (4) cannot be broadcast"));
  CHECK_THROWS_WITH(broadcast_shapes({2, 3, 4}, {3, 3, 4}, "mul"),
                    Contains("mul: shapes (2,3,4) and (3,3,4) cannot be broadcast"));
  CHECK_THROWS_AS(broadcast_shapes({2}, {0}, "sub"), Error);
  CHECK(to_string(Shape{64, 65, 192}) == "(64,65,192)");
  CHECK(to_string(Shape{}) == "()");
  CHECK(normalize_dim(-1, 3, "op") == 2);
  CHECK_THROWS_WITH(normalize_dim(3, 3, "softmax"), Contains("softmax: dim 3 out of range for rank 3"));
}

TEST_CASE("VIT_CHECK throws vit::Error carrying the values and file:line", "[core][error]") {
  int line = 0;
  std::string msg;
  try {
    line = __LINE__; VIT_CHECK(1 + 1 == 3, "linear: x ", Shape{64, 65, 192}, " vs weight ", 7);
  } catch (const Error& e) {
    msg = e.what();
  }
  REQUIRE(line > 0);
  CHECK_THAT(msg, Catch::StartsWith("linear: x (64,65,192) vs weight 7"));
  CHECK_THAT(msg, Contains("test_tensor.cpp:" + std::to_string(line) + "]"));
  // A passing check does nothing; vit::Error is a std::runtime_error.
  CHECK_NOTHROW([] { VIT_CHECK(true, "never"); }());
  CHECK_THROWS_AS([] { VIT_CHECK(false, "x"); }(), std::runtime_error);
  // Errors raised inside the library name the header they come from.
  CHECK_THAT(message_of([] { (void)TensorF::zeros({2}).item(); }), Contains("tensor.hpp:"));
}

// ---- views, copies, printing, devices ----------------------------------

TEST_CASE("view_as_shape and narrow0 share storage, clone does not", "[core][tensor]") {
  const TensorF t = TensorF::arange(12).view_as_shape({3, 4});
  SECTION("view_as_shape") {
    const TensorF v = t.view_as_shape({2, 6});
    CHECK(v.shares_storage(t));
    CHECK(v.data() == t.data());
    CHECK(v.shape() == Shape{2, 6});
    v(1, 0) = -1;  // element 6
    CHECK(t(1, 2) == -1);
    CHECK_THROWS_WITH(t.view_as_shape({5, 2}), Contains("view: cannot view (3,4) as (5,2)"));
  }
  SECTION("narrow0") {
    const TensorF rows = t.narrow0(1, 2);
    CHECK(rows.shares_storage(t));
    CHECK(rows.shape() == Shape{2, 4});
    CHECK(rows.data() == t.data() + 4);
    CHECK(rows(0, 0) == 4);
    CHECK(rows(1, 3) == 11);
    rows(1, 3) = 100;
    CHECK(t(2, 3) == 100);
    // A narrow of a narrow composes offsets; a view of it keeps them.
    const TensorF last = rows.narrow0(1, 1);
    CHECK(last.data() == t.data() + 8);
    CHECK(last.view_as_shape({4}).to_vector() == std::vector<float>{8, 9, 10, 100});
    CHECK(t.narrow0(3, 0).numel() == 0);
    CHECK_THROWS_WITH(t.narrow0(2, 2), Contains("narrow0: rows [2,4) of shape (3,4)"));
    CHECK_THROWS_AS(t.narrow0(-1, 1), Error);
  }
  SECTION("clone") {
    const TensorF c = t.clone();
    CHECK_FALSE(c.shares_storage(t));
    CHECK(c.to_vector() == t.to_vector());
    c(0, 0) = 55;
    CHECK(t(0, 0) == 0);
    // Cloning a view copies only the view's elements.
    const TensorF r = t.narrow0(2, 1).clone();
    CHECK(r.shape() == Shape{1, 4});
    CHECK(r.to_vector() == std::vector<float>{8, 9, 10, 11});
    CHECK(r.storage_use_count() == 1);
  }
  SECTION("copy_from and fill_ write through views") {
    const TensorF row = t.narrow0(0, 1);
    row.fill_(9);
    CHECK(t(0, 3) == 9);
    CHECK(t(1, 0) == 4);
    t.narrow0(2, 1).copy_from(TensorF::full({1, 4}, -3));
    CHECK(t(2, 0) == -3);
    CHECK(t(1, 3) == 7);
    CHECK_THROWS_WITH(row.copy_from(TensorF::zeros({4})),
                      Contains("copy_from: source (4) vs destination (1,4)"));
  }
}

TEST_CASE("printing names shape and dtype", "[core][tensor]") {
  const TensorF f = TensorF::arange(6).view_as_shape({2, 3});
  const std::string s = to_string(f);
  CHECK_THAT(s, Contains("Tensor(shape=(2,3), dtype=float32)"));
  CHECK_THAT(s, Contains("[0, 1, 2]"));
  CHECK_THAT(s, Contains("[3, 4, 5]"));
  CHECK_THAT(to_string(TensorD::zeros({4})), Contains("Tensor(shape=(4), dtype=float64)"));
  TensorF p = TensorF::zeros({1});
  p.set_requires_grad(true);
  CHECK_THAT(to_string(p), Contains("dtype=float32, requires_grad)"));
  CHECK_THAT(to_string(TensorF::zeros({2, 10})), Contains(", ...]"));
  CHECK(to_string(TensorF()) == "Tensor(undefined)");
  std::ostringstream os;
  os << TensorF::zeros({0, 3});
  CHECK_THAT(os.str(), Contains("shape=(0,3)"));
}

TEST_CASE("CUDA is a clear error in a CPU build", "[core][tensor]") {
  const TensorF t = TensorF::ones({2});
  const std::string msg = message_of([&] { (void)t.to(Device::CUDA); });
  CHECK_THAT(msg, Contains("cuda"));
  CHECK_THAT(msg, Contains("not available"));
  CHECK_THROWS_AS(t.to(Device::CUDA), Error);
  CHECK_THROWS_WITH(TensorF::empty({2}, Device::CUDA), Contains("cuda"));
  const TensorF same = t.to(Device::CPU);
  CHECK(same.shares_storage(t));
  CHECK(std::string(device_name(Device::CUDA)) == "cuda");
}

// ---- the caching allocator -------------------------------------------------

TEST_CASE("caching allocator: exact-size reuse, 64-byte alignment, stats", "[core][allocator]") {
  auto& a = CpuCachingAllocator::instance();
  const AllocatorStats s0 = a.stats();
  void* p = a.allocate(100);  // rounds up to 128
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  const AllocatorStats s1 = a.stats();
  CHECK(s1.bytes_in_use == s0.bytes_in_use + 128);
  CHECK(s1.peak_bytes_in_use >= s1.bytes_in_use);
  a.deallocate(p, 100);
  const AllocatorStats s2 = a.stats();
  CHECK(s2.bytes_in_use == s0.bytes_in_use);
  CHECK(s2.bytes_cached == s1.bytes_cached + 128);
  void* q = a.allocate(120);  // same 128-byte bucket: the cached buffer comes back
  CHECK(q == p);
  CHECK(a.stats().system_allocs == s2.system_allocs);
  CHECK(a.stats().bytes_cached == s1.bytes_cached);
  a.deallocate(q, 120);
  void* z = a.allocate(0);  // zero bytes still returns a usable, aligned pointer
  CHECK(z != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(z) % 64 == 0);
  a.deallocate(z, 0);
  a.release_cached();
  CHECK(a.stats().bytes_cached == 0);
  CHECK(a.stats().bytes_in_use == s0.bytes_in_use);
}

TEST_CASE("caching allocator: steady state reaches the system allocator no more", "[core][allocator]") {
  auto& a = CpuCachingAllocator::instance();
  auto step = [] {
    TensorF x = TensorF::zeros({17, 33});
    TensorD y = TensorD::ones({5, 7});
    TensorF z = TensorF::empty({1000});
    TensorF w = x.clone();
    {
      TensorF tmp = TensorF::full({17, 33}, 2.0f);  // same size as x while x lives
      w.copy_from(tmp);
    }
    Generator g(1);
    TensorF n = TensorF::normal({256}, 0, 1, g);
    return static_cast<double>(w(0, 0)) + y(0, 0) + n(0) + z.numel();
  };
  (void)step();  // warm-up fills the free lists
  const AllocatorStats before = a.stats();
  double sink = 0;
  for (int i = 0; i < 20; ++i) sink += step();
  const AllocatorStats after = a.stats();
  CHECK(sink > 0);
  CHECK(after.system_allocs == before.system_allocs);
  CHECK(after.bytes_in_use == before.bytes_in_use);
  CHECK(after.peak_bytes_in_use == before.peak_bytes_in_use);
}
