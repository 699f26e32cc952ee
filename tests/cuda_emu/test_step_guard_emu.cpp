// The kernels of cuda/kernels/step_guard.cuh under the CPU stand-in, against
// what the CPU trainer does on the host: the finite check (std::isfinite on
// loss and gradient norm, the skip flag and the non-finite counters) over a
// sequence of finite, NaN and infinite steps; and the metric sums against
// std::max_element per row, with ties, NaN logits, one class, more rows than
// warps and rows not a multiple of the warp, skipped or not.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "emu_check.hpp"
#include "kernels/step_guard.cuh"

using namespace vit;
namespace k = vit::cuda::kernels;
using vit::test::random_vector;

namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();

/// What cuda::check_step_finite queues, in the stand-in.
void emu_check_finite(const float* loss, const float* norm, float* skip, int64_t* counters) {
  const auto g = k::check_step_finite_launch();
  vit_emu::launch(g.grid, g.block, g.smem, k::check_step_finite_kernel, loss, norm, skip, counters);
}

/// What cuda::accumulate_metrics queues; block_threads overrides the block
/// (a multiple of 32) to vary the rows per warp.
void emu_metrics(const std::vector<float>& logits, const std::vector<int32_t>& labels, float loss,
                 const float* skip, int64_t B, int64_t K, std::vector<double>& acc,
                 unsigned block_threads = 0) {
  const auto g = k::metrics_launch();
  vit_emu::launch(g.grid, block_threads ? dim3(block_threads) : g.block, g.smem,
                  k::accumulate_metrics_kernel, logits.data(), labels.data(), &loss, skip, B, K,
                  acc.data());
}

/// The trainer's count on the host: std::max_element per row.
int64_t cpu_correct(const std::vector<float>& logits, const std::vector<int32_t>& labels, int64_t B,
                    int64_t K) {
  int64_t correct = 0;
  for (int64_t b = 0; b < B; ++b) {
    const float* row = logits.data() + b * K;
    correct += std::max_element(row, row + K) - row == labels[b];
  }
  return correct;
}

}  // namespace

TEST_CASE("emu check_step_finite: skip flag and counters over a sequence", "[cuda-emu][step_guard]") {
  struct Step {
    float loss, norm;
    bool with_norm;
  };
  const Step steps[] = {{2.3f, 1.5f, true},  {kNaNf, 1.f, true},   {1.f, kInff, true},
                        {-kInff, 0.f, true},  {1.f, -kInff, true},  {2.f, 3.f, true},
                        {1.f, kNaNf, true},   {0.5f, 0.f, false},  {kNaNf, 1.f, false},
                        {3.4e38f, 3.4e38f, true}, {1.f, 2.f, true}};
  int64_t counters[cuda::kStepCounters] = {};
  int64_t ref_nonfinite = 0, ref_run = 0, ref_applied = 0, max_run = 0;
  for (size_t i = 0; i < std::size(steps); ++i) {
    const Step& s = steps[i];
    INFO("step " << i << " loss " << s.loss << " norm " << s.norm << (s.with_norm ? "" : " (no norm)"));
    // The trainer's rule on the host.
    const bool bad = !std::isfinite(s.loss) || (s.with_norm && !std::isfinite(s.norm));
    ref_nonfinite += bad, ref_run = bad ? ref_run + 1 : 0, ref_applied += !bad;
    max_run = std::max(max_run, ref_run);
    float skip = kNaNf;  // poisoned
    emu_check_finite(&s.loss, s.with_norm ? &s.norm : nullptr, &skip, counters);
    CHECK(skip == (bad ? 1.f : 0.f));
    CHECK(counters[cuda::kNonfiniteSteps] == ref_nonfinite);
    CHECK(counters[cuda::kNonfiniteRun] == ref_run);
    CHECK(counters[cuda::kUpdatesApplied] == ref_applied);
    CHECK(counters[cuda::kLongestRun] == max_run);
  }
  CHECK(ref_nonfinite == 6);  // the sequence covers what it says
  CHECK(max_run == 4);
  CHECK(counters[cuda::kNonfiniteRun] == 0);
}

TEST_CASE("emu accumulate_metrics against std::max_element, ties and NaNs", "[cuda-emu][step_guard]") {
  // (B, K, block): K = 1; K below, at and above a warp, not a multiple of it;
  // more rows than warps; a block of one warp taking every row.
  struct Case {
    int64_t B, K;
    unsigned block;
  };
  const Case cases[] = {{1, 1, 0},   {5, 1, 64},   {37, 10, 64}, {16, 32, 0},
                        {9, 33, 32}, {70, 100, 128}, {3, 1000, 0}};
  for (const Case& c : cases) {
    const int64_t B = c.B, K = c.K;
    INFO("B " << B << " K " << K << " block " << c.block);
    // Logits from {-2, …, 2}: most rows have tied maxima, and the first of them must win.
    std::vector<float> logits = random_vector(B * K, 7 + B * 31 + K);
    for (float& v : logits) v = std::round(std::clamp(v, -2.4f, 2.4f));
    std::vector<int32_t> labels(B);
    for (int64_t b = 0; b < B; ++b) {
      // The label is the first maximum, a later tied maximum, or another class, in turn.
      const float* row = logits.data() + b * K;
      const int64_t first = std::max_element(row, row + K) - row;
      int64_t last = first;
      for (int64_t k = 0; k < K; ++k)
        if (row[k] == row[first]) last = k;
      labels[b] = static_cast<int32_t>(b % 3 == 0 ? first : b % 3 == 1 ? last : (first + 1) % K);
    }
    // NaNs: at index 0 (max_element keeps it), elsewhere (passed over), a whole row,
    // and −inf rows and −0/+0 ties.
    if (B >= 3 && K >= 3) {
      logits[0 * K + 0] = kNaNf, labels[0] = 0;
      logits[1 * K + 2] = kNaNf;
      for (int64_t k = 0; k < K; ++k) logits[2 * K + k] = kNaNf;
      labels[2] = 0;
    }
    if (B >= 5 && K >= 2) {
      for (int64_t k = 0; k < K; ++k) logits[3 * K + k] = -kInff, logits[4 * K + k] = k % 2 ? 0.f : -0.f;
      labels[3] = 0, labels[4] = static_cast<int32_t>(K - 1);
    }
    const int64_t ref_correct = cpu_correct(logits, labels, B, K);
    const float loss = 1.2345678f;
    const std::vector<double> acc0 = {0.25, 3.0, 11.0};

    std::vector<double> acc = acc0;
    emu_metrics(logits, labels, loss, nullptr, B, K, acc, c.block);  // skip null: accumulated
    CHECK(acc[cuda::kLossSum] == acc0[0] + static_cast<double>(loss) * static_cast<double>(B));
    CHECK(acc[cuda::kCorrect] == acc0[1] + static_cast<double>(ref_correct));
    CHECK(acc[cuda::kImages] == acc0[2] + static_cast<double>(B));

    const float zero = 0.f, one = 1.f, nan = kNaNf;
    std::vector<double> again = acc;
    emu_metrics(logits, labels, loss, &zero, B, K, again, c.block);  // skip 0: accumulated again
    CHECK(again[cuda::kLossSum] == acc[0] + static_cast<double>(loss) * static_cast<double>(B));
    CHECK(again[cuda::kCorrect] == acc[1] + static_cast<double>(ref_correct));
    CHECK(again[cuda::kImages] == acc[2] + static_cast<double>(B));

    std::vector<double> skipped = acc;
    emu_metrics(logits, labels, loss, &one, B, K, skipped, c.block);
    emu_metrics(logits, labels, kNaNf, &nan, B, K, skipped, c.block);  // NaN flag: skipped
    CHECK(skipped == acc);
  }
}

TEST_CASE("emu finite check feeding the metrics: a NaN step adds nothing", "[cuda-emu][step_guard]") {
  const int64_t B = 8, K = 5;
  std::vector<float> logits = random_vector(B * K, 99);
  std::vector<int32_t> labels(B);
  for (int64_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>(b % K);
  const int64_t ref_correct = cpu_correct(logits, labels, B, K);
  int64_t counters[cuda::kStepCounters] = {};
  std::vector<double> acc = {0, 0, 0};
  const float losses[] = {1.f, kNaNf, 0.5f}, norm = 2.f;
  for (float loss : losses) {
    float skip = kNaNf;
    emu_check_finite(&loss, &norm, &skip, counters);
    emu_metrics(logits, labels, loss, &skip, B, K, acc, 64);
  }
  CHECK(acc[cuda::kLossSum] == 1.0 * B + 0.5 * B);
  CHECK(acc[cuda::kCorrect] == 2.0 * ref_correct);
  CHECK(acc[cuda::kImages] == 2.0 * B);
  CHECK(counters[cuda::kUpdatesApplied] == 2);
  CHECK(counters[cuda::kNonfiniteSteps] == 1);
}
