// bench_cuda_kernels: GPU time of every vit::cuda launcher at ViT shapes, read
// against ceilings measured on the same device in the same run:
//
//   copy ceiling  cudaMemcpyAsync device-to-device of 1 GiB, counted as bytes
//                 read + bytes written (2 GiB per copy). Memory-bound kernels
//                 report GB/s and "% copy" of this.
//   GEMM ceiling  vit::cuda::gemm (cuBLAS SGEMM) of 8192^3 in FP32, and again with
//                 TF32 tensor cores (vit::cuda::set_allow_tf32(true)). GEMMs and
//                 attention report TFLOP/s and "% gemm" of the ceiling of their
//                 precision (attention: the FP32 one).
//
// How a number is taken (per kernel and shape):
//   - inputs are random (a counter-based hash on the device, never zeros), and
//     backward inputs that come from a forward (mean/rstd, softmax y, lse, out)
//     are made by running that forward;
//   - the launch rotates over S independent sets of inputs and outputs, S chosen so
//     that the sets together exceed 3x the L2 size read from cudaGetDeviceProperties
//     (S <= 256; a row whose sets cannot exceed 2x L2 is marked "L2-resident"), so a
//     run does not find its data in L2 left by the run before;
//   - warm-up: every set once (and at least 3 launches): first touch, cuBLAS
//     heuristics, the caching allocator's scratch blocks;
//   - a spin kernel (15 ms) is queued first so that the host can queue all timed runs
//     while it spins: the GPU then never waits for the host between runs, and the
//     events around each run time the kernels alone. If the spin has finished before
//     the last run was queued, the row is marked "cpu-bound";
//   - every run is bracketed by its own pair of cudaEvents on vit::cuda::stream();
//     the row gives the median of >= 50 runs (--runs; the ceilings, 2-25 ms each,
//     take the median of 30 copies and 20 GEMMs);
//   - after timing, the first output (up to 1M floats) is read back and checked
//     finite: a NaN/Inf marks the row "nonfinite" (a sanity check only; the [cuda]
//     tests are where kernels are checked against the CPU ops).
//
// Bytes are the compulsory traffic of one call: each input read once and each
// output written once (an accumulated output, e.g. dweight += ..., counts as read
// and written); the count of each kernel is written beside it below. FLOPs are
// counted only for GEMMs and attention (2 per multiply-add).
//
// Usage: bench_cuda_kernels [CSV_PATH] [--runs N] [--filter SUBSTRING]
// Prints the device, the ceilings, one line per row as it is measured, and last a
// markdown table; with CSV_PATH also writes the rows as CSV (read by
// benchmarks/cuda/torch_side_by_side.py). Without a CUDA device: says so, exits 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vit/cuda/attention.hpp"
#include "vit/cuda/cross_entropy.hpp"
#include "vit/cuda/gelu.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/cuda/layernorm.hpp"
#include "vit/cuda/optimizer.hpp"
#include "vit/cuda/patchify.hpp"
#include "vit/cuda/runtime.hpp"
#include "vit/cuda/softmax.hpp"

#define BENCH_CUDA_CHECK(expr)                                                                  \
  do {                                                                                          \
    const cudaError_t bench_err_ = (expr);                                                      \
    if (bench_err_ != cudaSuccess)                                                              \
      throw std::runtime_error(std::string(#expr) + ": " + cudaGetErrorString(bench_err_));     \
  } while (0)

namespace {

// ---- device helpers ------------------------------------------------------------

// Uniform in [lo, hi) from a hash of (seed, index): random data without curand,
// repeatable, and different for every buffer (each gets its own seed).
__global__ void fill_uniform_kernel(float* x, int64_t n, uint64_t seed, float lo, float hi) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits -> [0, 1)
    x[i] = lo + (hi - lo) * u;
  }
}

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Holds the stream for `ns` nanoseconds so the host can queue the timed runs behind it.
__global__ void spin_kernel(uint64_t ns) {
  const uint64_t t0 = global_ns();
  while (global_ns() - t0 < ns) __nanosleep(2000);
}

cudaStream_t bench_stream() { return static_cast<cudaStream_t>(vit::cuda::stream()); }

void fill_uniform(float* x, int64_t n, uint64_t seed, float lo, float hi) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 65535);
  fill_uniform_kernel<<<static_cast<unsigned>(blocks), 256, 0, bench_stream()>>>(x, n, seed, lo, hi);
  BENCH_CUDA_CHECK(cudaGetLastError());
}

// ---- buffers -----------------------------------------------------------------------

// Device buffers of one case, all freed together. cudaMalloc rather than the
// library's caching allocator: the cache keeps every freed size forever, and the
// benchmark's buffers (gigabytes, once each) should go back between cases.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() {
    for (void* p : ptrs_) cudaFree(p);
  }
  /// n floats of uniform [lo, hi) random data.
  float* random(int64_t n, float lo = -1.f, float hi = 1.f) {
    float* p = raw(n);
    fill_uniform(p, n, next_seed(), lo, hi);
    return p;
  }
  /// n floats, uninitialised: an output the kernel writes in full.
  float* raw(int64_t n) {
    void* p = nullptr;
    BENCH_CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float)));
    ptrs_.push_back(p);
    return static_cast<float*>(p);
  }

 private:
  uint64_t next_seed() { return 0x5eed0000ull + 7919ull * ++count_; }
  std::vector<void*> ptrs_;
  uint64_t count_ = 0;
};

// ---- timing ---------------------------------------------------------------------------

struct Ctx {
  int runs = 60;
  std::string filter;
  size_t l2_bytes = 50u << 20;
  double copy_gbps = NAN;                     // measured ceilings
  double gemm_tflops_fp32 = NAN, gemm_tflops_tf32 = NAN;
  uint64_t spin_ns = 15'000'000;
};

struct Timing {
  double median_us = NAN;
  bool cpu_bound = false;
};

/// Median GPU time of one `launch(set)` over ctx.runs runs rotating over `nsets` sets.
Timing time_launches(const Ctx& ctx, int nsets, int runs, const std::function<void(int)>& launch) {
  cudaStream_t s = bench_stream();
  const int warm = std::max(nsets, 3);
  for (int i = 0; i < warm; ++i) launch(i % nsets);
  BENCH_CUDA_CHECK(cudaStreamSynchronize(s));

  std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(runs));
  for (auto& e : ev) BENCH_CUDA_CHECK(cudaEventCreate(&e));
  cudaEvent_t spin_done;
  BENCH_CUDA_CHECK(cudaEventCreate(&spin_done));

  spin_kernel<<<1, 1, 0, s>>>(ctx.spin_ns);
  BENCH_CUDA_CHECK(cudaGetLastError());
  BENCH_CUDA_CHECK(cudaEventRecord(spin_done, s));
  for (int r = 0; r < runs; ++r) {
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * r], s));
    launch((warm + r) % nsets);  // consecutive runs touch different sets
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * r + 1], s));
  }
  Timing t;
  // Done already: the GPU caught up with the host, so gaps may be inside the runs.
  t.cpu_bound = cudaEventQuery(spin_done) == cudaSuccess;
  BENCH_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<double> us(static_cast<size_t>(runs));
  for (int r = 0; r < runs; ++r) {
    float ms = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[2 * r], ev[2 * r + 1]));
    us[r] = 1e3 * ms;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  cudaEventDestroy(spin_done);
  std::sort(us.begin(), us.end());
  t.median_us = runs % 2 ? us[runs / 2] : 0.5 * (us[runs / 2 - 1] + us[runs / 2]);
  return t;
}

// ---- rows -------------------------------------------------------------------------------

enum class Ceil { None, Fp32, Tf32 };

struct Row {
  std::string kernel, shape;
  double time_us = NAN, bytes = 0, flops = 0;
  double gbps = NAN, pct_copy = NAN, tflops = NAN, pct_gemm = NAN;
  int sets = 0;
  std::string note;
};

std::vector<Row> g_rows;

void finish_row(const Ctx& ctx, Row& r, Ceil ceil) {
  if (std::isfinite(r.time_us) && r.time_us > 0) {
    if (r.bytes > 0) {
      r.gbps = r.bytes / (r.time_us * 1e-6) / 1e9;
      r.pct_copy = 100.0 * r.gbps / ctx.copy_gbps;
    }
    if (r.flops > 0) {
      r.tflops = r.flops / (r.time_us * 1e-6) / 1e12;
      const double c = ceil == Ceil::Tf32 ? ctx.gemm_tflops_tf32 : ctx.gemm_tflops_fp32;
      if (ceil != Ceil::None) r.pct_gemm = 100.0 * r.tflops / c;
    }
  }
  std::printf("  %-22s %-28s %10.2f us %9.1f GB/s %6.1f%% copy %8.2f TFLOP/s %6.1f%% gemm  sets %3d  %s\n",
              r.kernel.c_str(), r.shape.c_str(), r.time_us, r.gbps, r.pct_copy, r.tflops, r.pct_gemm,
              r.sets, r.note.c_str());
  std::fflush(stdout);
  g_rows.push_back(r);
}

void add_note(std::string& note, const std::string& what) { note += (note.empty() ? "" : "; ") + what; }

bool all_finite(const float* dev, int64_t n) {
  n = std::min<int64_t>(n, 1 << 20);
  std::vector<float> h(static_cast<size_t>(n));
  BENCH_CUDA_CHECK(cudaMemcpyAsync(h.data(), dev, h.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                   bench_stream()));
  BENCH_CUDA_CHECK(cudaStreamSynchronize(bench_stream()));
  return std::all_of(h.begin(), h.end(), [](float v) { return std::isfinite(v); });
}

/// One benchmark case: `make(ws)` allocates and fills one set and returns its
/// launch; the first output to check is given by the set as (ptr, n).
struct SetLaunch {
  std::function<void()> launch;
  const float* check = nullptr;  // first output, checked finite after timing
  int64_t check_n = 0;
};

int sets_for(const Ctx& ctx, double set_bytes) {
  const double target = 3.0 * static_cast<double>(ctx.l2_bytes);
  int n = static_cast<int>(std::ceil(target / std::max(set_bytes, 1.0)));
  n = std::clamp(n, 1, 256);
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
    const int fit = static_cast<int>(0.7 * static_cast<double>(free_b) / std::max(set_bytes, 1.0));
    n = std::max(1, std::min(n, fit));
  }
  return n;
}

/// set_bytes: device bytes one set allocates (for the rotation count).
void bench(const Ctx& ctx, const std::string& kernel, const std::string& shape, double bytes,
           double flops, Ceil ceil, double set_bytes, const std::function<SetLaunch(Workspace&)>& make,
           int runs = 0) {
  if (!ctx.filter.empty() && (kernel + " " + shape).find(ctx.filter) == std::string::npos) return;
  Row r;
  r.kernel = kernel, r.shape = shape, r.bytes = bytes, r.flops = flops;
  try {
    Workspace ws;
    const int nsets = sets_for(ctx, set_bytes);
    std::vector<SetLaunch> sets;
    for (int i = 0; i < nsets; ++i) sets.push_back(make(ws));
    r.sets = nsets;
    const Timing t = time_launches(ctx, nsets, runs > 0 ? runs : ctx.runs,
                                   [&](int i) { sets[static_cast<size_t>(i)].launch(); });
    r.time_us = t.median_us;
    if (t.cpu_bound) add_note(r.note, "cpu-bound");
    if (static_cast<double>(nsets) * set_bytes < 2.0 * static_cast<double>(ctx.l2_bytes))
      add_note(r.note, "L2-resident");
    if (sets[0].check && !all_finite(sets[0].check, sets[0].check_n)) add_note(r.note, "nonfinite");
  } catch (const std::exception& e) {
    add_note(r.note, std::string("error: ") + e.what());
    cudaGetLastError();  // clear a non-sticky error so the next case can run
  }
  finish_row(ctx, r, ceil);
}

std::string shape_bnc(int64_t B, int64_t N, const char* c, int64_t C) {
  return "B=" + std::to_string(B) + " N=" + std::to_string(N) + " " + c + "=" + std::to_string(C);
}

// ---- ceilings -------------------------------------------------------------------------------

void measure_ceilings(Ctx& ctx) {
  // Copy: 1 GiB, far beyond L2, so one buffer pair needs no rotation.
  {
    const int64_t n = int64_t(1) << 28;  // floats: 1 GiB
    Row r;
    r.kernel = "ceiling_copy", r.shape = "D2D 1 GiB", r.bytes = 2.0 * 4.0 * static_cast<double>(n);
    try {
      Workspace ws;
      float* a = ws.random(n);
      float* b = ws.raw(n);
      r.sets = 1;
      r.time_us = time_launches(ctx, 1, 30, [&](int) {
                    BENCH_CUDA_CHECK(cudaMemcpyAsync(b, a, static_cast<size_t>(n) * 4,
                                                     cudaMemcpyDeviceToDevice, bench_stream()));
                  }).median_us;
      ctx.copy_gbps = r.bytes / (r.time_us * 1e-6) / 1e9;
    } catch (const std::exception& e) {
      add_note(r.note, std::string("error: ") + e.what());
    }
    finish_row(ctx, r, Ceil::None);
  }
  // GEMM: 8192^3 through the library's own cuBLAS path, FP32 then TF32.
  for (const bool tf32 : {false, true}) {
    const int64_t n = 8192;
    Row r;
    r.kernel = tf32 ? "ceiling_gemm_tf32" : "ceiling_gemm_fp32";
    r.shape = "8192^3 NN";
    r.flops = 2.0 * static_cast<double>(n) * n * n;
    r.bytes = 4.0 * 3 * static_cast<double>(n) * n;
    try {
      Workspace ws;
      float* a = ws.random(n * n);
      float* b = ws.random(n * n);
      float* c = ws.raw(n * n);
      vit::cuda::set_allow_tf32(tf32);
      r.sets = 1;
      r.time_us = time_launches(ctx, 1, 20, [&](int) {
                    vit::cuda::gemm(false, false, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
                  }).median_us;
      const double t = r.flops / (r.time_us * 1e-6) / 1e12;
      (tf32 ? ctx.gemm_tflops_tf32 : ctx.gemm_tflops_fp32) = t;
      if (!all_finite(c, n * n)) add_note(r.note, "nonfinite");
    } catch (const std::exception& e) {
      add_note(r.note, std::string("error: ") + e.what());
    }
    vit::cuda::set_allow_tf32(false);
    finish_row(ctx, r, tf32 ? Ceil::Tf32 : Ceil::Fp32);
  }
}

// ---- the cases ------------------------------------------------------------------------------

struct BN {
  int64_t B, N;
};
// The two token layouts of the issue: CIFAR-size (64 patches + cls) at batch 512,
// and 224/16 (196 patches + cls) at batch 256.
const BN kBN[] = {{512, 65}, {256, 197}};
const int64_t kC[] = {192, 384, 768};

void bench_layer_norm(const Ctx& ctx) {
  for (const BN& s : kBN)
    for (const int64_t C : kC) {
      const int64_t R = s.B * s.N;
      const std::string shape = shape_bnc(s.B, s.N, "C", C);
      const double rc = static_cast<double>(R) * C;
      // fwd: read x (R·C), weight, bias (C each); write out (R·C), mean, rstd (R each).
      bench(ctx, "layer_norm_fwd", shape, 4.0 * (2 * rc + 2.0 * C + 2.0 * R), 0, Ceil::None,
            4.0 * (2 * rc + 2.0 * C + 2.0 * R), [=](Workspace& ws) {
              float *x = ws.random(R * C), *w = ws.random(C, 0.5f, 1.5f), *b = ws.random(C);
              float *out = ws.raw(R * C), *mean = ws.raw(R), *rstd = ws.raw(R);
              return SetLaunch{[=] {
                                 vit::cuda::layer_norm_forward(x, w, b, out, mean, rstd, R, C, 1e-6f);
                               },
                               out, R * C};
            });
      // bwd: read dout, x (R·C each), weight (C), mean, rstd (R each); write dx (R·C);
      // dweight, dbias accumulate (+=): read and written, 2C each.
      bench(ctx, "layer_norm_bwd", shape, 4.0 * (3 * rc + 2.0 * R + 5.0 * C), 0, Ceil::None,
            4.0 * (3 * rc + 2.0 * R + 5.0 * C), [=](Workspace& ws) {
              float *x = ws.random(R * C), *w = ws.random(C, 0.5f, 1.5f), *b = ws.random(C);
              float *y = ws.raw(R * C), *mean = ws.raw(R), *rstd = ws.raw(R);
              vit::cuda::layer_norm_forward(x, w, b, y, mean, rstd, R, C, 1e-6f);
              float *dout = y;  // the forward's output buffer, refilled: random upstream gradient
              fill_uniform(dout, R * C, 0xd0u + static_cast<uint64_t>(C), -1.f, 1.f);
              float *dx = ws.raw(R * C), *dw = ws.random(C), *db = ws.random(C);
              return SetLaunch{[=] {
                                 vit::cuda::layer_norm_backward(dout, x, w, mean, rstd, dx, dw, db, R, C);
                               },
                               dx, R * C};
            });
    }
}

void bench_gelu(const Ctx& ctx) {
  // The MLP hidden activation: R = B·N rows of M = 4C (ViT-Ti/S/B's mlp_ratio 4),
  // exact erf form, no bias (as the model calls it; F.gelu has none either).
  for (const BN& s : kBN)
    for (const int64_t C : kC) {
      const int64_t R = s.B * s.N, M = 4 * C, n = R * M;
      const std::string shape = shape_bnc(s.B, s.N, "M", M);
      // fwd: read x, write out: 2 floats per element.
      bench(ctx, "gelu_fwd", shape, 8.0 * n, 0, Ceil::None, 8.0 * n, [=](Workspace& ws) {
        float *x = ws.random(n, -3.f, 3.f), *out = ws.raw(n);
        return SetLaunch{[=] { vit::cuda::gelu_forward(x, out, n, false); }, out, n};
      });
      // bwd: read dout, x; write dx: 3 floats per element.
      bench(ctx, "gelu_bwd", shape, 12.0 * n, 0, Ceil::None, 12.0 * n, [=](Workspace& ws) {
        float *dout = ws.random(n), *x = ws.random(n, -3.f, 3.f), *dx = ws.raw(n);
        return SetLaunch{[=] { vit::cuda::gelu_backward(dout, x, dx, n, false); }, dx, n};
      });
    }
}

void bench_softmax_case(const Ctx& ctx, const std::string& shape, int64_t R, int64_t n) {
  const double e = static_cast<double>(R) * n;
  // fwd: read x, write y (R·n each).
  bench(ctx, "softmax_fwd", shape, 8.0 * e, 0, Ceil::None, 8.0 * e, [=](Workspace& ws) {
    float *x = ws.random(R * n, -4.f, 4.f), *y = ws.raw(R * n);
    return SetLaunch{[=] { vit::cuda::softmax_forward(x, y, R, n); }, y, R * n};
  });
  // bwd: read y (from the forward), dy; write dx.
  bench(ctx, "softmax_bwd", shape, 12.0 * e, 0, Ceil::None, 12.0 * e, [=](Workspace& ws) {
    float *x = ws.random(R * n, -4.f, 4.f), *y = ws.raw(R * n);
    vit::cuda::softmax_forward(x, y, R, n);  // y: a real softmax output
    float *dy = ws.random(R * n), *dx = ws.raw(R * n);
    return SetLaunch{[=] { vit::cuda::softmax_backward(y, dy, dx, R, n); }, dx, R * n};
  });
}

void bench_softmax(const Ctx& ctx) {
  // The attention probabilities: B·H·N rows of N keys (what the unfused path and
  // PyTorch's math backend normalise), H = 6 and 12.
  for (const BN& s : kBN)
    for (const int64_t H : {6, 12})
      bench_softmax_case(ctx, "attn B=" + std::to_string(s.B) + " H=" + std::to_string(H) +
                                  " N=" + std::to_string(s.N),
                         s.B * H * s.N, s.N);
  // Token rows: B·N rows of C.
  for (const BN& s : kBN)
    for (const int64_t C : kC) bench_softmax_case(ctx, shape_bnc(s.B, s.N, "C", C), s.B * s.N, C);
}

void bench_cross_entropy(const Ctx& ctx) {
  for (const int64_t B : {256, 512})
    for (const int64_t K : {10, 100, 1000}) {
      const double bk = static_cast<double>(B) * K;
      const std::string shape = "B=" + std::to_string(B) + " K=" + std::to_string(K);
      // fwd reads logits, target (B·K each), writes probs (B·K), loss (1);
      // bwd reads dloss (1), probs, target, writes dlogits (B·K): 6·B·K + 2 floats.
      bench(ctx, "cross_entropy_fwd_bwd", shape, 4.0 * (6 * bk + 2), 0, Ceil::None, 4.0 * (4 * bk + 2),
            [=](Workspace& ws) {
              float *logits = ws.random(B * K, -5.f, 5.f);
              float *target = ws.random(B * K, 0.f, 2.f / static_cast<float>(K));  // ~a distribution
              float *probs = ws.raw(B * K), *loss = ws.raw(1), *dloss = ws.random(1, 1.f, 1.f);
              float *dlogits = ws.raw(B * K);
              return SetLaunch{[=] {
                                 vit::cuda::cross_entropy_forward(logits, nullptr, target, 0.f, probs,
                                                                  loss, B, K);
                                 vit::cuda::cross_entropy_backward(dloss, probs, nullptr, target, 0.f,
                                                                   dlogits, B, K);
                               },
                               dlogits, B * K};
            });
    }
}

void bench_attention(const Ctx& ctx) {
  // (C, H): D = C/H = 32 and 64 at each width the issue names; (192, 3) and (384, 12)
  // are cifar-tiny's and cifar-small's own heads, (384, 6) ViT-S's.
  const std::pair<int64_t, int64_t> kCH[] = {{192, 3}, {192, 6}, {384, 6}, {384, 12}, {768, 12}};
  for (const BN& s : kBN)
    for (const auto& ch : kCH) {
      const int64_t C = ch.first, H = ch.second, B = s.B, N = s.N, D = C / H;
      const std::string shape = "B=" + std::to_string(B) + " N=" + std::to_string(N) +
                                " C=" + std::to_string(C) + " H=" + std::to_string(H);
      const double bnc = static_cast<double>(B) * N * C, bhn = static_cast<double>(B) * H * N;
      // FLOPs: fwd S = Q·Kᵀ and O = P·V, 2 GEMMs of B·H·N·N·D multiply-adds -> 4·B·H·N²·D;
      // bwd dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q -> 8·B·H·N²·D (the algorithmic
      // minimum: a kernel that recomputes S from lse does 2 more, not counted).
      const double nnd = static_cast<double>(B) * H * N * N * D;
      // fwd: read qkv (3·B·N·C), write out (B·N·C) and lse (B·H·N).
      const double fwd_bytes = 4.0 * (4 * bnc + bhn);
      // bwd: read dout, out (B·N·C each), qkv (3·B·N·C), lse; write dqkv (3·B·N·C).
      const double bwd_bytes = 4.0 * (8 * bnc + bhn);
      const size_t before = g_rows.size();
      bench(ctx, "attention_fwd", shape, fwd_bytes, 4 * nnd, Ceil::Fp32, fwd_bytes, [=](Workspace& ws) {
        float *qkv = ws.random(B * N * 3 * C), *out = ws.raw(B * N * C), *lse = ws.raw(B * H * N);
        return SetLaunch{[=] { vit::cuda::attention_forward(qkv, out, lse, B, N, C, H); }, out, B * N * C};
      });
      const bool have_fwd = g_rows.size() == before + 1;
      bench(ctx, "attention_bwd", shape, bwd_bytes, 8 * nnd, Ceil::Fp32, bwd_bytes, [=](Workspace& ws) {
        float *qkv = ws.random(B * N * 3 * C), *out = ws.raw(B * N * C), *lse = ws.raw(B * H * N);
        vit::cuda::attention_forward(qkv, out, lse, B, N, C, H);
        float *dout = ws.random(B * N * C), *dqkv = ws.raw(B * N * 3 * C);
        return SetLaunch{[=] { vit::cuda::attention_backward(dout, qkv, out, lse, dqkv, B, N, C, H); },
                         dqkv, B * N * 3 * C};
      });
      // The issue's bar: forward + backward against PyTorch's SDPA forward + backward.
      if (!have_fwd || g_rows.size() != before + 2) continue;  // one of the two filtered out
      const Row f = g_rows[before], b = g_rows[before + 1];
      Row r;
      r.kernel = "attention_fwd_bwd", r.shape = shape;
      r.time_us = f.time_us + b.time_us, r.bytes = fwd_bytes + bwd_bytes, r.flops = 12 * nnd;
      r.sets = std::min(f.sets, b.sets);
      r.note = "sum of the two medians";
      if (!f.note.empty() || !b.note.empty()) add_note(r.note, f.note + (b.note.empty() ? "" : "; " + b.note));
      finish_row(ctx, r, Ceil::Fp32);
    }
}

void bench_patchify(const Ctx& ctx) {
  struct PatchShape {
    int64_t B, ch, HW, patch;
  };
  for (const PatchShape& p : {PatchShape{256, 3, 224, 16}, PatchShape{512, 3, 32, 4}}) {
    const int64_t n = p.B * p.ch * p.HW * p.HW, N = (p.HW / p.patch) * (p.HW / p.patch);
    const int64_t K = p.ch * p.patch * p.patch;
    const std::string shape = "B=" + std::to_string(p.B) + " ch=" + std::to_string(p.ch) +
                              " HW=" + std::to_string(p.HW) + " P=" + std::to_string(p.patch);
    // Each reads one layout and writes the other: 2 floats per pixel.
    bench(ctx, "patchify", shape, 8.0 * n, 0, Ceil::None, 8.0 * n, [=](Workspace& ws) {
      float *x = ws.random(n), *cols = ws.raw(p.B * N * K);
      return SetLaunch{[=] { vit::cuda::patchify(x, cols, p.B, p.ch, p.HW, p.HW, p.patch); }, cols, n};
    });
    bench(ctx, "unpatchify", shape, 8.0 * n, 0, Ceil::None, 8.0 * n, [=](Workspace& ws) {
      float *dcols = ws.random(p.B * N * K), *dx = ws.raw(n);
      return SetLaunch{[=] { vit::cuda::unpatchify(dcols, dx, p.B, p.ch, p.HW, p.HW, p.patch); }, dx, n};
    });
  }
}

/// The parameter tensors of ViT-S/16 (timm's vit_small_patch16_224, 1000 classes):
/// 152 tensors, 22,050,664 floats. Second: weight decay applies (matrices, not
/// biases, norms, cls_token or pos_embed), as default_param_groups.
std::vector<std::pair<int64_t, bool>> vit_s16_params() {
  const int64_t C = 384, M = 1536, N = 197, K = 1000, PP = 3 * 16 * 16;
  std::vector<std::pair<int64_t, bool>> p = {{C, false}, {N * C, false}, {C * PP, true}, {C, false}};
  for (int blk = 0; blk < 12; ++blk) {
    const std::pair<int64_t, bool> b[] = {{C, false},     {C, false},     {3 * C * C, true}, {3 * C, false},
                                          {C * C, true},  {C, false},     {C, false},        {C, false},
                                          {M * C, true},  {M, false},     {C * M, true},     {C, false}};
    p.insert(p.end(), std::begin(b), std::end(b));
  }
  const std::pair<int64_t, bool> tail[] = {{C, false}, {C, false}, {K * C, true}, {K, false}};
  p.insert(p.end(), std::begin(tail), std::end(tail));
  return p;
}

void bench_adam(const Ctx& ctx) {
  const auto params = vit_s16_params();
  int64_t total = 0;
  for (const auto& [n, wd] : params) total += n;
  const std::string shape = "vit-s16 params";
  // Per element: read param, grad, exp_avg, exp_avg_sq; write param, exp_avg,
  // exp_avg_sq: 7 floats.
  bench(ctx, "adam_step", shape, 28.0 * total, 0, Ceil::None, 16.0 * total, [=](Workspace& ws) {
    // One arena per role, carved per tensor (each tensor starts 16-float aligned,
    // like the caching allocator's 512-byte blocks, so vector loads stay legal).
    auto padded = [](int64_t n) { return (n + 15) / 16 * 16; };
    int64_t arena = 0;
    for (const auto& [n, wd] : params) arena += padded(n);
    float *param = ws.random(arena), *grad = ws.random(arena, -1e-2f, 1e-2f);
    float *m = ws.random(arena, -1e-3f, 1e-3f), *v = ws.random(arena, 1e-8f, 1e-4f);
    auto slots = std::make_shared<std::vector<vit::cuda::ParamSlot>>();
    int64_t off = 0;
    for (const auto& [n, wd] : params) {
      slots->push_back({param + off, grad + off, m + off, v + off, n, wd ? 0.05 : 0.0});
      off += padded(n);
    }
    // AdamW at step 10, lr 1e-3, as the training step: lr and step count live
    // on the device (the step count advances each launch: bias corrections
    // change, the work does not).
    vit::cuda::AdamHyper h{};
    h.beta1 = 0.9, h.beta2 = 0.999, h.eps = 1e-8, h.decoupled = true;
    const double lr = 1e-3;
    const int64_t t = 10;
    auto* lr_dev = static_cast<double*>(vit::cuda::allocate(sizeof(double)));
    auto* step_dev = static_cast<int64_t*>(vit::cuda::allocate(sizeof(int64_t)));
    vit::cuda::copy_to_device(lr_dev, &lr, sizeof(double));
    vit::cuda::copy_to_device(step_dev, &t, sizeof(int64_t));
    const vit::cuda::StepInputs in{lr_dev, nullptr, nullptr, step_dev};
    return SetLaunch{[=] { vit::cuda::adam_step(slots->data(), static_cast<int>(slots->size()), h, in); },
                     param, arena};
  });
}

void bench_gemm(const Ctx& ctx) {
  for (const bool tf32 : {false, true})
    for (const BN& s : kBN)
      for (const int64_t C : kC) {
        const int64_t R = s.B * s.N;
        const std::string kernel = tf32 ? "gemm_tf32" : "gemm_fp32";
        const Ceil ceil = tf32 ? Ceil::Tf32 : Ceil::Fp32;
        const std::string tail = " B=" + std::to_string(s.B) + " N=" + std::to_string(s.N) +
                                 " C=" + std::to_string(C);
        // Linear forward y = x·Wᵀ (ops::linear's gemm(false, true)), out = 3C (qkv) and 4C (fc1):
        // read x (R·C), W (out·C), write y (R·out).
        for (const int64_t mult : {3, 4}) {
          const int64_t O = mult * C;
          const double bytes = 4.0 * (static_cast<double>(R) * C + O * C + static_cast<double>(R) * O);
          bench(ctx, kernel, (mult == 3 ? "qkv" : "fc1") + tail, bytes, 2.0 * R * O * C, ceil, bytes,
                [=](Workspace& ws) {
                  float *x = ws.random(R * C), *w = ws.random(O * C, -0.05f, 0.05f), *y = ws.raw(R * O);
                  return SetLaunch{[=] {
                                     vit::cuda::set_allow_tf32(tf32);
                                     vit::cuda::gemm(false, true, R, O, C, 1.f, x, C, w, C, 0.f, y, O);
                                   },
                                   y, R * O};
                });
        }
        // fc1's weight gradient dW (4C, C) += doutᵀ·x (gemm(true, false), beta 1):
        // read dout (R·4C), x (R·C), dW read and written (2·4C·C).
        const int64_t O = 4 * C;
        const double bytes = 4.0 * (static_cast<double>(R) * O + static_cast<double>(R) * C + 2.0 * O * C);
        bench(ctx, kernel, "fc1.dW" + tail, bytes, 2.0 * R * O * C, ceil, bytes, [=](Workspace& ws) {
          float *dout = ws.random(R * O), *x = ws.random(R * C), *dw = ws.random(O * C);
          return SetLaunch{[=] {
                             vit::cuda::set_allow_tf32(tf32);
                             vit::cuda::gemm(true, false, O, C, R, 1.f, dout, O, x, C, 1.f, dw, C);
                           },
                           dw, O * C};
        });
      }
  vit::cuda::set_allow_tf32(false);
}

// ---- output -----------------------------------------------------------------------------------

std::string num(double v, int prec) {
  if (!std::isfinite(v)) return "";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

void print_table(const Ctx& ctx) {
  std::printf("\n## vit::cuda kernels (median GPU time; %% of copy %.0f GB/s, GEMM fp32 %.1f / tf32 %.1f TFLOP/s)\n\n",
              ctx.copy_gbps, ctx.gemm_tflops_fp32, ctx.gemm_tflops_tf32);
  std::printf("| kernel | shape | us | MB | GB/s | %%copy | TFLOP/s | %%gemm | note |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
  for (const Row& r : g_rows)
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.kernel.c_str(), r.shape.c_str(),
                num(r.time_us, 1).c_str(), num(r.bytes * 1e-6, 1).c_str(), num(r.gbps, 0).c_str(),
                num(r.pct_copy, 1).c_str(),
                num(r.tflops, 2).c_str(), num(r.pct_gemm, 1).c_str(), r.note.c_str());
  std::fflush(stdout);
}

void write_csv(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "bench_cuda_kernels: cannot write %s\n", path.c_str());
    return;
  }
  std::fprintf(f, "kernel,shape,time_us,bytes,gbps,pct_copy,gflop,tflops,pct_gemm,sets,note\n");
  for (const Row& r : g_rows) {
    std::string note = r.note;
    std::replace(note.begin(), note.end(), ',', ';');
    std::replace(note.begin(), note.end(), '\n', ' ');
    std::fprintf(f, "%s,%s,%s,%.0f,%s,%s,%s,%s,%s,%d,%s\n", r.kernel.c_str(), r.shape.c_str(),
                 num(r.time_us, 3).c_str(), r.bytes, num(r.gbps, 2).c_str(), num(r.pct_copy, 2).c_str(),
                 num(r.flops * 1e-9, 4).c_str(), num(r.tflops, 3).c_str(), num(r.pct_gemm, 2).c_str(), r.sets,
                 note.c_str());
  }
  std::fclose(f);
  std::printf("wrote %s (%zu rows)\n", path.c_str(), g_rows.size());
}

}  // namespace

int main(int argc, char** argv) {
  Ctx ctx;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--runs" || a == "--filter") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--runs") ctx.runs = std::max(50, std::atoi(v.c_str()));  // the floor: >= 50 runs
      else ctx.filter = v;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_cuda_kernels [CSV_PATH] [--runs N (>= 50, default 60)] [--filter SUBSTRING]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-') {
      csv = a;
    } else {
      std::fprintf(stderr, "bench_cuda_kernels: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }

  std::printf("bench_cuda_kernels: %s\n", vit::cuda::device_description().c_str());
  if (!vit::cuda::available()) {
    std::printf("no CUDA device: nothing measured\n");
    return 0;
  }
  try {
    int dev = 0;
    BENCH_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    BENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    ctx.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
    std::printf("L2 %.1f MiB: each case rotates over input/output sets totalling > 3x L2; median of %d runs\n",
                static_cast<double>(ctx.l2_bytes) / (1 << 20), ctx.runs);
    std::printf("ceilings (measured here, now):\n");
    measure_ceilings(ctx);
    std::printf("kernels:\n");
    bench_layer_norm(ctx);
    bench_gelu(ctx);
    bench_softmax(ctx);
    bench_cross_entropy(ctx);
    bench_attention(ctx);
    bench_patchify(ctx);
    bench_adam(ctx);
    bench_gemm(ctx);
  } catch (const std::exception& e) {
    std::printf("bench_cuda_kernels: stopped: %s\n", e.what());
  }
  if (!csv.empty()) write_csv(csv);
  print_table(ctx);
  return 0;
}
