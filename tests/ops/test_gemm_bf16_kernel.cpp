// The AVX512-BF16 GEMM kernel (gemm_avx512.hpp): bf16 operands, float32
// accumulation. Against a double reference on the same bf16 values over every
// transpose form, odd and even K (the pair padding), edge tiles, several K
// slices and the split-K path; the bf16-C variant against rounding the float
// result once; row sums; bitwise repeatability across thread counts.
#include <catch2/catch.hpp>

#include "vit/ops/detail/gemm_avx512.hpp"

#if VIT_HAVE_SBGEMM_AVX512

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using vit::bf16;
namespace detail = vit::ops::detail;

struct bf16_case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;
};

struct bf16_data {
  std::vector<bf16> a, b;
  std::vector<float> c, bias;
  int64_t lda, ldb, ldc;
};

bf16_data make(const bf16_case& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  bf16_data d;
  d.lda = (g.ta ? g.m : g.k) + g.pad;
  d.ldb = (g.tb ? g.k : g.n) + g.pad;
  d.ldc = g.n + g.pad;
  d.a.resize(static_cast<size_t>(std::max<int64_t>((g.ta ? g.k : g.m) * d.lda, 1)));
  d.b.resize(static_cast<size_t>(std::max<int64_t>((g.tb ? g.n : g.k) * d.ldb, 1)));
  for (auto& x : d.a) x = bf16(dist(rng));
  for (auto& x : d.b) x = bf16(dist(rng));
  d.c.resize(static_cast<size_t>(g.m * d.ldc));
  for (auto& x : d.c) x = g.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
  d.bias.resize(static_cast<size_t>(g.n));
  for (auto& x : d.bias) x = dist(rng);
  return d;
}

double elem(const std::vector<bf16>& x, bool t, int64_t ld, int64_t r, int64_t c) {
  return static_cast<double>(static_cast<float>(t ? x[c * ld + r] : x[r * ld + c]));
}

// Elements outside |got - ref| <= 1e-5 * sum|terms| (+ tiny); padding untouched.
int64_t count_bad(const bf16_case& g, const bf16_data& d, const std::vector<float>& c0,
                  const std::vector<float>& got, bool with_bias) {
  int64_t bad = 0;
  const int64_t row_step = std::max<int64_t>(1, g.m * g.n * g.k / (4 << 20));
  for (int64_t i = 0; i < g.m; ++i) {
    if (i % row_step != 0 && i != g.m - 1) continue;
    for (int64_t j = 0; j < g.n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int64_t k = 0; k < g.k; ++k) {
        const double p = elem(d.a, g.ta, d.lda, i, k) * elem(d.b, g.tb, d.ldb, k, j);
        ref += p;
        mag += std::abs(p);
      }
      ref *= g.alpha;
      mag *= std::abs(g.alpha);
      if (g.beta != 0.0f) {
        ref += g.beta * static_cast<double>(c0[i * d.ldc + j]);
        mag += std::abs(g.beta * static_cast<double>(c0[i * d.ldc + j]));
      }
      if (with_bias) {
        ref += d.bias[j];
        mag += std::abs(d.bias[j]);
      }
      if (!(std::abs(got[i * d.ldc + j] - ref) <= 1e-5 * mag + 1e-6)) ++bad;
    }
    for (int64_t j = g.n; j < d.ldc; ++j)
      if (std::memcmp(&got[i * d.ldc + j], &c0[i * d.ldc + j], sizeof(float)) != 0) ++bad;
  }
  return bad;
}

std::vector<float> run_float(const bf16_case& g, const bf16_data& d, bool with_bias,
                             float* sums = nullptr) {
  std::vector<float> c = d.c;
  detail::sbgemm_avx512(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda, d.b.data(), d.ldb,
                        g.beta, c.data(), d.ldc, with_bias ? d.bias.data() : nullptr, sums);
  return c;
}

}  // namespace

TEST_CASE("bf16 GEMM kernel matches a double reference on the same bf16 values", "[ops][gemm][bf16]") {
  // Tiny (plain loop), single/edge tiles, odd K (a padded pair), several K
  // slices (2000 > 1536), deep K cut in halves (4099), ViT-like shapes.
  const int64_t shapes[][3] = {{1, 1, 1},    {3, 5, 3},      {8, 48, 2},     {8, 48, 7},
                               {13, 50, 9},  {65, 65, 64},   {37, 129, 261}, {150, 70, 2001},
                               {23, 41, 4099}, {520, 576, 192}, {1, 300, 200}, {300, 1, 17}};
  const float alphas_betas[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.75f, 0.5f}};
  for (const auto& s : shapes) {
    for (int combo = 0; combo < 4; ++combo) {
      for (int v = 0; v < 3; ++v) {
        const bf16_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2],
                          alphas_betas[v][0], alphas_betas[v][1], (combo + v) % 2 == 0 ? 0 : 5};
        INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k
                   << " alpha=" << g.alpha << " beta=" << g.beta << " pad=" << g.pad);
        const bf16_data d = make(g, static_cast<uint32_t>(s[0] * 131 + s[1] * 7 + s[2] + combo));
        const bool with_bias = v == 1;
        CHECK(count_bad(g, d, d.c, run_float(g, d, with_bias), with_bias) == 0);
      }
    }
  }
}

TEST_CASE("bf16 GEMM kernel with bf16 C rounds the float32 result once", "[ops][gemm][bf16]") {
  const int64_t shapes[][3] = {{1, 1, 1}, {8, 48, 7}, {13, 50, 9}, {65, 65, 64}, {300, 200, 384}};
  for (const auto& s : shapes) {
    for (int combo = 0; combo < 4; ++combo) {
      for (const float beta : {0.0f, 0.5f}) {
        const bf16_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2], 1.25f, beta, combo % 2 ? 3 : 0};
        INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k << " beta=" << beta);
        bf16_data d = make(g, 3u + static_cast<uint32_t>(s[2]));
        // C holds bf16 values, so the float path starts from the same old C.
        for (auto& x : d.c) x = std::isnan(x) ? x : static_cast<float>(bf16(x));
        REQUIRE(detail::sbgemm_writes_bf16(g.ta, g.tb, g.m, g.n, g.k));
        const std::vector<float> wide = run_float(g, d, true);
        std::vector<bf16> c16(d.c.size());
        for (size_t i = 0; i < c16.size(); ++i) c16[i] = bf16::from_bits(0x7fc1);  // NaN: never read at beta 0
        if (beta != 0.0f)
          for (size_t i = 0; i < c16.size(); ++i) c16[i] = bf16(d.c[i]);
        std::vector<float> sums(static_cast<size_t>(g.m), 0.5f), sums_wide = sums;
        (void)run_float(g, d, true, sums_wide.data());
        detail::sbgemm_avx512_to_bf16(g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda, d.b.data(),
                                      d.ldb, beta, c16.data(), d.ldc, d.bias.data(), sums.data());
        int64_t differ = 0;
        for (int64_t i = 0; i < g.m; ++i)
          for (int64_t j = 0; j < d.ldc; ++j) {
            const bf16 want = j < g.n ? bf16(wide[i * d.ldc + j]) : c16[i * d.ldc + j];
            if (c16[i * d.ldc + j].bits != want.bits) ++differ;
          }
        CHECK(differ == 0);
        CHECK(sums == sums_wide);
      }
    }
  }
  // Deep K is several passes: not offered for bf16 C.
  CHECK_FALSE(detail::sbgemm_writes_bf16(true, false, 192, 192, 8320));
  CHECK_FALSE(detail::sbgemm_writes_bf16(false, false, 64, 64, 5000));
}

TEST_CASE("bf16 GEMM kernel row sums and thread-count independence", "[ops][gemm][bf16]") {
  const int64_t shapes[][3] = {{3, 5, 3}, {65, 40, 63}, {192, 48, 2001}, {37, 16, 8321}};
  for (const auto& s : shapes) {
    for (int combo = 0; combo < 4; ++combo) {
      const bf16_case g{(combo & 1) != 0, (combo & 2) != 0, s[0], s[1], s[2], 0.5f, 1.0f, combo % 2 ? 3 : 0};
      INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
      const bf16_data d = make(g, 17u + static_cast<uint32_t>(s[2]));
      std::vector<float> sums(static_cast<size_t>(g.m), 1.5f);
      const std::vector<float> with = run_float(g, d, false, sums.data());
      CHECK(with == run_float(g, d, false));  // C does not depend on the sums
      int64_t bad = 0;
      for (int64_t i = 0; i < g.m; ++i) {
        double ref = 1.5, mag = 1.5;
        for (int64_t k = 0; k < g.k; ++k) {
          ref += elem(d.a, g.ta, d.lda, i, k);
          mag += std::abs(elem(d.a, g.ta, d.lda, i, k));
        }
        if (!(std::abs(sums[i] - ref) <= 1e-6 * mag)) ++bad;
      }
      CHECK(bad == 0);
    }
  }
#ifdef _OPENMP
  const bf16_case cases[] = {{false, true, 1000, 290, 300, 1.0f, 0.0f, 0},
                             {true, false, 192, 192, 8320, 1.0f, 0.5f, 0},
                             {false, false, 97, 1001, 515, 1.0f, 0.0f, 2}};
  const int saved = omp_get_max_threads();
  for (const auto& g : cases) {
    INFO("ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k);
    const bf16_data d = make(g, 23u);
    std::vector<std::vector<float>> results, sums;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      sums.emplace_back(static_cast<size_t>(g.m), 0.0f);
      results.push_back(run_float(g, d, true, sums.back().data()));
    }
    omp_set_num_threads(saved);
    CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)) == 0);
    CHECK(sums[0] == sums[1]);
    CHECK(sums[0] == sums[2]);
  }
#endif
}

#endif  // VIT_HAVE_SBGEMM_AVX512
