// The dropout kernels (cuda/kernels/dropout.cuh) under the CPU stand-in
// (emu.hpp), with the launchers' geometry. The mask must be bit for bit
// vit::Generator's draw on the CPU (uniform(c) >= p) for several seeds,
// counters (one wrapping past 2⁶⁴) and p, including p = 0, p = 1, NaN and a p
// sitting exactly on a drawn uniform, where the integer threshold must agree
// with the double comparison to the last bit. Then the group mask against a
// plain loop, and both against the CPU dropout and drop_path ops.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "emu_check.hpp"
#include "kernels/dropout.cuh"

namespace {

namespace k = vit::cuda::kernels;
using vit::test::poisoned;
using vit::test::random_vector;
using vit::test::require_close;

/// The emulated mask: the launcher's threshold and geometry.
std::vector<float> gpu_mask(int64_t groups, uint64_t seed, uint64_t counter0, double p,
                            float keep_scale, int64_t max_blocks = k::kDropoutMaxBlocks) {
  std::vector<float> mask = poisoned(static_cast<size_t>(groups));
  const auto g = k::dropout_launch(groups, max_blocks);
  vit_emu::launch(g.grid, g.block, g.smem, k::dropout_mask_kernel, mask.data(), groups, seed,
                  counter0, static_cast<const uint64_t*>(nullptr), k::keep_threshold(p),
                  keep_scale);
  return mask;
}

/// vit::Generator's mask, as the CPU op draws it.
std::vector<float> cpu_mask(int64_t groups, uint64_t seed, uint64_t counter0, double p,
                            float keep_scale) {
  const vit::Generator gen(seed);
  std::vector<float> mask(static_cast<size_t>(groups));
  for (int64_t i = 0; i < groups; ++i)
    mask[i] = gen.uniform(counter0 + static_cast<uint64_t>(i)) >= p ? keep_scale : 0.f;
  return mask;
}


}  // namespace

TEST_CASE("emu generator_bits is vit::Generator::bits", "[cuda-emu][dropout]") {
  for (uint64_t seed : {uint64_t(0), uint64_t(1), uint64_t(42), ~uint64_t(0)}) {
    const vit::Generator gen(seed);
    for (uint64_t c : {uint64_t(0), uint64_t(1), uint64_t(977), ~uint64_t(0) - 1, ~uint64_t(0)})
      CHECK(k::generator_bits(seed, c) == gen.bits(c));
  }
}

TEST_CASE("emu keep_threshold is the double comparison, exactly", "[cuda-emu][dropout]") {
  const uint64_t kNone = uint64_t(1) << 53;
  CHECK(k::keep_threshold(0.0) == 0);
  CHECK(k::keep_threshold(-0.0) == 0);
  CHECK(k::keep_threshold(-0.5) == 0);
  CHECK(k::keep_threshold(1.0) == kNone);
  CHECK(k::keep_threshold(2.0) == kNone);
  CHECK(k::keep_threshold(std::numeric_limits<double>::infinity()) == kNone);
  CHECK(k::keep_threshold(std::numeric_limits<double>::quiet_NaN()) == kNone);
  CHECK(k::keep_threshold(0.5) == (uint64_t(1) << 52));
  CHECK(k::keep_threshold(std::numeric_limits<double>::denorm_min()) == 1);
  CHECK(k::keep_threshold(std::nextafter(1.0, 0.0)) == kNone - 1);
  // For every u on the 53-bit grid and p near it: u·2⁻⁵³ >= p  <=>  u >= threshold(p).
  const vit::Generator gen(3);
  for (uint64_t c = 0; c < 2000; ++c) {
    const uint64_t u = gen.bits(c) >> 11;
    const double uniform = gen.uniform(c);
    for (double p : {uniform, std::nextafter(uniform, 2.0), std::nextafter(uniform, -1.0),
                     uniform + 0x1.0p-53, uniform - 0x1.0p-54}) {
      INFO("u " << u << ", p " << p);
      CHECK((uniform >= p) == (u >= k::keep_threshold(p)));
    }
  }
}

TEST_CASE("emu dropout mask is bitwise vit::Generator's draw", "[cuda-emu][dropout]") {
  for (uint64_t seed : {uint64_t(0), uint64_t(7), uint64_t(0x9e3779b97f4a7c15ull)})
    for (uint64_t counter0 : {uint64_t(0), uint64_t(123457), ~uint64_t(0) - 600})  // the last wraps
      for (double p : {0.0, 0.1, 0.5, 0.9, 1.0}) {
        const float keep_scale = p < 1.0 ? static_cast<float>(1.0 / (1.0 - p)) : 0.f;
        for (int64_t groups : {1, 31, 1000}) {
          INFO("seed " << seed << ", counter0 " << counter0 << ", p " << p << ", groups "
                       << groups);
          const std::vector<float> got = gpu_mask(groups, seed, counter0, p, keep_scale);
          REQUIRE(vit::test::bitwise_equal(got, cpu_mask(groups, seed, counter0, p, keep_scale)));
          if (p == 0.0) REQUIRE(got == std::vector<float>(groups, keep_scale));  // all kept
          if (p == 1.0) REQUIRE(got == std::vector<float>(groups, 0.f));         // none kept
        }
      }
  // A grid of one block: each thread walks the grid-stride path.
  REQUIRE(vit::test::bitwise_equal(gpu_mask(5000, 11, 99, 0.3, 1.f / 0.7f, 1),
                        cpu_mask(5000, 11, 99, 0.3, 1.f / 0.7f)));
  // NaN keeps nothing, as `uniform >= NaN` is false.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  REQUIRE(vit::test::bitwise_equal(gpu_mask(100, 1, 0, nan, 2.f), cpu_mask(100, 1, 0, nan, 2.f)));
}

TEST_CASE("emu dropout mask agrees on a p sitting exactly on a drawn uniform",
          "[cuda-emu][dropout]") {
  const uint64_t seed = 2024, counter0 = 50;
  const vit::Generator gen(seed);
  for (int64_t j : {0, 5, 63}) {
    const double u = gen.uniform(counter0 + j);
    for (double p : {u, std::nextafter(u, 2.0), std::nextafter(u, -1.0)}) {
      INFO("element " << j << ", p " << p << ", u " << u);
      const std::vector<float> got = gpu_mask(64, seed, counter0, p, 3.f);
      REQUIRE(vit::test::bitwise_equal(got, cpu_mask(64, seed, counter0, p, 3.f)));
      CHECK((got[j] != 0.f) == (p <= u));
    }
  }
}

TEST_CASE("emu apply_group_mask multiplies each group by its mask value", "[cuda-emu][dropout]") {
  uint64_t seed = 8000;
  for (int64_t inner : {1, 3, 4, 8, 197})
    for (int64_t groups : {1, 2, 5, 33})
      for (size_t offset : {0, 1})
        for (int64_t max_blocks : {k::kDropoutMaxBlocks, int64_t(1)}) {
          const int64_t n = groups * inner;
          INFO("inner " << inner << ", groups " << groups << ", offset " << offset
                        << ", max blocks " << max_blocks);
          const std::vector<float> x = random_vector(n, seed += 10);
          std::vector<float> mask = random_vector(groups, seed + 1);
          mask[0] = 0.f;
          std::vector<float> ref(n);
          for (int64_t i = 0; i < n; ++i) ref[i] = x[i] * mask[i / inner];

          std::vector<float> xb = poisoned(n + offset), out = poisoned(n + offset);
          std::copy(x.begin(), x.end(), xb.begin() + offset);
          const float* xp = xb.data() + offset;
          float* op = out.data() + offset;
          const auto l = k::apply_group_mask_geometry(xp, op, n, inner, max_blocks);
          vit_emu::launch(l.grid, l.block, l.smem, l.kernel, xp, mask.data(), op, n, inner);
          require_close(std::vector<float>(out.begin() + offset, out.end()), ref, 0, 0,
                        "apply_group_mask");
          for (size_t i = 0; i < offset; ++i) CHECK(std::isnan(out[i]));
          // in place: out == x
          float* xin = xb.data() + offset;
          const auto li = k::apply_group_mask_geometry(xin, xin, n, inner, max_blocks);
          vit_emu::launch(li.grid, li.block, li.smem, li.kernel, static_cast<const float*>(xin),
                          mask.data(), xin, n, inner);
          require_close(std::vector<float>(xb.begin() + offset, xb.end()), ref, 0, 0,
                        "apply_group_mask in place");
        }
}

TEST_CASE("emu dropout and drop_path reproduce the CPU ops' outputs bitwise",
          "[cuda-emu][dropout]") {
  // The CPU ops reserve their counters from the generator; an input of ones
  // makes their output the mask itself, repeated over each group.
  for (double p : {0.1, 0.5}) {
    const uint64_t seed = 77;
    vit::Generator cpu_gen(seed);
    cpu_gen.reserve(1000);  // a generator part-way through a run
    const uint64_t counter0 = cpu_gen.offset();
    const vit::TensorF ones = vit::TensorF::full({6, 5, 7}, 1.f);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
    INFO("p " << p);

    const std::vector<float> cpu_out = vit::dropout(ones, p, true, cpu_gen).to_vector();
    REQUIRE(vit::test::bitwise_equal(gpu_mask(6 * 5 * 7, seed, counter0, p, keep_scale), cpu_out));

    const uint64_t counter1 = cpu_gen.offset();
    const std::vector<float> cpu_path = vit::drop_path(ones, p, true, cpu_gen).to_vector();
    const std::vector<float> mask = gpu_mask(6, seed, counter1, p, keep_scale);
    std::vector<float> x(6 * 5 * 7, 1.f), out = poisoned(6 * 5 * 7);
    const auto l = k::apply_group_mask_geometry(x.data(), out.data(), 6 * 5 * 7, 35);
    vit_emu::launch(l.grid, l.block, l.smem, l.kernel, static_cast<const float*>(x.data()),
                    mask.data(), out.data(), int64_t(6 * 5 * 7), int64_t(35));
    REQUIRE(vit::test::bitwise_equal(out, cpu_path));
  }
}
