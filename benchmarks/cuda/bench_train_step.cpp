// bench_cuda_train_step: images/s of one full training step of vit on the GPU,
// the workload benchmarks/cuda/torch_side_by_side.py runs in PyTorch (timm).
//
//   step = zero_grad, forward, cross_entropy against a soft target on the GPU
//          (one-hot smoothed by 0.1: F.cross_entropy(label_smoothing=0.1) exactly),
//          backward, AdamW (lr 1e-3, weight decay 0.05 on timm's default groups)
//
// on one fixed batch of N(0,1) images already on the GPU (no data loading is
// timed). Configurations (issue 18's): cifar-tiny (32x32) at batch 512, vit-s16
// (ViT-S/16, 224x224) at batch 256 and vit-b16 (ViT-B/16) at batch 128; a batch
// above 128 that runs out of device memory is retried at half (a printed note).
// Precisions, as `vit train --precision` runs them:
//   fp32  float32 throughout, TF32 off
//   tf32  float32 storage, TF32 tensor cores for GEMMs and attention
//         (vit::cuda::set_allow_tf32)
//   bf16  mixed precision (vit::nn::MixedPrecision): the float32 model holds the
//         master weights, gradients and AdamW state; its bf16 twin runs forward
//         and backward (bf16 activations and GEMM operands, fp32 accumulation);
//         the logits come back in float32, the loss is taken in float32, and the
//         optimizer's step refreshes the bf16 weights (mp.attach). As PyTorch's
//         torch.autocast(bfloat16) step that torch_side_by_side.py times.
// and each of them also as "<precision>-graph": the same step captured once as a
// CUDA graph (optim::CapturedStep, what `vit train` replays) and replayed.
//
// Timing: W warm-up steps (default 5) fill the caching allocator and cuBLAS's
// heuristics; then S steps (default 20) run back to back with no host read in
// between, bracketed by vit::cuda::synchronize() and steady_clock:
//   img/s = batch · S / wall time of the S steps   (the PyTorch script's definition)
// Also: GFLOP per step (3 × forward GEMM-shaped work, see forward_macs) and the
// TFLOP/s it implies (compare with the GEMM ceiling bench_cuda_kernels measures),
// the caching allocator's peak bytes in use, and its cudaMalloc calls per timed
// step (0 in steady state).
//
// Every (preset, batch) runs in child processes (this program re-run with
// --child): one for the float32 storage precisions (fp32, tf32 and their graphs:
// one memory footprint) and one for bf16 and bf16-graph, so each peak-memory
// figure is that configuration's and storage's own (the caching allocator's
// peak since the child started: a -graph row's peak covers its op-by-op run
// too), and an out of memory error cannot leave state behind for the next one.
//
// Usage: bench_cuda_train_step [--csv PATH] [--steps S] [--warmup W]
//          [--configs cifar-tiny:512,...]
//          [--precisions fp32,tf32,bf16,fp32-graph,tf32-graph,bf16-graph]
// The last lines are a markdown table; --csv also writes the rows as CSV.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "vit/cuda/runtime.hpp"
#include "vit/nn/mixed_precision.hpp"
#include "vit/vit.hpp"

namespace {

constexpr int kExitOom = 3;  // the child's exit status for "out of device memory"

struct Options {
  std::string csv;
  int64_t steps = 20, warmup = 5;
  std::string configs = "cifar-tiny:512,vit-s16:256,vit-b16:128";
  std::string precisions = "fp32,tf32,bf16,fp32-graph,tf32-graph,bf16-graph";
  bool child = false;
  std::string child_model;
  int64_t child_batch = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

const char* kUsage =
    "usage: bench_cuda_train_step [--csv PATH] [--steps S] [--warmup W] [--configs PRESET:BATCH,...]\n"
    "                             [--precisions fp32,tf32,bf16,fp32-graph,tf32-graph,bf16-graph]\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "bench_cuda_train_step: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

int64_t to_int(const std::string& flag, const std::string& v, int64_t lo) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo) usage_error(flag + " expects an integer >= " + std::to_string(lo));
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--csv") o.csv = value();
    else if (a == "--steps") o.steps = to_int(a, value(), 1);
    else if (a == "--warmup") o.warmup = to_int(a, value(), 0);
    else if (a == "--configs") o.configs = value();
    else if (a == "--precisions") o.precisions = value();
    else if (a == "--child") {
      o.child = true;
      o.child_model = value();
      o.child_batch = to_int(a, value(), 1);
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    else usage_error("unknown argument '" + a + "'");
  }
  for (const auto& p : split(o.precisions, ','))
    if (p != "fp32" && p != "tf32" && p != "bf16" && p != "fp32-graph" && p != "tf32-graph" && p != "bf16-graph")
      usage_error("--precisions takes fp32, tf32, bf16, fp32-graph, tf32-graph, bf16-graph, got '" + p + "'");
  return o;
}

// Multiply-adds of one image's forward pass, the GEMM-shaped work only (as the
// CPU bench_train_step counts them).
double forward_macs_per_image(const vit::nn::VitConfig& c) {
  const double P = static_cast<double>(c.patch_size), C = static_cast<double>(c.dim);
  const double np = std::pow(static_cast<double>(c.image_size / c.patch_size), 2);
  const double N = np + 1, M = static_cast<double>(c.mlp_dim);
  double macs = np * (static_cast<double>(c.in_chans) * P * P) * C;  // patch embed
  const double block = N * C * 3 * C + 2 * N * N * C + N * C * C + N * C * M * 2;
  macs += block * static_cast<double>(c.depth);
  macs += C * static_cast<double>(c.num_classes);  // head on the cls token
  return macs;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- the child: one (preset, batch), every precision ---------------------------------

int run_child(const Options& o) {
  const int64_t B = o.child_batch;
  try {
    auto model = vit::nn::create_vit<float>(o.child_model, 0, /*seed=*/0);
    const vit::nn::VitConfig cfg = model->config;
    model->train();
    model->to(vit::Device::CUDA);  // before the optimizer, whose state lives beside the parameters

    vit::Generator gen(0xda7a5eedull);
    const vit::TensorF x =
        vit::TensorF::normal({B, cfg.in_chans, cfg.image_size, cfg.image_size}, 0.0, 1.0, gen)
            .to(vit::Device::CUDA);
    const int64_t K = cfg.num_classes;
    const float eps = 0.1f;
    std::vector<float> target_host(static_cast<size_t>(B * K), eps / static_cast<float>(K));
    for (int64_t b = 0; b < B; ++b)
      target_host[static_cast<size_t>(b * K + static_cast<int64_t>(gen.next_u64() % K))] += 1.f - eps;
    const vit::TensorF target = vit::TensorF::from_data({B, K}, target_host).to(vit::Device::CUDA);

    vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model->named_parameters(), 0.05), {1e-3});
    // bf16: the model's bf16 twin, built only when a bf16 precision is asked for
    // (the parent gives bf16 precisions a child of their own).
    std::unique_ptr<vit::nn::MixedPrecision> mixed;
    for (const std::string& prec : split(o.precisions, ','))
      if (prec.rfind("bf16", 0) == 0 && !mixed) {
        mixed = std::make_unique<vit::nn::MixedPrecision>(*model);
        mixed->attach(opt);  // opt.step() refreshes the bf16 weights
      }
    bool use_bf16 = false;
    auto step = [&]() {
      opt.zero_grad();
      if (use_bf16) {
        vit::TensorF loss = vit::cross_entropy(mixed->forward(x), target);  // float32 logits and loss
        loss.backward();
        mixed->backward();  // through the bf16 graph; master gradients +=
        opt.step();
        return loss;
      }
      vit::TensorF loss = vit::cross_entropy(model->forward(x), target);
      loss.backward();
      opt.step();
      return loss;
    };

    const double gflop = 3.0 * 2.0 * forward_macs_per_image(cfg) * static_cast<double>(B) * 1e-9;
    std::printf("child: %s (image %lld, patch %lld, dim %lld, depth %lld, heads %lld, mlp %lld, %lld classes, "
                "%.2fM params), batch %lld, %.1f GFLOP/step\n",
                cfg.name.c_str(), (long long)cfg.image_size, (long long)cfg.patch_size, (long long)cfg.dim,
                (long long)cfg.depth, (long long)cfg.heads, (long long)cfg.mlp_dim, (long long)K,
                static_cast<double>(model->num_parameters()) * 1e-6, (long long)B, gflop);
    std::fflush(stdout);

    for (const std::string& prec : split(o.precisions, ',')) {
      vit::cuda::set_allow_tf32(prec.rfind("tf32", 0) == 0);
      use_bf16 = prec.rfind("bf16", 0) == 0;
      // "-graph": the same step captured once as a CUDA graph (optim::CapturedStep)
      // and replayed; its loss tensor is the graph's, rewritten by every replay.
      vit::TensorF last;
      vit::optim::CapturedStep captured(model->dropout_generator(), [&] { last = step(); },
                                        prec.find("-graph") != std::string::npos);
      double loss_first = NAN;
      for (int64_t i = 0; i < o.warmup; ++i) {
        captured.run();
        if (i == 0) loss_first = last.item();
      }
      vit::cuda::synchronize();
      const vit::AllocatorStats before = vit::cuda::allocator_stats();
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < o.steps; ++i) captured.run();
      vit::cuda::synchronize();
      const double secs = seconds_since(t0);
      const vit::AllocatorStats after = vit::cuda::allocator_stats();
      const double loss_last = last.item();
      if (o.warmup == 0) loss_first = loss_last;
      const double img_s = static_cast<double>(B * o.steps) / secs;
      const double step_ms = 1e3 * secs / static_cast<double>(o.steps);
      const double peak_mib = static_cast<double>(after.peak_bytes_in_use) / (1 << 20);
      const double mallocs = static_cast<double>(after.system_allocs - before.system_allocs) /
                             static_cast<double>(o.steps);
      std::printf("child: %s batch %lld %s: %.1f img/s, %.2f ms/step, %.1f TFLOP/s, loss %.4f -> %.4f, "
                  "peak %.0f MiB, cudaMalloc/step %.2f\n",
                  cfg.name.c_str(), (long long)B, prec.c_str(), img_s, step_ms, gflop / step_ms, loss_first,
                  loss_last, peak_mib, mallocs);
      // Machine-read by the parent: keep the field order.
      std::printf("RESULT,%s,%lld,%s,%.3f,%.4f,%.5f,%.5f,%.1f,%.3f,%.3f,%.2f\n", cfg.name.c_str(), (long long)B,
                  prec.c_str(), img_s, step_ms, loss_first, loss_last, peak_mib, gflop, gflop / step_ms,
                  mallocs);
      std::fflush(stdout);
    }
    vit::cuda::set_allow_tf32(false);
    return 0;
  } catch (const std::exception& e) {
    const bool oom = std::strstr(e.what(), "out of memory") != nullptr;
    std::printf("child: %s batch %lld: %s: %s\n", o.child_model.c_str(), (long long)B,
                oom ? "out of device memory" : "error", e.what());
    std::fflush(stdout);
    return oom ? kExitOom : 1;
  }
}

// ---- the parent: every configuration in its own child ---------------------------------

struct Row {
  std::string model, precision, note;
  int64_t batch = 0;
  double img_s = NAN, step_ms = NAN, loss_first = NAN, loss_last = NAN, peak_mib = NAN, gflop = NAN,
         tflops = NAN, mallocs = NAN;
};

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "bench_cuda_train_step";
  buf[n] = '\0';
  return buf;
}

/// Runs one child; its output is echoed; returns its exit status (-1: no status).
int spawn(const Options& o, const std::string& model, int64_t batch, const std::string& precisions,
          std::vector<Row>& rows, const std::string& note) {
  std::string cmd = "'" + self_path() + "' --child '" + model + "' " + std::to_string(batch) +
                    " --steps " + std::to_string(o.steps) + " --warmup " + std::to_string(o.warmup) +
                    " --precisions '" + precisions + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    std::printf("cannot start %s\n", cmd.c_str());
    return -1;
  }
  char line[8192];
  while (std::fgets(line, sizeof line, p)) {
    std::fputs(line, stdout);
    std::fflush(stdout);
    if (std::strncmp(line, "RESULT,", 7) != 0) continue;
    const auto f = split(std::string(line + 7, std::strcspn(line + 7, "\r\n")), ',');
    if (f.size() != 11) continue;
    Row r;
    r.model = f[0], r.batch = std::atoll(f[1].c_str()), r.precision = f[2];
    r.img_s = std::atof(f[3].c_str()), r.step_ms = std::atof(f[4].c_str());
    r.loss_first = std::atof(f[5].c_str()), r.loss_last = std::atof(f[6].c_str());
    r.peak_mib = std::atof(f[7].c_str()), r.gflop = std::atof(f[8].c_str());
    r.tflops = std::atof(f[9].c_str()), r.mallocs = std::atof(f[10].c_str());
    r.note = note;
    if (!std::isfinite(r.loss_last)) r.note += (r.note.empty() ? "" : "; ") + std::string("nonfinite loss");
    rows.push_back(r);
  }
  const int status = pclose(p);
  return (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
}

int run_parent(const Options& o) {
  std::printf("bench_cuda_train_step: %s\n", vit::cuda::device_description().c_str());
  if (!vit::cuda::available()) {
    std::printf("no CUDA device: nothing measured\n");
    return 0;
  }
  std::printf("step = zero_grad, forward, cross_entropy (smoothing 0.1), backward, AdamW; %lld warm-up, "
              "%lld timed steps back to back; img/s = batch*steps / wall time\n",
              (long long)o.warmup, (long long)o.steps);
  std::fflush(stdout);
  // The precisions in groups of one storage type: float32 (fp32, tf32, graphs), bf16.
  std::string f32_precs, bf16_precs;
  for (const std::string& p : split(o.precisions, ',')) {
    std::string& g = p.rfind("bf16", 0) == 0 ? bf16_precs : f32_precs;
    g += (g.empty() ? "" : ",") + p;
  }
  std::vector<Row> rows;
  for (const std::string& c : split(o.configs, ',')) {
    const size_t colon = c.find(':');
    if (colon == std::string::npos) usage_error("--configs entries are PRESET:BATCH, got '" + c + "'");
    const std::string model = c.substr(0, colon);
    const int64_t batch0 = to_int("--configs", c.substr(colon + 1), 1);
    for (const std::string& precs : {f32_precs, bf16_precs}) {
      if (precs.empty()) continue;
      int64_t batch = batch0;
      std::string note;
      int rc = spawn(o, model, batch, precs, rows, note);
      while (rc == kExitOom && batch > 128) {
        note = "batch " + std::to_string(batch) + " ran out of device memory";
        batch = std::max<int64_t>(128, batch / 2);
        std::printf("note: %s %s; retrying at batch %lld\n", model.c_str(), note.c_str(), (long long)batch);
        rc = spawn(o, model, batch, precs, rows, note);
      }
      if (rc != 0) {
        Row r;
        r.model = model, r.batch = batch, r.precision = precs;
        std::replace(r.precision.begin(), r.precision.end(), ',', '+');
        r.note = "failed (exit status " + std::to_string(rc) + "; see the log above)";
        rows.push_back(r);
      }
    }
  }

  if (!o.csv.empty()) {
    if (FILE* f = std::fopen(o.csv.c_str(), "w")) {
      std::fprintf(f, "model,batch,precision,img_per_s,step_ms,loss_first,loss_last,peak_mib,gflop_per_step,"
                      "tflops,mallocs_per_step,note\n");
      for (const Row& r : rows)
        std::fprintf(f, "%s,%lld,%s,%.3f,%.4f,%.5f,%.5f,%.1f,%.3f,%.3f,%.2f,%s\n", r.model.c_str(),
                     (long long)r.batch, r.precision.c_str(), r.img_s, r.step_ms, r.loss_first, r.loss_last,
                     r.peak_mib, r.gflop, r.tflops, r.mallocs, r.note.c_str());
      std::fclose(f);
      std::printf("wrote %s (%zu rows)\n", o.csv.c_str(), rows.size());
    } else {
      std::printf("cannot write %s\n", o.csv.c_str());
    }
  }

  std::printf("\n## vit train step on the GPU (%lld timed steps after %lld warm-up)\n\n", (long long)o.steps,
              (long long)o.warmup);
  std::printf("| model | batch | precision | img/s | ms/step | TFLOP/s | peak MiB | cudaMalloc/step | loss first -> last | note |\n");
  std::printf("|---|---:|---|---:|---:|---:|---:|---:|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %lld | %s | %.1f | %.2f | %.1f | %.0f | %.2f | %.3f -> %.3f | %s |\n", r.model.c_str(),
                (long long)r.batch, r.precision.c_str(), r.img_s, r.step_ms, r.tflops, r.peak_mib, r.mallocs,
                r.loss_first, r.loss_last, r.note.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  return o.child ? run_child(o) : run_parent(o);
}
