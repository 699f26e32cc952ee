// bench_cuda_kernels: GPU time of every vit::cuda launcher at ViT shapes, in
// float32 (TF32 off), with TF32 tensor cores where a launcher has them (GEMM,
// attention), and in bf16 (bf16 in and out, fp32 math: the overloads of the float
// launchers taking vit::bf16*), read against ceilings measured on the same device
// in the same run:
//
//   copy ceiling  cudaMemcpyAsync device-to-device of 1 GiB, counted as bytes
//                 read + bytes written (2 GiB per copy). Memory-bound kernels
//                 report GB/s and "% copy" of this, whatever their dtype (bytes
//                 are bytes: a bf16 row moves half the bytes of its float row).
//   GEMM ceiling  vit::cuda::gemm of 8192^3: FP32 (cuBLAS SGEMM), TF32
//                 (vit::cuda::set_allow_tf32(true)) and bf16 (cuBLASLt, fp32
//                 accumulation). GEMMs and attention report TFLOP/s and "% gemm"
//                 of the ceiling of their dtype.
//
// How a number is taken (per kernel, dtype and shape):
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
//   - after timing, the first output (up to 1M elements) is read back and checked
//     finite: a NaN/Inf marks the row "nonfinite" (a sanity check only; the [cuda]
//     tests are where kernels are checked against the CPU ops).
//
// Bytes are the compulsory traffic of one call: each input read once and each
// output written once (an accumulated output, e.g. dweight += ..., counts as read
// and written), at the size of its dtype (saved statistics, mean/rstd/lse, are
// float in every dtype); the count of each kernel is written beside it below.
// FLOPs are counted only for GEMMs and attention (2 per multiply-add).
//
// Launchers: every row is built from the declarations in include/vit/cuda/*.hpp
// through the concepts of bench_launchers.hpp. A bf16 launcher this tree does not
// declare gives a row with no time and the note "missing launcher: <the call>"
// (it is not invented here), so the bars read it as not measured.
//
// Order: the ceilings, then the rows of issue 18's bars (bf16 LayerNorm, GELU and
// softmax, bf16 attention), then the rest. The CSV is rewritten after every row,
// so a run stopped by its cap keeps what it measured.
//
// Usage: bench_cuda_kernels [CSV_PATH] [--runs N] [--filter SUBSTRING] [--dtypes fp32,tf32,bf16]
// Prints the device, the ceilings, one line per row as it is measured, and last a
// markdown table; with CSV_PATH also writes the rows as CSV (read by
// benchmarks/cuda/torch_side_by_side.py and benchmarks/cuda/bars.py).
// Without a CUDA device: says so, exits 0.
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
#include <type_traits>
#include <vector>

#include "bench_launchers.hpp"
#include "vit/core/bf16.hpp"
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

using vit::bf16;

// ---- device helpers ------------------------------------------------------------

// Uniform in [lo, hi) from a hash of (seed, index), stored as T (rounded to
// nearest even for bf16): random data without curand, repeatable, and different
// for every buffer (each gets its own seed).
template <class T>
__global__ void fill_uniform_kernel(T* x, int64_t n, uint64_t seed, float lo, float hi) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // 24 bits -> [0, 1)
    x[i] = T(lo + (hi - lo) * u);
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

template <class T>
void fill_uniform(T* x, int64_t n, uint64_t seed, float lo, float hi) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 65535);
  fill_uniform_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, bench_stream()>>>(x, n, seed, lo, hi);
  BENCH_CUDA_CHECK(cudaGetLastError());
}

// ---- dtypes --------------------------------------------------------------------------

/// How a row computes: "fp32" (TF32 off), "tf32" (float storage, TF32 tensor
/// cores allowed) or "bf16" (bf16 storage, fp32 math).
template <class T>
const char* storage_name() {
  return vit::is_bf16_v<T> ? "bf16" : "fp32";
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
  /// n elements of uniform [lo, hi) random data.
  template <class T = float>
  T* random(int64_t n, float lo = -1.f, float hi = 1.f) {
    T* p = raw<T>(n);
    fill_uniform(p, n, next_seed(), lo, hi);
    return p;
  }
  /// n elements, uninitialised: an output the kernel writes in full.
  template <class T = float>
  T* raw(int64_t n) {
    void* p = nullptr;
    BENCH_CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)));
    ptrs_.push_back(p);
    return static_cast<T*>(p);
  }
  /// Refills an existing buffer with fresh random data.
  template <class T>
  void refill(T* p, int64_t n, float lo = -1.f, float hi = 1.f) {
    fill_uniform(p, n, next_seed(), lo, hi);
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
  std::string dtypes = "fp32,tf32,bf16";
  std::string csv;
  size_t l2_bytes = 50u << 20;
  double copy_gbps = NAN;  // measured ceilings
  double gemm_tflops_fp32 = NAN, gemm_tflops_tf32 = NAN, gemm_tflops_bf16 = NAN;
  uint64_t spin_ns = 15'000'000;

  bool wants(const std::string& dtype) const {
    return ("," + dtypes + ",").find("," + dtype + ",") != std::string::npos;
  }
};

struct Timing {
  double median_us = NAN;
  bool cpu_bound = false;
};

/// Median GPU time of one `launch(set)` over `runs` runs rotating over `nsets` sets.
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

enum class Ceil { None, Fp32, Tf32, Bf16 };

Ceil ceil_of(const std::string& dtype) {
  return dtype == "bf16" ? Ceil::Bf16 : dtype == "tf32" ? Ceil::Tf32 : Ceil::Fp32;
}

struct Row {
  std::string kernel, dtype, shape;
  double time_us = NAN, bytes = 0, flops = 0;
  double gbps = NAN, pct_copy = NAN, tflops = NAN, pct_gemm = NAN;
  int sets = 0;
  std::string note;
};

std::vector<Row> g_rows;

void write_csv(const std::string& path);

void finish_row(const Ctx& ctx, Row& r, Ceil ceil) {
  if (std::isfinite(r.time_us) && r.time_us > 0) {
    if (r.bytes > 0) {
      r.gbps = r.bytes / (r.time_us * 1e-6) / 1e9;
      r.pct_copy = 100.0 * r.gbps / ctx.copy_gbps;
    }
    if (r.flops > 0) {
      r.tflops = r.flops / (r.time_us * 1e-6) / 1e12;
      const double c = ceil == Ceil::Bf16   ? ctx.gemm_tflops_bf16
                       : ceil == Ceil::Tf32 ? ctx.gemm_tflops_tf32
                                            : ctx.gemm_tflops_fp32;
      if (ceil != Ceil::None) r.pct_gemm = 100.0 * r.tflops / c;
    }
  }
  std::printf("  %-22s %-4s %-28s %10.2f us %9.1f GB/s %6.1f%% copy %8.2f TFLOP/s %6.1f%% gemm  sets %3d  %s\n",
              r.kernel.c_str(), r.dtype.c_str(), r.shape.c_str(), r.time_us, r.gbps, r.pct_copy, r.tflops,
              r.pct_gemm, r.sets, r.note.c_str());
  std::fflush(stdout);
  g_rows.push_back(r);
  if (!ctx.csv.empty()) write_csv(ctx.csv);
}

void add_note(std::string& note, const std::string& what) { note += (note.empty() ? "" : "; ") + what; }

/// A row for a launcher this tree does not declare: no time, the call it expected.
void missing(const Ctx& ctx, const std::string& kernel, const std::string& dtype, const std::string& call) {
  if (!ctx.wants(dtype) || (!ctx.filter.empty() && kernel.find(ctx.filter) == std::string::npos)) return;
  Row r;
  r.kernel = kernel, r.dtype = dtype, r.shape = "-";
  r.note = "missing launcher: " + call;
  finish_row(ctx, r, Ceil::None);
}

template <class T>
bool all_finite(const T* dev, int64_t n) {
  n = std::min<int64_t>(n, 1 << 20);
  std::vector<T> h(static_cast<size_t>(n));
  BENCH_CUDA_CHECK(cudaMemcpyAsync(h.data(), dev, h.size() * sizeof(T), cudaMemcpyDeviceToHost,
                                   bench_stream()));
  BENCH_CUDA_CHECK(cudaStreamSynchronize(bench_stream()));
  return std::all_of(h.begin(), h.end(), [](T v) { return std::isfinite(static_cast<float>(v)); });
}

/// One set of a benchmark case: its launch, and the check of its first output.
struct SetLaunch {
  std::function<void()> launch;
  std::function<bool()> finite;  // the first output finite (after timing); empty: not checked
};

/// SetLaunch of `launch` whose output `out` (n elements) is checked finite.
template <class T, class F>
SetLaunch set_of(F launch, const T* out, int64_t n) {
  return SetLaunch{std::function<void()>(launch), [out, n] { return all_finite(out, n); }};
}

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

/// One row: `make(ws)` allocates and fills one set and returns its launch.
/// set_bytes: device bytes one set allocates (for the rotation count).
void bench(const Ctx& ctx, const std::string& kernel, const std::string& dtype, const std::string& shape,
           double bytes, double flops, Ceil ceil, double set_bytes,
           const std::function<SetLaunch(Workspace&)>& make, int runs = 0) {
  if (!ctx.wants(dtype)) return;
  if (!ctx.filter.empty() && (kernel + " " + dtype + " " + shape).find(ctx.filter) == std::string::npos) return;
  Row r;
  r.kernel = kernel, r.dtype = dtype, r.shape = shape, r.bytes = bytes, r.flops = flops;
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
    if (sets[0].finite && !sets[0].finite()) add_note(r.note, "nonfinite");
  } catch (const std::exception& e) {
    add_note(r.note, std::string("error: ") + e.what());
    cudaGetLastError();  // clear a non-sticky error so the next case can run
  }
  vit::cuda::set_allow_tf32(false);
  finish_row(ctx, r, ceil);
}

std::string shape_bnc(int64_t B, int64_t N, const char* c, int64_t C) {
  return "B=" + std::to_string(B) + " N=" + std::to_string(N) + " " + c + "=" + std::to_string(C);
}

// ---- ceilings -------------------------------------------------------------------------------

template <class T>
void gemm_ceiling(Ctx& ctx, const std::string& dtype) {
  const int64_t n = 8192;
  Row r;
  r.kernel = "ceiling_gemm", r.dtype = dtype, r.shape = "8192^3 NN";
  r.flops = 2.0 * static_cast<double>(n) * n * n;
  r.bytes = static_cast<double>(sizeof(T)) * 3 * static_cast<double>(n) * n;
  const bool tf32 = dtype == "tf32";
  try {
    Workspace ws;
    T* a = ws.random<T>(n * n);
    T* b = ws.random<T>(n * n);
    T* c = ws.raw<T>(n * n);
    r.sets = 1;
    r.time_us = time_launches(ctx, 1, 20, [&](int) {
                  vit::cuda::set_allow_tf32(tf32);
                  vit::cuda::gemm(false, false, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
                }).median_us;
    const double t = r.flops / (r.time_us * 1e-6) / 1e12;
    (dtype == "bf16" ? ctx.gemm_tflops_bf16 : tf32 ? ctx.gemm_tflops_tf32 : ctx.gemm_tflops_fp32) = t;
    if (!all_finite(c, n * n)) add_note(r.note, "nonfinite");
  } catch (const std::exception& e) {
    add_note(r.note, std::string("error: ") + e.what());
  }
  vit::cuda::set_allow_tf32(false);
  finish_row(ctx, r, ceil_of(dtype));
}

void measure_ceilings(Ctx& ctx) {
  // Copy: 1 GiB, far beyond L2, so one buffer pair needs no rotation. Measured
  // whatever --dtypes says: every memory-bound row is read against it.
  {
    const int64_t n = int64_t(1) << 28;  // floats: 1 GiB
    Row r;
    r.kernel = "ceiling_copy", r.dtype = "-", r.shape = "D2D 1 GiB", r.bytes = 2.0 * 4.0 * static_cast<double>(n);
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
  // GEMM: 8192^3 through the library's own path of each dtype.
  if (ctx.wants("fp32")) gemm_ceiling<float>(ctx, "fp32");
  if (ctx.wants("tf32")) gemm_ceiling<float>(ctx, "tf32");
  if (ctx.wants("bf16")) {
    if constexpr (vit_bench::HasGemm<bf16>) gemm_ceiling<bf16>(ctx, "bf16");
    else missing(ctx, "ceiling_gemm", "bf16", "vit::cuda::gemm(..., const bf16* A, ..., bf16* C, ldc)");
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

template <class T>
void bench_layer_norm(const Ctx& ctx) {
  const std::string dt = storage_name<T>();
  constexpr double s = sizeof(T);
  constexpr bool fwd_ok = vit_bench::HasLayerNormForward<T>, bwd_ok = vit_bench::HasLayerNormBackward<T>;
  if (!fwd_ok)
    missing(ctx, "layer_norm_fwd", dt,
            "vit::cuda::layer_norm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* out, float* mean, "
            "float* rstd, R, C, eps)");
  if (!bwd_ok)
    missing(ctx, "layer_norm_bwd", dt,
            "vit::cuda::layer_norm_backward(const bf16* dout, const bf16* x, const bf16* w, const float* mean, "
            "const float* rstd, bf16* dx, bf16* dw, bf16* db, R, C)");
  for (const BN& sh : kBN)
    for (const int64_t C : kC) {
      const int64_t R = sh.B * sh.N;
      const std::string shape = shape_bnc(sh.B, sh.N, "C", C);
      const double rc = static_cast<double>(R) * C;
      // fwd: read x (R·C), weight, bias (C each); write out (R·C); mean, rstd (R each, float).
      const double fwd_bytes = s * (2 * rc + 2.0 * C) + 4.0 * 2.0 * R;
      // bwd: read dout, x (R·C each), weight (C), mean, rstd (R each, float); write dx (R·C);
      // dweight, dbias accumulate (+=): read and written, 2C each.
      const double bwd_bytes = s * (3 * rc + 5.0 * C) + 4.0 * 2.0 * R;
      if constexpr (fwd_ok)
        bench(ctx, "layer_norm_fwd", dt, shape, fwd_bytes, 0, Ceil::None, fwd_bytes, [=](Workspace& ws) {
          T *x = ws.random<T>(R * C), *w = ws.random<T>(C, 0.5f, 1.5f), *b = ws.random<T>(C);
          T* out = ws.raw<T>(R * C);
          float *mean = ws.raw(R), *rstd = ws.raw(R);
          return set_of([=] { vit::cuda::layer_norm_forward(x, w, b, out, mean, rstd, R, C, 1e-6f); }, out, R * C);
        });
      if constexpr (fwd_ok && bwd_ok)
        bench(ctx, "layer_norm_bwd", dt, shape, bwd_bytes, 0, Ceil::None, bwd_bytes, [=](Workspace& ws) {
          T *x = ws.random<T>(R * C), *w = ws.random<T>(C, 0.5f, 1.5f), *b = ws.random<T>(C);
          T* y = ws.raw<T>(R * C);
          float *mean = ws.raw(R), *rstd = ws.raw(R);
          vit::cuda::layer_norm_forward(x, w, b, y, mean, rstd, R, C, 1e-6f);
          T* dout = y;  // the forward's output buffer, refilled: random upstream gradient
          ws.refill(dout, R * C);
          T *dx = ws.raw<T>(R * C), *dw = ws.random<T>(C), *db = ws.random<T>(C);
          return set_of([=] { vit::cuda::layer_norm_backward(dout, x, w, mean, rstd, dx, dw, db, R, C); }, dx,
                        R * C);
        });
    }
}

template <class T>
void bench_gelu(const Ctx& ctx) {
  const std::string dt = storage_name<T>();
  constexpr double s = sizeof(T);
  constexpr bool fwd_ok = vit_bench::HasGeluForward<T>, bwd_ok = vit_bench::HasGeluBackward<T>;
  if (!fwd_ok) missing(ctx, "gelu_fwd", dt, "vit::cuda::gelu_forward(const bf16* x, bf16* out, n, tanh_approx)");
  if (!bwd_ok)
    missing(ctx, "gelu_bwd", dt, "vit::cuda::gelu_backward(const bf16* dout, const bf16* x, bf16* dx, n, tanh_approx)");
  // The MLP hidden activation: R = B·N rows of M = 4C (ViT-Ti/S/B's mlp_ratio 4),
  // exact erf form, no bias (as the model calls it; F.gelu has none either).
  for (const BN& sh : kBN)
    for (const int64_t C : kC) {
      const int64_t R = sh.B * sh.N, M = 4 * C, n = R * M;
      const std::string shape = shape_bnc(sh.B, sh.N, "M", M);
      // fwd: read x, write out: 2 elements per element.
      if constexpr (fwd_ok)
        bench(ctx, "gelu_fwd", dt, shape, 2 * s * n, 0, Ceil::None, 2 * s * n, [=](Workspace& ws) {
          T *x = ws.random<T>(n, -3.f, 3.f), *out = ws.raw<T>(n);
          return set_of([=] { vit::cuda::gelu_forward(x, out, n, false); }, out, n);
        });
      // bwd: read dout, x; write dx: 3 elements per element.
      if constexpr (bwd_ok)
        bench(ctx, "gelu_bwd", dt, shape, 3 * s * n, 0, Ceil::None, 3 * s * n, [=](Workspace& ws) {
          T *dout = ws.random<T>(n), *x = ws.random<T>(n, -3.f, 3.f), *dx = ws.raw<T>(n);
          return set_of([=] { vit::cuda::gelu_backward(dout, x, dx, n, false); }, dx, n);
        });
    }
}

/// The MLP's fused bias+GELU (fc1's bias added in the same pass), at gelu's shapes.
template <class T>
void bench_bias_gelu(const Ctx& ctx) {
  const std::string dt = storage_name<T>();
  constexpr double s = sizeof(T);
  constexpr bool fwd_ok = vit_bench::HasBiasGeluForward<T>, bwd_ok = vit_bench::HasBiasGeluBackward<T>;
  if (!fwd_ok)
    missing(ctx, "bias_gelu_fwd", dt, "vit::cuda::bias_gelu_forward(const bf16* x, const bf16* bias, bf16* out, R, C, tanh)");
  if (!bwd_ok)
    missing(ctx, "bias_gelu_bwd", dt,
            "vit::cuda::bias_gelu_backward(const bf16* dout, const bf16* x, const bf16* bias, bf16* dx, bf16* dbias, "
            "R, C, tanh)");
  for (const BN& sh : kBN)
    for (const int64_t C : kC) {
      const int64_t R = sh.B * sh.N, M = 4 * C, n = R * M;
      const std::string shape = shape_bnc(sh.B, sh.N, "M", M);
      // fwd: read x (R·M), bias (M); write out (R·M).
      const double fwd_bytes = s * (2.0 * n + M);
      // bwd: read dout, x (R·M each), bias (M); write dx (R·M); dbias (M) += : read and written.
      const double bwd_bytes = s * (3.0 * n + 3.0 * M);
      if constexpr (fwd_ok)
        bench(ctx, "bias_gelu_fwd", dt, shape, fwd_bytes, 0, Ceil::None, fwd_bytes, [=](Workspace& ws) {
          T *x = ws.random<T>(n, -3.f, 3.f), *bias = ws.random<T>(M, -0.5f, 0.5f), *out = ws.raw<T>(n);
          return set_of([=] { vit::cuda::bias_gelu_forward(x, bias, out, R, M, false); }, out, n);
        });
      if constexpr (bwd_ok)
        bench(ctx, "bias_gelu_bwd", dt, shape, bwd_bytes, 0, Ceil::None, bwd_bytes, [=](Workspace& ws) {
          T *dout = ws.random<T>(n), *x = ws.random<T>(n, -3.f, 3.f), *bias = ws.random<T>(M, -0.5f, 0.5f);
          T *dx = ws.raw<T>(n), *dbias = ws.random<T>(M);
          return set_of([=] { vit::cuda::bias_gelu_backward(dout, x, bias, dx, dbias, R, M, false); }, dx, n);
        });
    }
}

template <class T>
void bench_softmax_case(const Ctx& ctx, const std::string& shape, int64_t R, int64_t n) {
  const std::string dt = storage_name<T>();
  constexpr double s = sizeof(T);
  const double e = static_cast<double>(R) * n;
  // fwd: read x, write y (R·n each).
  bench(ctx, "softmax_fwd", dt, shape, 2 * s * e, 0, Ceil::None, 2 * s * e, [=](Workspace& ws) {
    T *x = ws.random<T>(R * n, -4.f, 4.f), *y = ws.raw<T>(R * n);
    return set_of([=] { vit::cuda::softmax_forward(x, y, R, n); }, y, R * n);
  });
  if constexpr (vit_bench::HasSoftmaxBackward<T>)
    // bwd: read y (from the forward), dy; write dx.
    bench(ctx, "softmax_bwd", dt, shape, 3 * s * e, 0, Ceil::None, 3 * s * e, [=](Workspace& ws) {
      T *x = ws.random<T>(R * n, -4.f, 4.f), *y = ws.raw<T>(R * n);
      vit::cuda::softmax_forward(x, y, R, n);  // y: a real softmax output
      T *dy = ws.random<T>(R * n), *dx = ws.raw<T>(R * n);
      return set_of([=] { vit::cuda::softmax_backward(y, dy, dx, R, n); }, dx, R * n);
    });
}

template <class T>
void bench_softmax(const Ctx& ctx) {
  const std::string dt = storage_name<T>();
  if constexpr (!vit_bench::HasSoftmaxForward<T>) {
    missing(ctx, "softmax_fwd", dt, "vit::cuda::softmax_forward(const bf16* x, bf16* out, R, n)");
    missing(ctx, "softmax_bwd", dt, "vit::cuda::softmax_backward(const bf16* y, const bf16* dy, bf16* dx, R, n)");
  } else {
    if constexpr (!vit_bench::HasSoftmaxBackward<T>)
      missing(ctx, "softmax_bwd", dt, "vit::cuda::softmax_backward(const bf16* y, const bf16* dy, bf16* dx, R, n)");
    // The attention probabilities: B·H·N rows of N keys (what the unfused path and
    // PyTorch's math backend normalise), H = 6 and 12.
    for (const BN& sh : kBN)
      for (const int64_t H : {6, 12})
        bench_softmax_case<T>(ctx, "attn B=" + std::to_string(sh.B) + " H=" + std::to_string(H) +
                                       " N=" + std::to_string(sh.N),
                              sh.B * H * sh.N, sh.N);
    // Token rows: B·N rows of C.
    for (const BN& sh : kBN)
      for (const int64_t C : kC) bench_softmax_case<T>(ctx, shape_bnc(sh.B, sh.N, "C", C), sh.B * sh.N, C);
  }
}

void bench_cross_entropy(const Ctx& ctx) {
  for (const int64_t B : {256, 512})
    for (const int64_t K : {10, 100, 1000}) {
      const double bk = static_cast<double>(B) * K;
      const std::string shape = "B=" + std::to_string(B) + " K=" + std::to_string(K);
      // fwd reads logits, target (B·K each), writes probs (B·K), loss (1);
      // bwd reads dloss (1), probs, target, writes dlogits (B·K): 6·B·K + 2 floats.
      bench(ctx, "cross_entropy_fwd_bwd", "fp32", shape, 4.0 * (6 * bk + 2), 0, Ceil::None, 4.0 * (4 * bk + 2),
            [=](Workspace& ws) {
              float* logits = ws.random(B * K, -5.f, 5.f);
              float* target = ws.random(B * K, 0.f, 2.f / static_cast<float>(K));  // ~a distribution
              float *probs = ws.raw(B * K), *loss = ws.raw(1), *dloss = ws.random(1, 1.f, 1.f);
              float* dlogits = ws.raw(B * K);
              return set_of(
                  [=] {
                    vit::cuda::cross_entropy_forward(logits, nullptr, target, 0.f, probs, loss, B, K);
                    vit::cuda::cross_entropy_backward(dloss, probs, nullptr, target, 0.f, dlogits, B, K);
                  },
                  dlogits, B * K);
            });
    }
}

/// (C, H) of the attention rows: D = C/H = 64, 32, 64, 32, 64 at the widths of
/// cifar-tiny (192, 3), ViT-S (384, 6), cifar-small (384, 12) and ViT-B (768, 12),
/// plus D = 80 (ViT-H/14: 1280, 16) and D = 128 (1024, 8). Keep in step with
/// ATTN_CH in torch_side_by_side.py (the shape labels must match).
const std::pair<int64_t, int64_t> kAttnCH[] = {{192, 3},  {192, 6},   {384, 6}, {384, 12},
                                               {768, 12}, {1280, 16}, {1024, 8}};

/// dtype: "fp32", "tf32" (float storage, TF32 tensor cores allowed) or "bf16".
template <class T>
void bench_attention(const Ctx& ctx, const std::string& dt) {
  if constexpr (!vit_bench::HasAttentionForward<T> || !vit_bench::HasAttentionBackward<T>) {
    if constexpr (!vit_bench::HasAttentionForward<T>)
      missing(ctx, "attention_fwd", dt,
              "vit::cuda::attention_forward(const bf16* qkv, bf16* out, float* lse, B, N, C, H)");
    if constexpr (!vit_bench::HasAttentionBackward<T>)
      missing(ctx, "attention_bwd", dt,
              "vit::cuda::attention_backward(const bf16* dout, const bf16* qkv, const bf16* out, const float* lse, "
              "bf16* dqkv, B, N, C, H)");
    missing(ctx, "attention_fwd_bwd", dt, "the bf16 attention_forward and attention_backward overloads");
  } else {
    constexpr double s = sizeof(T);
    const bool tf32 = dt == "tf32";
    const Ceil ceil = ceil_of(dt);
    for (const BN& sh : kBN)
      for (const auto& ch : kAttnCH) {
        const int64_t C = ch.first, H = ch.second, B = sh.B, N = sh.N;
        // fp32 attention has no D = 80 or 128 kernel (tensor cores only): no row.
        if (!vit_bench::attention_supports(C / H, vit::is_bf16_v<T>, tf32)) continue;
        const std::string shape = "B=" + std::to_string(B) + " N=" + std::to_string(N) + " C=" + std::to_string(C) +
                                  " H=" + std::to_string(H);
        const double bnc = static_cast<double>(B) * N * C, bhn = static_cast<double>(B) * H * N;
        // FLOPs: fwd S = Q·Kᵀ and O = P·V, 2 GEMMs of B·H·N·N·D multiply-adds -> 4·B·H·N²·D;
        // bwd dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q -> 8·B·H·N²·D (the algorithmic
        // minimum: a kernel that recomputes S from lse does 2 more, not counted).
        const double nnd = static_cast<double>(B) * H * N * N * (C / H);
        // fwd: read qkv (3·B·N·C), write out (B·N·C) and lse (B·H·N, float).
        const double fwd_bytes = s * 4 * bnc + 4.0 * bhn;
        // bwd: read dout, out (B·N·C each), qkv (3·B·N·C), lse; write dqkv (3·B·N·C).
        const double bwd_bytes = s * 8 * bnc + 4.0 * bhn;
        const size_t before = g_rows.size();
        bench(ctx, "attention_fwd", dt, shape, fwd_bytes, 4 * nnd, ceil, fwd_bytes, [=](Workspace& ws) {
          T *qkv = ws.random<T>(B * N * 3 * C), *out = ws.raw<T>(B * N * C);
          float* lse = ws.raw(B * H * N);
          return set_of(
              [=] {
                vit::cuda::set_allow_tf32(tf32);
                vit::cuda::attention_forward(qkv, out, lse, B, N, C, H);
              },
              out, B * N * C);
        });
        const bool fwd_done = g_rows.size() == before + 1;
        bench(ctx, "attention_bwd", dt, shape, bwd_bytes, 8 * nnd, ceil, bwd_bytes, [=](Workspace& ws) {
          T *qkv = ws.random<T>(B * N * 3 * C), *out = ws.raw<T>(B * N * C);
          float* lse = ws.raw(B * H * N);
          vit::cuda::set_allow_tf32(tf32);
          vit::cuda::attention_forward(qkv, out, lse, B, N, C, H);
          T *dout = ws.random<T>(B * N * C), *dqkv = ws.raw<T>(B * N * 3 * C);
          return set_of(
              [=] {
                vit::cuda::set_allow_tf32(tf32);
                vit::cuda::attention_backward(dout, qkv, out, lse, dqkv, B, N, C, H);
              },
              dqkv, B * N * 3 * C);
        });
        // The issue's bar: forward + backward against PyTorch's SDPA forward + backward.
        if (!fwd_done || g_rows.size() != before + 2) continue;  // one of the two filtered out
        const Row f = g_rows[before], b = g_rows[before + 1];
        Row r;
        r.kernel = "attention_fwd_bwd", r.dtype = dt, r.shape = shape;
        r.time_us = f.time_us + b.time_us, r.bytes = fwd_bytes + bwd_bytes, r.flops = 12 * nnd;
        r.sets = std::min(f.sets, b.sets);
        r.note = "sum of the two medians";
        if (!f.note.empty() || !b.note.empty()) add_note(r.note, f.note + (b.note.empty() ? "" : "; " + b.note));
        finish_row(ctx, r, ceil);
      }
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
    bench(ctx, "patchify", "fp32", shape, 8.0 * n, 0, Ceil::None, 8.0 * n, [=](Workspace& ws) {
      float *x = ws.random(n), *cols = ws.raw(p.B * N * K);
      return set_of([=] { vit::cuda::patchify(x, cols, p.B, p.ch, p.HW, p.HW, p.patch); }, cols, n);
    });
    bench(ctx, "unpatchify", "fp32", shape, 8.0 * n, 0, Ceil::None, 8.0 * n, [=](Workspace& ws) {
      float *dcols = ws.random(p.B * N * K), *dx = ws.raw(n);
      return set_of([=] { vit::cuda::unpatchify(dcols, dx, p.B, p.ch, p.HW, p.HW, p.patch); }, dx, n);
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
  bench(ctx, "adam_step", "fp32", shape, 28.0 * total, 0, Ceil::None, 16.0 * total, [=](Workspace& ws) {
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
    return set_of([=] { vit::cuda::adam_step(slots->data(), static_cast<int>(slots->size()), h, in); }, param,
                  arena);
  });
}

/// Mixed precision's conversions: images and weights float -> bf16, logits bf16 ->
/// float, and each bf16 parameter gradient added into its fp32 master
/// (accumulate_widened), at ViT-S/16's parameter count and at one activation
/// (B=256 N=197 C=384).
template <class T>
void bench_convert(const Ctx& ctx) {
  if constexpr (!vit_bench::HasConvert<T>) {
    missing(ctx, "convert", "bf16", "vit::cuda::convert(const float*, bf16*, n), convert(const bf16*, float*, n), "
                                    "accumulate_widened(const bf16*, float*, n)");
  } else {
    const std::pair<const char*, int64_t> kN[] = {{"vit-s16 params", 22050664}, {"B=256 N=197 C=384", 256 * 197 * 384}};
    for (const auto& [label, n] : kN) {
      const std::string shape = std::string(label) + " n=" + std::to_string(n);
      const double d = static_cast<double>(n);
      // float -> bf16: read 4n, write 2n bytes.
      bench(ctx, "convert_f32_to_bf16", "bf16", shape, 6 * d, 0, Ceil::None, 6 * d, [=](Workspace& ws) {
        float* x = ws.random(n);
        T* y = ws.raw<T>(n);
        return set_of([=] { vit::cuda::convert(x, y, n); }, y, n);
      });
      // bf16 -> float: read 2n, write 4n bytes.
      bench(ctx, "convert_bf16_to_f32", "bf16", shape, 6 * d, 0, Ceil::None, 6 * d, [=](Workspace& ws) {
        T* x = ws.random<T>(n);
        float* y = ws.raw(n);
        return set_of([=] { vit::cuda::convert(x, y, n); }, y, n);
      });
      // acc += float(g): read g (2n), read and write acc (8n) bytes.
      bench(ctx, "accumulate_widened", "bf16", shape, 10 * d, 0, Ceil::None, 6 * d, [=](Workspace& ws) {
        T* g = ws.random<T>(n, -1e-2f, 1e-2f);
        float* acc = ws.random(n);
        return set_of([=] { vit::cuda::accumulate_widened(g, acc, n); }, acc, n);
      });
    }
  }
}

/// dtype "fp32"/"tf32" with T = float, "bf16" with T = bf16.
template <class T>
void bench_gemm(const Ctx& ctx, const std::string& dt) {
  if constexpr (!vit_bench::HasGemm<T>) {
    missing(ctx, "gemm", dt, "vit::cuda::gemm(..., const bf16* A, lda, const bf16* B, ldb, beta, bf16* C, ldc)");
  } else {
    constexpr double s = sizeof(T);
    const bool tf32 = dt == "tf32";
    const Ceil ceil = ceil_of(dt);
    for (const BN& sh : kBN)
      for (const int64_t C : kC) {
        const int64_t R = sh.B * sh.N;
        const std::string tail =
            " B=" + std::to_string(sh.B) + " N=" + std::to_string(sh.N) + " C=" + std::to_string(C);
        // Linear forward y = x·Wᵀ (ops::linear's gemm(false, true)), out = 3C (qkv) and 4C (fc1):
        // read x (R·C), W (out·C), write y (R·out).
        for (const int64_t mult : {3, 4}) {
          const int64_t O = mult * C;
          const double bytes = s * (static_cast<double>(R) * C + O * C + static_cast<double>(R) * O);
          bench(ctx, "gemm", dt, (mult == 3 ? "qkv" : "fc1") + tail, bytes, 2.0 * R * O * C, ceil, bytes,
                [=](Workspace& ws) {
                  T *x = ws.random<T>(R * C), *w = ws.random<T>(O * C, -0.05f, 0.05f), *y = ws.raw<T>(R * O);
                  return set_of(
                      [=] {
                        vit::cuda::set_allow_tf32(tf32);
                        vit::cuda::gemm(false, true, R, O, C, 1.f, x, C, w, C, 0.f, y, O);
                      },
                      y, R * O);
                });
          // The same with the bias in cuBLASLt's epilogue (read bias: O more elements).
          if constexpr (vit_bench::HasGemmBias<T>)
            bench(ctx, "gemm_bias", dt, (mult == 3 ? "qkv" : "fc1") + tail, bytes + s * O, 2.0 * R * O * C, ceil,
                  bytes + s * O, [=](Workspace& ws) {
                    T *x = ws.random<T>(R * C), *w = ws.random<T>(O * C, -0.05f, 0.05f), *y = ws.raw<T>(R * O);
                    T* bias = ws.random<T>(O);
                    return set_of([=] { vit::cuda::gemm_bias(false, true, R, O, C, 1.f, x, C, w, C, 0.f, y, O, bias); },
                                  y, R * O);
                  });
        }
        // fc1's weight gradient dW (4C, C) += doutᵀ·x (gemm(true, false), beta 1):
        // read dout (R·4C), x (R·C), dW read and written (2·4C·C).
        const int64_t O = 4 * C;
        const double bytes = s * (static_cast<double>(R) * O + static_cast<double>(R) * C + 2.0 * O * C);
        bench(ctx, "gemm", dt, "fc1.dW" + tail, bytes, 2.0 * R * O * C, ceil, bytes, [=](Workspace& ws) {
          T *dout = ws.random<T>(R * O), *x = ws.random<T>(R * C), *dw = ws.random<T>(O * C);
          return set_of(
              [=] {
                vit::cuda::set_allow_tf32(tf32);
                vit::cuda::gemm(true, false, O, C, R, 1.f, dout, O, x, C, 1.f, dw, C);
              },
              dw, O * C);
        });
      }
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
  std::printf("\n## vit::cuda kernels (median GPU time; %% of copy %.0f GB/s, GEMM fp32 %.1f / tf32 %.1f / bf16 %.1f "
              "TFLOP/s)\n\n",
              ctx.copy_gbps, ctx.gemm_tflops_fp32, ctx.gemm_tflops_tf32, ctx.gemm_tflops_bf16);
  std::printf("| kernel | dtype | shape | us | MB | GB/s | %%copy | TFLOP/s | %%gemm | note |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
  for (const Row& r : g_rows)
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.kernel.c_str(), r.dtype.c_str(),
                r.shape.c_str(), num(r.time_us, 1).c_str(), num(r.bytes * 1e-6, 1).c_str(), num(r.gbps, 0).c_str(),
                num(r.pct_copy, 1).c_str(), num(r.tflops, 2).c_str(), num(r.pct_gemm, 1).c_str(), r.note.c_str());
  std::fflush(stdout);
}

void write_csv(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "bench_cuda_kernels: cannot write %s\n", path.c_str());
    return;
  }
  std::fprintf(f, "kernel,dtype,shape,time_us,bytes,gbps,pct_copy,gflop,tflops,pct_gemm,sets,note\n");
  for (const Row& r : g_rows) {
    std::string note = r.note;
    std::replace(note.begin(), note.end(), ',', ';');
    std::replace(note.begin(), note.end(), '\n', ' ');
    std::fprintf(f, "%s,%s,%s,%s,%.0f,%s,%s,%s,%s,%s,%d,%s\n", r.kernel.c_str(), r.dtype.c_str(), r.shape.c_str(),
                 num(r.time_us, 3).c_str(), r.bytes, num(r.gbps, 2).c_str(), num(r.pct_copy, 2).c_str(),
                 num(r.flops * 1e-9, 4).c_str(), num(r.tflops, 3).c_str(), num(r.pct_gemm, 2).c_str(), r.sets,
                 note.c_str());
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  Ctx ctx;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--runs" || a == "--filter" || a == "--dtypes") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--runs") ctx.runs = std::max(50, std::atoi(v.c_str()));  // the floor: >= 50 runs
      else if (a == "--dtypes") ctx.dtypes = v;
      else ctx.filter = v;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_cuda_kernels [CSV_PATH] [--runs N (>= 50, default 60)] [--filter SUBSTRING]\n"
                  "                          [--dtypes fp32,tf32,bf16 (default all)]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-') {
      ctx.csv = a;
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
    std::printf("L2 %.1f MiB: each case rotates over input/output sets totalling > 3x L2; median of %d runs; "
                "dtypes %s\n",
                static_cast<double>(ctx.l2_bytes) / (1 << 20), ctx.runs, ctx.dtypes.c_str());
    std::printf("ceilings (measured here, now):\n");
    measure_ceilings(ctx);
    std::printf("kernels, the bars' bf16 rows first:\n");
    bench_layer_norm<bf16>(ctx);
    bench_gelu<bf16>(ctx);
    bench_bias_gelu<bf16>(ctx);
    bench_softmax<bf16>(ctx);
    bench_attention<bf16>(ctx, "bf16");
    bench_attention<float>(ctx, "tf32");
    bench_attention<float>(ctx, "fp32");
    bench_gemm<bf16>(ctx, "bf16");
    bench_convert<bf16>(ctx);
    bench_layer_norm<float>(ctx);
    bench_gelu<float>(ctx);
    bench_bias_gelu<float>(ctx);
    bench_softmax<float>(ctx);
    bench_cross_entropy(ctx);
    bench_patchify(ctx);
    bench_adam(ctx);
    bench_gemm<float>(ctx, "fp32");
    bench_gemm<float>(ctx, "tf32");
  } catch (const std::exception& e) {
    std::printf("bench_cuda_kernels: stopped: %s\n", e.what());
  }
  if (!ctx.csv.empty()) {
    write_csv(ctx.csv);
    std::printf("wrote %s (%zu rows)\n", ctx.csv.c_str(), g_rows.size());
  }
  print_table(ctx);
  return 0;
}
