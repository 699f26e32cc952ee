// Checks every float micro-kernel of the packed GEMM this build has (AVX2,
// AVX-512) against a double-precision reference over all transpose
// combinations, edge shapes, alpha/beta variants and padded leading dims, and
// that results are bitwise reproducible and independent of the thread count.
// The bf16 kernel (AVX512-BF16) has its own cases in test_gemm_bf16_kernel.cpp.
#include <catch2/catch.hpp>

#include "vit/ops/detail/gemm_avx512.hpp"
#include "vit/ops/detail/sgemm_avx2.hpp"

#if VIT_HAVE_SGEMM_AVX2

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using sgemm_fn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, const float*, float*);
struct named_kernel {
  const char* name;
  sgemm_fn fn;
};
// The kernels under test; each TEST_CASE runs for every one.
std::vector<named_kernel> kernels() {
  std::vector<named_kernel> all{{"avx2", &vit::ops::detail::sgemm_avx2}};
#if VIT_HAVE_SGEMM_AVX512
  all.push_back({"avx512", &vit::ops::detail::sgemm_avx512});
#endif
  return all;
}
sgemm_fn current_kernel = nullptr;  // the kernel of the current pass

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
           const float* bias = nullptr, float* a_sums = nullptr) {
  current_kernel(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, a_sums);
}

struct gemm_case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;  // extra elements per row on top of the row length
};

struct gemm_data {
  std::vector<float> a, b, c;
  int64_t lda, ldb, ldc;
};

gemm_data make_data(const gemm_case& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  gemm_data d;
  const int64_t a_rows = g.ta ? g.k : g.m, a_cols = g.ta ? g.m : g.k;
  const int64_t b_rows = g.tb ? g.n : g.k, b_cols = g.tb ? g.k : g.n;
  d.lda = a_cols + g.pad;
  d.ldb = b_cols + g.pad;
  d.ldc = g.n + g.pad;
  d.a.resize(static_cast<size_t>(std::max<int64_t>(a_rows * d.lda, 1)));
  d.b.resize(static_cast<size_t>(std::max<int64_t>(b_rows * d.ldb, 1)));
  d.c.resize(static_cast<size_t>(g.m * d.ldc));
  for (auto& x : d.a) x = dist(rng);
  for (auto& x : d.b) x = dist(rng);
  if (g.beta == 0.0f) {
    for (auto& x : d.c) x = std::numeric_limits<float>::quiet_NaN();
  } else {
    for (auto& x : d.c) x = dist(rng);
  }
  return d;
}

void run(const gemm_case& g, gemm_data& d) {
  sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda, d.b.data(),
                               d.ldb, g.beta, d.c.data(), d.ldc);
}

// Returns the number of elements outside tolerance; padding must be untouched.
// Big products are checked on a row sample (always including the last, edge
// row) so that the double reference stays within a few million multiply-adds.
int64_t check_against_reference(const gemm_case& g, uint32_t seed) {
  gemm_data d = make_data(g, seed);
  const std::vector<float> c0 = d.c;
  run(g, d);
  const int64_t row_step = std::max<int64_t>(1, g.m * g.n * g.k / (4 << 20));
  int64_t bad = 0;
  for (int64_t i = 0; i < g.m; ++i) {
    if (i % row_step != 0 && i != g.m - 1) continue;
    for (int64_t j = 0; j < g.n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int64_t k = 0; k < g.k; ++k) {
        const double a = g.ta ? d.a[k * d.lda + i] : d.a[i * d.lda + k];
        const double b = g.tb ? d.b[j * d.ldb + k] : d.b[k * d.ldb + j];
        ref += a * b;
        mag += std::abs(a * b);
      }
      const double old = c0[i * d.ldc + j];
      ref *= g.alpha;
      mag *= std::abs(g.alpha);
      if (g.beta != 0.0f) {
        ref += g.beta * old;
        mag += std::abs(g.beta * old);
      }
      const double got = d.c[i * d.ldc + j];
      if (!(std::abs(got - ref) <= 1e-5 * mag + 1e-6)) ++bad;
    }
    for (int64_t j = g.n; j < d.ldc; ++j) {
      const float got = d.c[i * d.ldc + j], was = c0[i * d.ldc + j];
      if (std::memcmp(&got, &was, sizeof(float)) != 0) ++bad;
    }
  }
  return bad;
}

}  // namespace

// A TEST_CASE whose body runs once per kernel, with `sgemm` set to it.
#define KERNEL_TEST_CASE(test_name, test_tags) \
  KERNEL_TEST_CASE_IMPL(test_name, test_tags, INTERNAL_CATCH_UNIQUE_NAME(kernel_body))
#define KERNEL_TEST_CASE_IMPL(test_name, test_tags, body) \
  static void body();                              \
  TEST_CASE(test_name, test_tags) {                \
    for (const named_kernel& k : kernels()) {      \
      INFO("kernel " << k.name);                   \
      current_kernel = k.fn;                       \
      body();                                      \
    }                                              \
  }                                                \
  static void body()

KERNEL_TEST_CASE("packed sgemm matches a double reference", "[ops][gemm]") {
  // Tiny (the plain path), single tiles, partial tiles on every side, several
  // K slices (513), single rows/columns, and a 4 KiB row stride (K = 1024).
  const int64_t shapes[][3] = {
      {1, 1, 1},      {1, 3, 7},      {3, 1, 7},      {7, 7, 7},     {5, 17, 3},
      {6, 16, 1},     {6, 16, 8},     {13, 33, 9},    {31, 40, 32},  {65, 65, 64},
      {64, 65, 32},   {37, 129, 260}, {100, 50, 300}, {150, 70, 513}, {197, 300, 77},
      {1, 300, 200},  {300, 1, 200},  {289, 35, 270}, {13, 40, 1024},
      // Deep K under a small C: cut into two K halves (an odd K here).
      {23, 41, 4099}};
  const float alphas_betas[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.75f, 0.5f}};
  for (const auto& s : shapes) {
    for (int combo = 0; combo < 4; ++combo) {
      for (int v = 0; v < 3; ++v) {
        // Padded leading dims alternate across the variants to halve the run time.
        const int64_t pad = (combo + v) % 2 == 0 ? 0 : 5;
        const gemm_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2],
                          alphas_betas[v][0], alphas_betas[v][1], pad};
        INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k
                   << " alpha=" << g.alpha << " beta=" << g.beta << " pad=" << g.pad);
        CHECK(check_against_reference(g, static_cast<uint32_t>(s[0] * 131 + s[1] * 7 + s[2])) == 0);
      }
    }
  }
}

KERNEL_TEST_CASE("packed sgemm handles ViT-sized products", "[ops][gemm]") {
  // Patch-embedding / qkv shaped: tokens x 192 times (576 x 192)^T, and the
  // weight-gradient form with the long token axis as K.
  const gemm_case cases[] = {
      {false, true, 8320, 576, 192, 1.0f, 0.0f, 0},
      {true, false, 576, 192, 8320, 1.0f, 1.0f, 0},
      {false, false, 1040, 192, 576, 1.0f, 0.0f, 3},
      // Few rows, many columns: threads split the column panels instead.
      {true, false, 7, 2000, 300, 1.0f, 0.5f, 2},
  };
  for (const auto& g : cases) {
    INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
    CHECK(check_against_reference(g, 7u) == 0);
  }
}

KERNEL_TEST_CASE("packed sgemm adds a bias row where C is first written", "[ops][gemm]") {
  // Tiny (plain loop), edge tiles, several K slices (800), threaded sizes; every
  // transpose form and alpha/beta variant against a double reference.
  const int64_t shapes[][3] = {{1, 1, 1},     {3, 5, 2},     {6, 16, 8},     {13, 33, 9},
                               {65, 65, 64},  {37, 129, 260}, {150, 70, 800}, {289, 35, 270},
                               {1000, 290, 300}};
  const float alphas_betas[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.75f, 0.5f}};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const auto& s : shapes) {
    std::vector<float> bias(static_cast<size_t>(s[1]));
    for (auto& x : bias) x = dist(rng);
    for (int combo = 0; combo < 4; ++combo) {
      for (int v = 0; v < 3; ++v) {
        const gemm_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2],
                          alphas_betas[v][0], alphas_betas[v][1], (combo + v) % 2 == 0 ? 0 : 3};
        INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k
                   << " alpha=" << g.alpha << " beta=" << g.beta << " pad=" << g.pad);
        gemm_data d = make_data(g, static_cast<uint32_t>(s[0] + s[1] + s[2]));
        const std::vector<float> c0 = d.c;
        sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda,
                                     d.b.data(), d.ldb, g.beta, d.c.data(), d.ldc, bias.data());
        const int64_t row_step = std::max<int64_t>(1, g.m / 64);
        int64_t bad = 0;
        for (int64_t i = 0; i < g.m; ++i) {
          if (i % row_step != 0 && i != g.m - 1) continue;
          for (int64_t j = 0; j < g.n; ++j) {
            double ref = 0.0, mag = 0.0;
            for (int64_t k = 0; k < g.k; ++k) {
              const double a = g.ta ? d.a[k * d.lda + i] : d.a[i * d.lda + k];
              const double b = g.tb ? d.b[j * d.ldb + k] : d.b[k * d.ldb + j];
              ref += a * b;
              mag += std::abs(a * b);
            }
            ref = g.alpha * ref + bias[j];
            mag = std::abs(g.alpha) * mag + std::abs(bias[j]);
            if (g.beta != 0.0f) {
              ref += g.beta * c0[i * d.ldc + j];
              mag += std::abs(g.beta * c0[i * d.ldc + j]);
            }
            if (!(std::abs(d.c[i * d.ldc + j] - ref) <= 1e-5 * mag + 1e-6)) ++bad;
          }
          for (int64_t j = g.n; j < d.ldc; ++j)
            if (std::memcmp(&d.c[i * d.ldc + j], &c0[i * d.ldc + j], sizeof(float)) != 0) ++bad;
        }
        CHECK(bad == 0);

        if (g.alpha == 1.0f && g.beta == 0.0f) {
          // What linear did before: prefill C with the bias, then beta = 1. Same bits.
          gemm_data e = make_data(g, static_cast<uint32_t>(s[0] + s[1] + s[2]));
          for (int64_t i = 0; i < g.m; ++i) std::copy_n(bias.data(), g.n, e.c.data() + i * e.ldc);
          sgemm(g.ta, g.tb, g.m, g.n, g.k, 1.0f, e.a.data(), e.lda,
                                       e.b.data(), e.ldb, 1.0f, e.c.data(), e.ldc);
          for (int64_t i = 0; i < g.m; ++i)
            CHECK(std::memcmp(d.c.data() + i * d.ldc, e.c.data() + i * e.ldc,
                              g.n * sizeof(float)) == 0);
        }
      }
    }
  }
}

KERNEL_TEST_CASE("packed sgemm with a bias and nothing to multiply writes beta*C + bias", "[ops][gemm]") {
  std::vector<float> a(1, 1.0f), b(1, 1.0f), c(4 * 5, 2.0f), bias = {1, 2, 3, 4, 5};
  sgemm(false, false, 4, 5, 0, 1.0f, a.data(), 1, b.data(), 5, 0.5f,
                               c.data(), 5, bias.data());
  for (int64_t i = 0; i < 20; ++i) CHECK(c[i] == 1.0f + bias[i % 5]);
  std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
  sgemm(false, false, 4, 5, 3, 0.0f, a.data(), 1, b.data(), 5, 0.0f,
                               c.data(), 5, bias.data());
  for (int64_t i = 0; i < 20; ++i) CHECK(c[i] == bias[i % 5]);
}

KERNEL_TEST_CASE("packed sgemm adds the row sums of op(A) when asked", "[ops][gemm]") {
  // Weight-gradient shapes (deep K, several slices) and small/edge ones, both
  // A layouts; a_sums accumulates (+=) and ignores alpha; C is unaffected.
  const int64_t shapes[][3] = {{1, 1, 1},    {3, 5, 2},     {7, 9, 13},     {13, 33, 9},
                               {65, 40, 64}, {192, 48, 2000}, {200, 30, 801}, {37, 16, 8320}};
  for (const auto& s : shapes) {
    for (int combo = 0; combo < 4; ++combo) {
      const gemm_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2], 0.5f, 1.0f,
                        combo % 2 == 0 ? 0 : 3};
      INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
      gemm_data d = make_data(g, static_cast<uint32_t>(s[0] * 3 + s[2]));
      gemm_data plain = d;
      std::vector<float> sums(static_cast<size_t>(g.m), 1.5f);
      sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda,
                                   d.b.data(), d.ldb, g.beta, d.c.data(), d.ldc, nullptr,
                                   sums.data());
      run(g, plain);
      CHECK(std::memcmp(d.c.data(), plain.c.data(), d.c.size() * sizeof(float)) == 0);
      int64_t bad = 0;
      for (int64_t i = 0; i < g.m; ++i) {
        double ref = 1.5, mag = 1.5;
        for (int64_t k = 0; k < g.k; ++k) {
          const double a = g.ta ? d.a[k * d.lda + i] : d.a[i * d.lda + k];
          ref += a;
          mag += std::abs(a);
        }
        if (!(std::abs(sums[i] - ref) <= 1e-6 * mag)) ++bad;
      }
      CHECK(bad == 0);
    }
  }
#ifdef _OPENMP
  // Bitwise the same on 1 to 4 threads (the blocks differ, the sums must not).
  const gemm_case g{true, false, 576, 192, 8320, 1.0f, 1.0f, 0};
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3, 4}) {
    omp_set_num_threads(threads);
    gemm_data d = make_data(g, 9u);
    std::vector<float> sums(static_cast<size_t>(g.m), 0.0f);
    sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda,
                                 d.b.data(), d.ldb, g.beta, d.c.data(), d.ldc, nullptr,
                                 sums.data());
    results.push_back(sums);
  }
  omp_set_num_threads(saved);
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
  CHECK(results[0] == results[3]);
#endif
  // Nothing to multiply (alpha 0, or N 0): the sums are still added.
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b(6, 1.0f), c(4, 7.0f), sums(2, 0.0f);
  sgemm(false, false, 2, 2, 3, 0.0f, a.data(), 3, b.data(), 2, 1.0f,
                               c.data(), 2, nullptr, sums.data());
  CHECK(sums == std::vector<float>{6, 15});
  for (float x : c) CHECK(x == 7.0f);
  sgemm(true, false, 2, 0, 2, 1.0f, a.data(), 3, b.data(), 1, 0.0f,
                               c.data(), 1, nullptr, sums.data());
  CHECK(sums == std::vector<float>{6 + 5, 15 + 7});
}

KERNEL_TEST_CASE("packed sgemm with K == 0 scales C by beta", "[ops][gemm]") {
  std::vector<float> a(1), b(1), c(4 * 5, 2.0f);
  sgemm(false, false, 4, 5, 0, 1.0f, a.data(), 1, b.data(), 5, 0.5f,
                               c.data(), 5);
  for (float x : c) CHECK(x == 1.0f);
  std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
  sgemm(false, false, 4, 5, 0, 1.0f, a.data(), 1, b.data(), 5, 0.0f,
                               c.data(), 5);
  for (float x : c) CHECK(x == 0.0f);
}

KERNEL_TEST_CASE("packed sgemm is deterministic and thread-count independent", "[ops][gemm]") {
  const gemm_case cases[] = {
      {false, true, 1000, 290, 300, 1.0f, 0.0f, 0},
      {true, false, 200, 190, 2000, 0.5f, 1.0f, 1},
      {true, true, 333, 333, 333, 1.0f, 0.25f, 0},
      {false, false, 97, 1001, 515, 1.0f, 0.0f, 2},
      {false, true, 7, 2000, 300, 1.0f, 0.0f, 0},
      // Deep K (a weight gradient): the K halves run on two threads, or one.
      {true, false, 192, 192, 8320, 1.0f, 0.5f, 0},
      {false, true, 40, 70, 5000, 0.5f, 0.0f, 3},
  };
  for (const auto& g : cases) {
    INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
    gemm_data first = make_data(g, 11u);
    gemm_data second = first;
    run(g, first);
    run(g, second);
    CHECK(std::memcmp(first.c.data(), second.c.data(), first.c.size() * sizeof(float)) == 0);
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
    gemm_data one = make_data(g, 11u);
    gemm_data two = one;
    omp_set_num_threads(1);
    run(g, one);
    omp_set_num_threads(2);
    run(g, two);
    gemm_data three = make_data(g, 11u), four = three;
    omp_set_num_threads(3);
    run(g, three);
    omp_set_num_threads(4);
    run(g, four);
    // With a bias row too.
    std::vector<float> bias(static_cast<size_t>(g.n));
    for (size_t j = 0; j < bias.size(); ++j) bias[j] = 0.01f * static_cast<float>(j % 97) - 0.4f;
    gemm_data bias1 = make_data(g, 12u), bias3 = bias1;
    for (auto [threads, d] : {std::pair{1, &bias1}, std::pair{3, &bias3}}) {
      omp_set_num_threads(threads);
      sgemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d->a.data(), d->lda,
                                   d->b.data(), d->ldb, g.beta, d->c.data(), d->ldc, bias.data());
    }
    omp_set_num_threads(saved);
    CHECK(std::memcmp(one.c.data(), two.c.data(), one.c.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one.c.data(), three.c.data(), one.c.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one.c.data(), four.c.data(), one.c.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one.c.data(), first.c.data(), one.c.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(bias1.c.data(), bias3.c.data(), bias1.c.size() * sizeof(float)) == 0);
#endif
  }
}

#ifdef _OPENMP
KERNEL_TEST_CASE("packed sgemm called inside a parallel region matches the threaded call", "[ops][gemm]") {
  // Attention-style use: independent per-head products from an omp loop run
  // single-threaded each and must reproduce the top-level (threaded) result.
  const gemm_case cases[] = {
      {false, true, 65, 65, 64, 0.125f, 0.0f, 0},
      {false, false, 65, 64, 65, 1.0f, 0.0f, 0},
      {true, false, 200, 150, 100, 1.0f, 1.0f, 3},
  };
  for (const auto& g : cases) {
    INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
    constexpr int heads = 6;
    std::vector<gemm_data> outside, inside;
    for (int h = 0; h < heads; ++h) outside.push_back(make_data(g, 100u + h));
    inside = outside;
    for (auto& d : outside) run(g, d);
#pragma omp parallel for num_threads(2)
    for (int h = 0; h < heads; ++h) run(g, inside[h]);
    for (int h = 0; h < heads; ++h)
      CHECK(std::memcmp(outside[h].c.data(), inside[h].c.data(),
                        outside[h].c.size() * sizeof(float)) == 0);
  }
}
#endif

#endif  // VIT_HAVE_SGEMM_AVX2
