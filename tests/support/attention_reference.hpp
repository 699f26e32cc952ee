// The float64 reference of the fused attention kernels, shared by the emulated
// kernel tests (tests/cuda_emu) and the GPU tests (tests/cuda): the CPU op
// instantiated in double, plus what only the kernels keep, lse = log Σ_j
// exp(s_ij) over the undropped scores and delta = Σ_d dout·out per (b,h,i).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>
#include <vit/vit.hpp>

namespace vit::test {

struct AttentionReference {
  std::vector<float> out, lse, delta, dqkv;
};

inline AttentionReference attention_reference(const std::vector<float>& qkv_f,
                                              const std::vector<float>& dout_f, int64_t B,
                                              int64_t N, int64_t C, int64_t H,
                                              const ops::AttentionDropout& drop = {}) {
  const int64_t D = C / H;
  const std::vector<double> qkv(qkv_f.begin(), qkv_f.end()), dout(dout_f.begin(), dout_f.end());
  std::vector<double> out(B * N * C), probs(B * H * N * N), dqkv(B * N * 3 * C), lse(B * H * N),
      delta(B * H * N);
  ops::attention_forward<double>(qkv.data(), out.data(), probs.data(), B, N, C, H, drop);
  ops::attention_backward<double>(dout.data(), qkv.data(), probs.data(), dqkv.data(), B, N, C, H, drop);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> s(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        const double* q = &qkv[(b * N + i) * 3 * C + h * D];
        for (int64_t j = 0; j < N; ++j) {
          const double* k = &qkv[(b * N + j) * 3 * C + C + h * D];
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q[d] * k[d];
          s[j] = dot * scale;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        lse[(b * H + h) * N + i] = mx + std::log(sum);
        double dl = 0;
        for (int64_t d = 0; d < D; ++d)
          dl += dout[(b * N + i) * C + h * D + d] * out[(b * N + i) * C + h * D + d];
        delta[(b * H + h) * N + i] = dl;
      }
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  return {to_float(out), to_float(lse), to_float(delta), to_float(dqkv)};
}

}  // namespace vit::test
