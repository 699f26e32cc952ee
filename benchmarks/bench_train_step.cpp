// bench_train_step: wall time of one full ViT training step (or one inference
// forward) on the CPU, the workload benchmarks/torch_train_step.py runs in PyTorch.
//
//   --mode train (default):
//     step = zero_grad, forward, cross_entropy (label smoothing 0.1), backward,
//            AdamW (lr 1e-3, weight decay 0.05 on timm's default groups)
//   --mode infer:
//     step = one forward of the batch in eval mode without autograd
//            (NoGradGuard, as vit eval does): logits only
//   --precision fp32 (default): the float32 model
//   --precision bf16: vit::nn::MixedPrecision, as `vit train/eval --precision bf16`:
//     a bf16 twin runs forward (and backward), float32 logits and loss, float32
//     master weights and AdamW state (the optimizer refreshes the twin)
//
// on random inputs of the preset's image size and random labels. W warm-up
// steps (default 2) fill the caching allocator and the GEMM packing buffers;
// then S steps are timed one by one.
//
// Reports, against which ceiling:
//   img/s           batch · S / total time of the S steps (torch_train_step.py's definition)
//   step_ms         median of the per-step times (also min and mean in the text lines)
//   gflop_per_s     analytic FLOPs of a step (train: 3 × forward, infer: 1 × forward;
//                   forward = 2 · MACs of patch-embed, qkv, attention's q·kᵀ and p·v,
//                   proj, fc1, fc2, head) divided by the median step time, and as
//                   pct_peak of this CPU's FP32 FMA peak measured after the run
//                   (peak_flops.hpp) on the same thread count; bf16 runs against
//                   the bf16 dot-product (vdpbf16ps) peak where the build has
//                   AVX512-BF16 (peak_kind says which).
//                   Elementwise ops, norms and the optimizer are not counted: they
//                   are the overhead.
//   allocs_per_step caching-allocator calls that reached the system allocator during
//                   the timed steps, per step (tensor buffers; 0 in steady state)
//   new_per_step    global operator new calls per timed step (graph nodes, handles,
//                   small vectors: the bookkeeping the allocator does not cover)
//   peak_rss_mb     getrusage ru_maxrss of the process
//
// The last line of output is one JSON object with all of the above, and mode,
// precision, loss_first/loss_last (train; null in infer) and logit_mean (infer:
// the last forward's mean logit, a finite-output check; null in train).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "peak_flops.hpp"
#include "vit/nn/mixed_precision.hpp"
#include "vit/vit.hpp"

// ---- counting global operator new ---------------------------------------------
// malloc/free underneath, as libstdc++'s own. GCC cannot see that this new and
// this delete are a pair once both are inlined, hence the pragma.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<uint64_t> g_new_calls{0};
}
void* operator new(std::size_t n) {
  g_new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct Args {
  std::string model = "cifar-tiny";
  int64_t batch = 128;
  int64_t threads = 0;  // 0: all (OpenMP's default)
  int64_t steps = 10;
  int64_t warmup = 2;
  uint64_t seed = 0;
  std::string precision = "fp32";  // fp32 | bf16
  std::string mode = "train";      // train | infer
};

const char* kUsage =
    "usage: bench_train_step [--model PRESET] [--batch B] [--threads T] [--steps S]\n"
    "                        [--warmup W] [--seed N] [--precision fp32|bf16] [--mode train|infer]\n"
    "  defaults: --model cifar-tiny --batch 128 --threads <all> --steps 10 --warmup 2 --seed 0\n"
    "            --precision fp32 --mode train\n"
    "  --mode train: a step is zero_grad, forward, cross-entropy (smoothing 0.1), backward, AdamW\n"
    "  --mode infer: a step is one forward of the batch in eval mode, without autograd\n"
    "  --precision bf16: vit::nn::MixedPrecision (the bf16 twin computes, float32 master\n"
    "                    weights, logits, loss and AdamW), as vit train/eval --precision bf16\n";

[[noreturn]] void bad_arg(const std::string& msg) {
  std::fprintf(stderr, "bench_train_step: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

int64_t parse_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi) {
    std::ostringstream os;
    os << flag << " expects an integer in [" << lo << ", " << hi << "], got '" << v << "'";
    bad_arg(os.str());
  }
  return x;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag.rfind("--", 0) != 0) bad_arg("unexpected argument '" + flag + "'");
    const size_t eq = flag.find('=');
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) bad_arg(flag + " needs a value");
      value = argv[++i];
    }
    if (flag == "--model") {
      if (value.empty()) bad_arg("--model needs a preset name");
      a.model = value;
    } else if (flag == "--batch")
      a.batch = parse_int(flag, value, 1, 1 << 20);
    else if (flag == "--threads")
      a.threads = parse_int(flag, value, 1, 1024);
    else if (flag == "--steps")
      a.steps = parse_int(flag, value, 1, 1 << 30);
    else if (flag == "--warmup")
      a.warmup = parse_int(flag, value, 0, 1 << 30);
    else if (flag == "--seed")
      a.seed = static_cast<uint64_t>(parse_int(flag, value, 0, INT64_MAX));
    else if (flag == "--precision") {
      if (value != "fp32" && value != "bf16")
        bad_arg("--precision expects fp32 or bf16, got '" + value + "'");
      a.precision = value;
    } else if (flag == "--mode") {
      if (value != "train" && value != "infer")
        bad_arg("--mode expects train or infer, got '" + value + "'");
      a.mode = value;
    }
    else
      bad_arg("unknown option '" + flag + "'");
  }
  return a;
}

// Multiply-adds of one image's forward pass, the GEMM-shaped work only.
double forward_macs_per_image(const vit::nn::VitConfig& c) {
  const double P = static_cast<double>(c.patch_size), C = static_cast<double>(c.dim);
  const double np = std::pow(static_cast<double>(c.image_size / c.patch_size), 2);
  const double N = np + 1, M = static_cast<double>(c.mlp_dim);
  double macs = np * (static_cast<double>(c.in_chans) * P * P) * C;  // patch embed
  const double block = N * C * 3 * C                                 // qkv
                       + 2 * N * N * C   // q·kᵀ and p·v over all heads
                       + N * C * C       // proj
                       + N * C * M * 2;  // fc1, fc2
  macs += block * static_cast<double>(c.depth);
  double head_in = C;
  if (c.representation_size > 0) {
    macs += C * static_cast<double>(c.representation_size);
    head_in = static_cast<double>(c.representation_size);
  }
  macs += head_in * static_cast<double>(c.num_classes);  // head on the cls token
  return macs;
}

std::string json_number(double v, int digits) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << v;
  return os.str();
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const int threads = args.threads > 0 ? static_cast<int>(args.threads) : vit::num_threads();
  vit::set_num_threads(threads);

  std::unique_ptr<vit::nn::VisionTransformer<float>> model;
  try {
    model = vit::nn::create_vit<float>(args.model, 0, args.seed);
  } catch (const vit::Error& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 2;
  }

  try {
    const vit::nn::VitConfig& cfg = model->config;
    const bool train = args.mode == "train", bf16 = args.precision == "bf16";
    if (train) model->train();
    else model->eval();
    vit::Generator data_gen(args.seed ^ 0xda7a5eedull);
    const vit::TensorF x = vit::TensorF::normal(
        {args.batch, cfg.in_chans, cfg.image_size, cfg.image_size}, 0.0, 1.0, data_gen);
    std::vector<int64_t> labels(static_cast<size_t>(args.batch));
    for (auto& y : labels) y = static_cast<int64_t>(data_gen.next_u64() % cfg.num_classes);

    vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model->named_parameters(), 0.05),
                                 {1e-3});
    // bf16: the model's bf16 twin, exactly as `vit train` (use_precision: the
    // optimizer's steps refresh the twin) and `vit eval` (inference_precision) make it.
    std::unique_ptr<vit::nn::MixedPrecision> mixed;
    if (bf16) {
      mixed = std::make_unique<vit::nn::MixedPrecision>(*model);
      if (train) mixed->attach(opt);
    }
    // One timed step; returns the loss (train) or the mean of the logits (infer,
    // a checksum that the forward ran and stayed finite).
    auto train_step = [&]() {
      // As the trainer's micro_step: zero_grad, forward (the twin's in bf16,
      // float32 logits), float32 loss, backward, the bf16 graph, AdamW.
      opt.zero_grad();
      const vit::TensorF logits = mixed ? mixed->forward(x) : model->forward(x);
      vit::TensorF loss = vit::cross_entropy(logits, labels, 0.1);
      loss.backward();
      if (mixed) mixed->backward();
      opt.step();
      return static_cast<double>(loss.item());
    };
    auto infer_step = [&]() {
      // As vit eval (examples/vit/common.hpp evaluate): eval mode, no graph.
      vit::NoGradGuard no_grad;
      const vit::TensorF logits = mixed ? mixed->forward(x) : model->forward(x);
      const float* p = logits.data();
      double sum = 0;
      for (int64_t i = 0, n = logits.numel(); i < n; ++i) sum += p[i];
      return sum / static_cast<double>(logits.numel());
    };
    auto step = [&]() { return train ? train_step() : infer_step(); };

    std::printf(
        "bench_train_step: model %s (image %lld, patch %lld, dim %lld, depth %lld, heads %lld, "
        "mlp %lld, %lld classes, %.2fM params), batch %lld, threads %d, mode %s, precision %s\n",
        cfg.name.c_str(), static_cast<long long>(cfg.image_size),
        static_cast<long long>(cfg.patch_size), static_cast<long long>(cfg.dim),
        static_cast<long long>(cfg.depth), static_cast<long long>(cfg.heads),
        static_cast<long long>(cfg.mlp_dim), static_cast<long long>(cfg.num_classes),
        static_cast<double>(model->num_parameters()) * 1e-6, static_cast<long long>(args.batch),
        threads, args.mode.c_str(), args.precision.c_str());
    std::fflush(stdout);

    double loss_first = NAN, loss_last = NAN;
    for (int64_t i = 0; i < args.warmup; ++i) {
      const double l = step();
      if (i == 0) loss_first = l;
    }

    auto& alloc = vit::CpuCachingAllocator::instance();
    const vit::AllocatorStats before = alloc.stats();
    const uint64_t new_before = g_new_calls.load();
    std::vector<double> step_s;
    step_s.reserve(static_cast<size_t>(args.steps));
    const double t_start = vit_bench::wall_seconds();
    for (int64_t i = 0; i < args.steps; ++i) {
      const double t0 = vit_bench::wall_seconds();
      loss_last = step();
      step_s.push_back(vit_bench::wall_seconds() - t0);
      if (args.warmup == 0 && i == 0) loss_first = loss_last;
    }
    const double total_s = vit_bench::wall_seconds() - t_start;
    const uint64_t new_calls = g_new_calls.load() - new_before;
    const vit::AllocatorStats after = alloc.stats();

    std::vector<double> sorted = step_s;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double median_s = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    double mean_s = 0;
    for (double s : step_s) mean_s += s / static_cast<double>(n);

    const double img_per_s = static_cast<double>(args.batch * args.steps) / total_s;
    const double forwards_per_step = train ? 3.0 : 1.0;  // backward ≈ 2 × forward
    const double step_gflop = forwards_per_step * 2.0 * forward_macs_per_image(cfg) *
                              static_cast<double>(args.batch) * 1e-9;
    const double gflop_per_s = step_gflop / median_s;
    const double system_allocs = static_cast<double>(after.system_allocs - before.system_allocs);
    const double allocs_per_step = system_allocs / static_cast<double>(args.steps);
    const double new_per_step = static_cast<double>(new_calls) / static_cast<double>(args.steps);
    const double peak_in_use_mb = static_cast<double>(after.peak_bytes_in_use) / (1 << 20);

    // The ceiling, measured after the timed steps so it cannot disturb them.
    // bf16 runs are held to the bf16 dot-product peak (vdpbf16ps) where the
    // build has one, else to the fp32 FMA peak their float32 math runs at.
    const double peak_fp32 = vit_bench::measure_peak_gflops(threads);
    const double peak_bf16 = bf16 ? vit_bench::measure_peak_bf16_gflops(threads) : 0.0;
    const bool bf16_peak = peak_bf16 > 0;
    const double peak = bf16_peak ? peak_bf16 : peak_fp32;
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const double peak_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB

    std::printf(
        "  steps: %lld timed after %lld warm-up; step ms: median %.1f, min %.1f, mean %.1f\n",
        static_cast<long long>(args.steps), static_cast<long long>(args.warmup), median_s * 1e3,
        sorted.front() * 1e3, mean_s * 1e3);
    std::printf("  throughput: %.1f img/s\n", img_per_s);
    if (train) std::printf("  loss: first %.4f, last %.4f\n", loss_first, loss_last);
    else std::printf("  mean logit: first %.4f, last %.4f\n", loss_first, loss_last);
    std::printf(
        "  compute: %.2f GFLOP/step (%s GEMM-shaped work) -> %.1f GFLOP/s = %.1f%% "
        "of the measured %s peak %.1f GFLOP/s on %d thread%s\n",
        step_gflop, train ? "3x forward" : "1x forward", gflop_per_s, 100.0 * gflop_per_s / peak,
        bf16_peak ? "bf16 dot-product (vdpbf16ps)" : "FP32 FMA", peak, threads, threads > 1 ? "s" : "");
    std::printf(
        "  allocator: %.0f system allocs in timed steps (%.2f/step; 0 = steady state), "
        "peak in use %.1f MiB, cached %.1f MiB; operator new: %.0f/step\n",
        system_allocs, allocs_per_step, peak_in_use_mb,
        static_cast<double>(after.bytes_cached) / (1 << 20), new_per_step);
    std::printf("  memory: peak RSS %.1f MiB\n", peak_rss_mb);

    std::printf(
        "{\"impl\": \"vit\", \"model\": \"%s\", \"mode\": \"%s\", \"precision\": \"%s\", "
        "\"batch\": %lld, \"threads\": %d, \"steps\": %lld, "
        "\"warmup\": %lld, \"seed\": %llu, \"img_per_s\": %s, \"step_ms\": %s, \"step_ms_min\": "
        "%s, "
        "\"step_ms_mean\": %s, \"loss_first\": %s, \"loss_last\": %s, \"logit_mean\": %s, "
        "\"gflop_per_step\": %s, \"gflop_per_s\": %s, \"peak_gflops\": %s, "
        "\"peak_kind\": \"%s\", \"peak_fp32_gflops\": %s, \"pct_peak\": %s, \"peak_rss_mb\": %s, "
        "\"allocs_per_step\": %s, \"new_per_step\": %s, \"peak_bytes_in_use_mb\": %s}\n",
        cfg.name.c_str(), args.mode.c_str(), args.precision.c_str(),
        static_cast<long long>(args.batch), threads,
        static_cast<long long>(args.steps), static_cast<long long>(args.warmup),
        static_cast<unsigned long long>(args.seed), json_number(img_per_s, 2).c_str(),
        json_number(median_s * 1e3, 2).c_str(), json_number(sorted.front() * 1e3, 2).c_str(),
        json_number(mean_s * 1e3, 2).c_str(), json_number(train ? loss_first : NAN, 5).c_str(),
        json_number(train ? loss_last : NAN, 5).c_str(),
        json_number(train ? NAN : loss_last, 5).c_str(), json_number(step_gflop, 3).c_str(),
        json_number(gflop_per_s, 2).c_str(), json_number(peak, 1).c_str(),
        bf16_peak ? "bf16_dot" : "fp32_fma", json_number(peak_fp32, 1).c_str(),
        json_number(100.0 * gflop_per_s / peak, 1).c_str(), json_number(peak_rss_mb, 1).c_str(),
        json_number(allocs_per_step, 2).c_str(), json_number(new_per_step, 1).c_str(),
        json_number(peak_in_use_mb, 1).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
    return 1;
  }
}
