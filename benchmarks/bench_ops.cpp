// bench_ops: Google Benchmark microbenchmarks of the raw CPU kernels in
// vit::ops at the shapes a small ViT trains at (B·N = 128·65 = 8320 token rows,
// C = 192/384, MLP 384/768, heads 3/6 with D = 64, N = 65), on 1 thread and on
// all threads.
//
// What is timed: one call of a kernel (ops::gemm, layer_norm_forward, ...) on
// buffers allocated, filled and touched before the timing loop, so allocation
// and page faults are not measured. Wall time (UseRealTime): the kernels fork
// OpenMP teams, and per-thread CPU time would hide that.
//
// Against which ceiling: at start-up the program measures this CPU's FP32 FMA
// peak (peak_flops.hpp) for each thread count and its copy bandwidth. GEMM and
// attention rows report GFLOP/s and pct_peak = 100 · GFLOP/s / measured peak
// for that row's thread count. linear rows count only their GEMM flops (the
// bias and bias-gradient work rides along inside the GEMMs). Memory-bound rows (layer_norm, softmax, gelu)
// report `bytes`, a rate in GB/s of compulsory traffic (each input read once,
// each output written once), to be read against the copy bandwidth; their
// tensors (6-26 MB each) partly fit the 32 MB L3, so they can exceed it.
//
// Before a GEMM is timed, 32 entries of its result are checked against a
// double-precision dot product: a fast wrong kernel reports an error, not a number.
//
// Extra flag (before or among the --benchmark_* flags):
//   --threads=LIST   comma-separated thread counts (default: 1 and max threads)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "peak_flops.hpp"
#include "vit/vit.hpp"

namespace {

// ---- ceilings ---------------------------------------------------------------
std::map<int, double>& peak_gflops() {  // thread count -> measured FP32 peak
  static std::map<int, double> m;
  return m;
}
double g_copy_gbs = 0;

// ---- buffers ----------------------------------------------------------------
struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], FreeDeleter>;

// 64-byte aligned, filled with uniform values in [lo, hi) (so every page is touched).
Buffer make_buffer(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  const size_t bytes =
      (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  Buffer b(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!b) throw std::bad_alloc();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;  // xorshift64: cheap, good enough for inputs
    b[i] = lo + (hi - lo) * static_cast<float>(s >> 40) * 0x1.0p-24f;
  }
  return b;
}

// Runs the timing loop and returns its wall time in seconds (the same interval
// Google Benchmark times with UseRealTime), so plain counters can be derived from it.
template <class F>
double timed_loop(benchmark::State& state, F&& kernel) {
  const double t0 = vit_bench::wall_seconds();
  for (auto _ : state) {
    kernel();
    benchmark::ClobberMemory();
  }
  return vit_bench::wall_seconds() - t0;
}

// GFLOP/s and pct_peak as plain numbers (a rate counter would print "GFLOP/s=95/s").
void set_flops_counters(benchmark::State& state, double flops_per_iter, double seconds,
                        int threads) {
  if (seconds <= 0 || state.iterations() == 0) return;
  const double gflops = flops_per_iter * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  const double peak = peak_gflops()[threads];
  if (peak > 0) state.counters["pct_peak"] = 100.0 * gflops / peak;
}

// Bytes moved per iteration as a rate: prints "bytes=12.3G/s" (1e9 bytes/s).
void set_bytes_counter(benchmark::State& state, double bytes_per_iter) {
  state.counters["bytes"] = benchmark::Counter(
      bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// ---- GEMM -------------------------------------------------------------------
// C(M,N) = op(A)(M,K) · op(B)(K,N) + beta·C, row-major, tight leading dims.
void bm_gemm(benchmark::State& state, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float beta,
             int threads) {
  vit::set_num_threads(threads);
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  Buffer A = make_buffer(M * K, 1), B = make_buffer(K * N, 2), C = make_buffer(M * N, 3);

  // Check before timing: beta = 0 so the reference is a plain dot product.
  vit::ops::gemm<float>(ta, tb, M, N, K, 1.0f, A.get(), lda, B.get(), ldb, 0.0f, C.get(), N);
  uint64_t s = 12345;
  for (int probe = 0; probe < 32; ++probe) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t i = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(M));
    const int64_t j = static_cast<int64_t>((s >> 13) % static_cast<uint64_t>(N));
    double ref = 0, mag = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double a = ta ? A[k * lda + i] : A[i * lda + k];
      const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
      ref += a * b;
      mag += std::fabs(a * b);
    }
    const double err = std::fabs(C[i * N + j] - ref);
    if (err > 1e-5 * mag + 1e-6) {
      std::ostringstream msg;
      msg << "gemm result wrong at (" << i << "," << j << "): " << C[i * N + j] << " vs " << ref;
      state.SkipWithError(msg.str().c_str());
      return;
    }
  }

  const double sec = timed_loop(state, [&] {
    vit::ops::gemm<float>(ta, tb, M, N, K, 1.0f, A.get(), lda, B.get(), ldb, beta, C.get(), N);
  });
  set_flops_counters(state, 2.0 * M * N * K, sec, threads);
}

// ---- linear: forward with the bias folded into the GEMM; backward dx, dW, db --
void bm_linear_fwd(benchmark::State& state, int64_t R, int64_t in, int64_t out, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * in, 1), w = make_buffer(out * in, 2, -0.1f, 0.1f);
  Buffer b = make_buffer(out, 3), y = make_buffer(R * out, 4);
  const double sec = timed_loop(
      state, [&] { vit::ops::linear_forward(x.get(), w.get(), b.get(), y.get(), R, in, out); });
  set_flops_counters(state, 2.0 * R * in * out, sec, threads);
}

void bm_linear_bwd(benchmark::State& state, int64_t R, int64_t in, int64_t out, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * in, 1), w = make_buffer(out * in, 2, -0.1f, 0.1f);
  Buffer dy = make_buffer(R * out, 3), dx = make_buffer(R * in, 4);
  Buffer dw = make_buffer(out * in, 5), db = make_buffer(out, 6);
  const double sec = timed_loop(state, [&] {
    vit::ops::linear_backward(dy.get(), x.get(), w.get(), dx.get(), dw.get(), db.get(), R, in,
                              out);
  });
  set_flops_counters(state, 4.0 * R * in * out, sec, threads);  // dx and dW
}

// ---- layer_norm (R,C) ---------------------------------------------------------
void bm_layer_norm_fwd(benchmark::State& state, int64_t R, int64_t C, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * C, 1), w = make_buffer(C, 2, 0.5f, 1.5f), b = make_buffer(C, 3);
  Buffer out = make_buffer(R * C, 4), mean = make_buffer(R, 5), rstd = make_buffer(R, 6);
  timed_loop(state, [&] {
    vit::ops::layer_norm_forward(x.get(), w.get(), b.get(), out.get(), mean.get(), rstd.get(), R, C,
                                 1e-6f);
  });
  // read x, w, b; write out, mean, rstd
  set_bytes_counter(state, 4.0 * (2 * R * C + 2 * C + 2 * R));
}

void bm_layer_norm_bwd(benchmark::State& state, int64_t R, int64_t C, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * C, 1), w = make_buffer(C, 2, 0.5f, 1.5f), b = make_buffer(C, 3);
  Buffer out = make_buffer(R * C, 4), mean = make_buffer(R, 5), rstd = make_buffer(R, 6);
  Buffer dout = make_buffer(R * C, 7), dx = make_buffer(R * C, 8);
  Buffer dw = make_buffer(C, 9), db = make_buffer(C, 10);
  vit::ops::layer_norm_forward(x.get(), w.get(), b.get(), out.get(), mean.get(), rstd.get(), R, C,
                               1e-6f);  // real mean/rstd for the backward
  timed_loop(state, [&] {
    vit::ops::layer_norm_backward(dout.get(), x.get(), w.get(), mean.get(), rstd.get(), dx.get(),
                                  dw.get(), db.get(), R, C);
  });
  // read dout, x, w, mean, rstd, dw, db; write dx, dw, db
  set_bytes_counter(state, 4.0 * (3 * R * C + 2 * R + 5 * C));
}

// ---- softmax over rows of length n (attention probabilities: R = B·H·N, n = N) --
void bm_softmax_fwd(benchmark::State& state, int64_t R, int64_t n, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * n, 1, -4.0f, 4.0f), y = make_buffer(R * n, 2);
  timed_loop(state, [&] { vit::ops::softmax_forward(x.get(), y.get(), R, n); });
  set_bytes_counter(state, 4.0 * 2 * R * n);  // read x, write y
}

void bm_softmax_bwd(benchmark::State& state, int64_t R, int64_t n, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(R * n, 1, -4.0f, 4.0f), y = make_buffer(R * n, 2);
  Buffer dy = make_buffer(R * n, 3), dx = make_buffer(R * n, 4);
  vit::ops::softmax_forward(x.get(), y.get(), R, n);
  timed_loop(state, [&] { vit::ops::softmax_backward(y.get(), dy.get(), dx.get(), R, n); });
  set_bytes_counter(state, 4.0 * 3 * R * n);  // read y, dy; write dx
}

// ---- gelu (exact erf form, the ViT default) over n elements ----------------
void bm_gelu_fwd(benchmark::State& state, int64_t n, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(n, 1, -3.0f, 3.0f), y = make_buffer(n, 2);
  timed_loop(state, [&] { vit::ops::gelu_forward(x.get(), y.get(), n, vit::GeluApprox::None); });
  set_bytes_counter(state, 4.0 * 2 * n);
}

void bm_gelu_bwd(benchmark::State& state, int64_t n, int threads) {
  vit::set_num_threads(threads);
  Buffer x = make_buffer(n, 1, -3.0f, 3.0f), dy = make_buffer(n, 2), dx = make_buffer(n, 3);
  timed_loop(state, [&] {
    vit::ops::gelu_backward(dy.get(), x.get(), dx.get(), n, vit::GeluApprox::None);
  });
  set_bytes_counter(state, 4.0 * 3 * n);
}

// ---- fused attention: qkv (B,N,3C) -> out (B,N,C), probs (B,H,N,N) ----------
void bm_attention_fwd(benchmark::State& state, int64_t B, int64_t N, int64_t C, int64_t H,
                      int threads) {
  vit::set_num_threads(threads);
  Buffer qkv = make_buffer(B * N * 3 * C, 1), out = make_buffer(B * N * C, 2);
  Buffer probs = make_buffer(B * H * N * N, 3);
  const double sec = timed_loop(
      state, [&] { vit::ops::attention_forward(qkv.get(), out.get(), probs.get(), B, N, C, H); });
  const int64_t D = C / H;
  set_flops_counters(state, 4.0 * B * H * N * N * D, sec, threads);  // q·kᵀ and p·v
}

void bm_attention_bwd(benchmark::State& state, int64_t B, int64_t N, int64_t C, int64_t H,
                      int threads) {
  vit::set_num_threads(threads);
  Buffer qkv = make_buffer(B * N * 3 * C, 1), out = make_buffer(B * N * C, 2);
  Buffer probs = make_buffer(B * H * N * N, 3);
  Buffer dout = make_buffer(B * N * C, 4), dqkv = make_buffer(B * N * 3 * C, 5);
  vit::ops::attention_forward(qkv.get(), out.get(), probs.get(), B, N, C, H);  // real probs
  const double sec = timed_loop(state, [&] {
    vit::ops::attention_backward(dout.get(), qkv.get(), probs.get(), dqkv.get(), B, N, C, H);
  });
  const int64_t D = C / H;
  set_flops_counters(state, 8.0 * B * H * N * N * D, sec, threads);  // dV, dP, dQ, dK
}

// ---- registration -----------------------------------------------------------
template <class F>
void add(const std::string& name, F&& f, benchmark::TimeUnit unit = benchmark::kMicrosecond) {
  benchmark::RegisterBenchmark(name.c_str(), std::forward<F>(f))->UseRealTime()->Unit(unit);
}

// Benchmark names by concatenation through a stream (GCC 12 warns falsely on
// chains of "literal" + std::string temporaries).
template <class... A>
std::string cat(const A&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

void register_all(const std::vector<int>& thread_counts) {
  constexpr int64_t kBatch = 128, kTokens = 65, kRows = kBatch * kTokens;  // 8320
  struct Width {
    int64_t C, mlp, heads;
  };
  const Width widths[] = {{192, 384, 3}, {384, 768, 6}};

  for (int t : thread_counts) {
    const std::string th = cat("/threads:", t);
    // Linear layers as ops::linear runs them: forward y = x·Wᵀ (NT),
    // dx = dy·W (NN), dW += dyᵀ·x (TN, accumulating).
    for (const Width& w : widths) {
      struct Layer {
        const char* name;
        int64_t in, out;
      };
      const Layer layers[] = {
          {"qkv", w.C, 3 * w.C}, {"proj", w.C, w.C}, {"fc1", w.C, w.mlp}, {"fc2", w.mlp, w.C}};
      for (const Layer& l : layers) {
        const int64_t R = kRows, in = l.in, out = l.out;
        add(cat("gemm_NT_fwd/", l.name, "_C", w.C, "/M:", R, "/N:", out, "/K:", in, th),
            [=](benchmark::State& s) { bm_gemm(s, false, true, R, out, in, 0.0f, t); });
        add(cat("gemm_NN_dx/", l.name, "_C", w.C, "/M:", R, "/N:", in, "/K:", out, th),
            [=](benchmark::State& s) { bm_gemm(s, false, false, R, in, out, 0.0f, t); });
        add(cat("gemm_TN_dW/", l.name, "_C", w.C, "/M:", out, "/N:", in, "/K:", R, th),
            [=](benchmark::State& s) { bm_gemm(s, true, false, out, in, R, 1.0f, t); });
      }
    }
    // The same layers through ops::linear: forward with its bias (added inside
    // the GEMM), backward with dx, dW and db (db summed inside the dW GEMM).
    for (const Width& w : widths) {
      const std::pair<const char*, std::pair<int64_t, int64_t>> layers[] = {
          {"qkv", {w.C, 3 * w.C}}, {"proj", {w.C, w.C}}, {"fc1", {w.C, w.mlp}}, {"fc2", {w.mlp, w.C}}};
      for (const auto& [name, io] : layers) {
        const int64_t in = io.first, out = io.second;
        add(cat("linear_fwd/", name, "_C", w.C, "/R:", kRows, "/in:", in, "/out:", out, th),
            [=](benchmark::State& s) { bm_linear_fwd(s, kRows, in, out, t); });
        add(cat("linear_bwd/", name, "_C", w.C, "/R:", kRows, "/in:", in, "/out:", out, th),
            [=](benchmark::State& s) { bm_linear_bwd(s, kRows, in, out, t); });
      }
    }
    // The large square reference shape, where a good kernel should sit near peak.
    const int64_t S = 2048;
    for (auto [ta, tb, form] : {std::tuple{false, true, "NT"}, std::tuple{false, false, "NN"},
                                std::tuple{true, false, "TN"}})
      add(
          cat("gemm_", form, "/square/M:", S, "/N:", S, "/K:", S, th),
          [=](benchmark::State& s) { bm_gemm(s, ta, tb, S, S, S, 0.0f, t); },
          benchmark::kMillisecond);

    for (const Width& w : widths) {
      const int64_t C = w.C;
      const std::string shape = cat("/R:", kRows, "/C:", C, th);
      add(cat("layer_norm_fwd", shape),
          [=](benchmark::State& s) { bm_layer_norm_fwd(s, kRows, C, t); });
      add(cat("layer_norm_bwd", shape),
          [=](benchmark::State& s) { bm_layer_norm_bwd(s, kRows, C, t); });
    }
    for (const Width& w : widths) {
      const int64_t R = kBatch * w.heads * kTokens;
      const std::string shape = cat("/R:", R, "/n:", kTokens, th);
      add(cat("softmax_fwd", shape),
          [=](benchmark::State& s) { bm_softmax_fwd(s, R, kTokens, t); });
      add(cat("softmax_bwd", shape),
          [=](benchmark::State& s) { bm_softmax_bwd(s, R, kTokens, t); });
    }
    for (const Width& w : widths) {
      const int64_t n = kRows * w.mlp;
      const std::string shape = cat("/n:", kRows, "x", w.mlp, th);
      add(cat("gelu_fwd", shape), [=](benchmark::State& s) { bm_gelu_fwd(s, n, t); });
      add(cat("gelu_bwd", shape), [=](benchmark::State& s) { bm_gelu_bwd(s, n, t); });
    }
    for (const Width& w : widths) {
      const int64_t C = w.C, H = w.heads;
      const std::string shape = cat("/B:", kBatch, "/N:", kTokens, "/C:", C, "/H:", H, th);
      add(
          cat("attention_fwd", shape),
          [=](benchmark::State& s) { bm_attention_fwd(s, kBatch, kTokens, C, H, t); },
          benchmark::kMillisecond);
      add(
          cat("attention_bwd", shape),
          [=](benchmark::State& s) { bm_attention_bwd(s, kBatch, kTokens, C, H, t); },
          benchmark::kMillisecond);
    }
    // 224-pixel, patch-16 token count (N = 197) at ViT-Tiny width, quarter batch.
    {
      constexpr int64_t B = 32, N = 197, C = 192, H = 3;
      const std::string shape = cat("/B:", B, "/N:", N, "/C:", C, "/H:", H, th);
      add(
          cat("attention_fwd", shape),
          [=](benchmark::State& s) { bm_attention_fwd(s, B, N, C, H, t); },
          benchmark::kMillisecond);
      add(
          cat("attention_bwd", shape),
          [=](benchmark::State& s) { bm_attention_bwd(s, B, N, C, H, t); },
          benchmark::kMillisecond);
    }
  }
}

// Parses and removes --threads=LIST from argv. Returns false on a malformed list.
bool take_threads_flag(int& argc, char** argv, std::vector<int>& out) {
  int w = 1;
  bool ok = true;
  for (int r = 1; r < argc; ++r) {
    const char* a = argv[r];
    if (std::strncmp(a, "--threads=", 10) != 0) {
      argv[w++] = argv[r];
      continue;
    }
    out.clear();
    std::stringstream ss(a + 10);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      const long v = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || v < 1 || v > 1024)
        ok = false;
      else
        out.push_back(static_cast<int>(v));
    }
    if (out.empty()) ok = false;
  }
  argc = w;
  argv[argc] = nullptr;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const int max_t = vit_bench::max_threads();
  std::vector<int> thread_counts = {1};
  if (max_t > 1) thread_counts.push_back(max_t);
  if (!take_threads_flag(argc, argv, thread_counts)) {
    std::fprintf(
        stderr,
        "bench_ops: --threads needs a comma-separated list of counts >= 1, e.g. --threads=1,2\n");
    return 2;
  }
  std::sort(thread_counts.begin(), thread_counts.end());
  thread_counts.erase(std::unique(thread_counts.begin(), thread_counts.end()), thread_counts.end());

  // Listing the benchmarks needs no ceilings; skip the ~1 s of measuring them.
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--benchmark_list_tests", 0) == 0 && a.find("=false") == std::string::npos &&
        a.find("=0") == std::string::npos)
      listing = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  if (!listing) {
    std::printf("# ceilings measured on this machine (%s)\n", vit_bench::peak_method().c_str());
    for (int t : thread_counts) {
      peak_gflops()[t] = vit_bench::measure_peak_gflops(t);
      std::printf("#   FP32 peak, %d thread%s: %.1f GFLOP/s\n", t, t > 1 ? "s" : "",
                  peak_gflops()[t]);
      benchmark::AddCustomContext("peak_gflops_threads_" + std::to_string(t),
                                  std::to_string(peak_gflops()[t]));
    }
    g_copy_gbs = vit_bench::measure_copy_gbs(max_t);
    std::printf("#   copy bandwidth, %d thread%s (2x128 MiB memcpy, read+write bytes): %.1f GB/s\n",
                max_t, max_t > 1 ? "s" : "", g_copy_gbs);
    std::printf(
        "# pct_peak = 100 * GFLOP/s / peak at that row's thread count; "
        "bytes=X/s rows count each input read once and each output written once,\n"
        "# to be read against the copy bandwidth (working sets that fit in L3 can beat it)\n");
    std::fflush(stdout);
    benchmark::AddCustomContext("copy_gbs", std::to_string(g_copy_gbs));
  }

  register_all(thread_counts);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
