// bench_data_parallel: data-parallel training steps on the CPU, one process
// per rank (mpirun -np N bench_data_parallel ...), the step `vit train` runs:
//
//   zero_grad, forward, cross_entropy (label smoothing 0.1), backward with
//   dist::GradientReducer's buckets started from the gradient hooks, finish()
//   (wait for the sums, average), AdamW
//
// on random inputs of the preset's size (each rank its own). W warm-up steps,
// then S timed steps. Then the same buckets are summed again with nothing to
// hide behind (one blocking allreduce each, after backward), S times: the
// communication a step costs when it is not overlapped.
//
// Reports (rank 0), medians over the timed steps:
//   img_per_s        global images/s: ranks · batch / step time
//   step_ms          step time; backward_ms the backward pass within it
//   allreduce_ms     the blocking sums of all buckets (the cost to hide)
//   exposed_ms       what finish() still waited for after backward, on the rank
//                    that waited least (the last to finish backward, which waits for
//                    communication alone, not for a slower peer): not hidden
//   hidden           1 − exposed/allreduce: the share of communication backward hid
// The last line of output is one JSON object with all of the above.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vit/vit.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Args {
  std::string model = "cifar-tiny";
  int64_t batch = 64, warmup = 2, steps = 10;
  int threads = 1;
  int64_t bucket_mb = 25;  // DDP's bucket_cap_mb
};

[[noreturn]] void bad_arg(const std::string& msg) {
  std::fprintf(stderr, "bench_data_parallel: %s\n", msg.c_str());
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) bad_arg(flag + " needs a value");
    const std::string value = argv[++i];
    auto number = [&] {
      char* end = nullptr;
      const long long v = std::strtoll(value.c_str(), &end, 10);
      if (!end || *end || v <= 0) bad_arg(flag + " must be a positive integer, got '" + value + "'");
      return static_cast<int64_t>(v);
    };
    if (flag == "--model") a.model = value;
    else if (flag == "--batch") a.batch = number();
    else if (flag == "--warmup") a.warmup = number();
    else if (flag == "--steps") a.steps = number();
    else if (flag == "--threads") a.threads = static_cast<int>(number());
    else if (flag == "--bucket-mb") a.bucket_mb = number();
    else bad_arg("unknown option '" + flag +
                 "' (--model, --batch, --warmup, --steps, --threads, --bucket-mb)");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<vit::dist::Communicator> comm;
  try {
    comm = vit::dist::init_process_group(argc, argv);
    const Args args = parse_args(argc, argv);
    vit::set_num_threads(args.threads);
    const int ranks = comm->size();
    auto model = vit::nn::create_vit<float>(args.model);
    const vit::nn::VitConfig& cfg = model->config;
    model->train();
    vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model->named_parameters(), 0.05),
                                 {1e-3});
    std::vector<vit::TensorF> params = model->parameters();
    std::unique_ptr<vit::dist::GradientReducer<float>> reducer;
    if (ranks > 1)
      reducer = std::make_unique<vit::dist::GradientReducer<float>>(
          *comm, params, static_cast<size_t>(args.bucket_mb) << 20);

    const uint64_t seed = 1000 + static_cast<uint64_t>(comm->rank());
    vit::Generator g(seed);
    const vit::TensorF x = vit::TensorF::normal(
        {args.batch, cfg.in_chans, cfg.image_size, cfg.image_size}, 0.0, 1.0, g);
    std::vector<int64_t> labels(static_cast<size_t>(args.batch));
    for (auto& y : labels) y = static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(cfg.num_classes));

    std::vector<double> step_s, backward_s, exposed_s;
    for (int64_t s = 0; s < args.warmup + args.steps; ++s) {
      comm->barrier();  // steps start together: a rank's time is the job's
      const auto t0 = Clock::now();
      opt.zero_grad();
      const vit::TensorF loss = vit::cross_entropy(model->forward(x), labels, 0.1);
      const auto t1 = Clock::now();
      loss.backward();
      const auto t2 = Clock::now();
      if (reducer) reducer->finish();
      opt.step();
      const auto t3 = Clock::now();
      if (s < args.warmup) continue;
      step_s.push_back(seconds(t0, t3));
      backward_s.push_back(seconds(t1, t2));
      // The least any rank waited: the last rank out of backward waits for nothing but
      // the sums still running (the others also wait for it).
      double wait = reducer ? reducer->last_wait_seconds() : 0.0;
      std::vector<double> waits(static_cast<size_t>(ranks), 0.0);
      waits[static_cast<size_t>(comm->rank())] = wait;
      comm->allreduce_sum(waits.data(), ranks, vit::dist::DType::Float64, vit::Device::CPU);
      exposed_s.push_back(*std::min_element(waits.begin(), waits.end()));
    }

    // The same buckets summed with nothing to overlap: the cost backward hides.
    std::vector<double> allreduce_s;
    if (reducer) {
      std::vector<std::vector<float>> buckets;
      for (size_t i = 0; i < reducer->bucket_count(); ++i) {
        int64_t n = 0;
        for (size_t k : reducer->bucket_params(i)) n += params[k].numel();
        buckets.emplace_back(static_cast<size_t>(n), 1.f);
      }
      for (int64_t s = 0; s < args.warmup + args.steps; ++s) {
        comm->barrier();
        const auto t0 = Clock::now();
        for (auto& b : buckets)
          comm->allreduce_sum(b.data(), static_cast<int64_t>(b.size()), vit::dist::DType::Float32,
                              vit::Device::CPU);
        if (s >= args.warmup) allreduce_s.push_back(seconds(t0, Clock::now()));
      }
    }

    if (comm->rank() == 0) {
      int64_t grad_bytes = 0;
      for (const auto& p : params) grad_bytes += p.numel() * 4;
      const double step = median(step_s), comm_ms = 1e3 * median(allreduce_s),
                   exposed_ms = 1e3 * median(exposed_s);
      const double hidden = comm_ms > 0 ? 1.0 - exposed_ms / comm_ms : 0.0;
      const double img_s = ranks * args.batch / step;
      std::printf(
          "bench_data_parallel: %s, %d rank(s) x %d thread(s) (%s), batch %lld per rank, "
          "%zu bucket(s) (cap %lld MB), %.1f MB of gradients\n",
          args.model.c_str(), ranks, args.threads, comm->name().c_str(),
          static_cast<long long>(args.batch), reducer ? reducer->bucket_count() : size_t{0},
          static_cast<long long>(args.bucket_mb), grad_bytes / 1e6);
      std::printf("  %.1f img/s, step %.1f ms (backward %.1f ms), allreduce %.2f ms, exposed %.2f ms, "
                  "hidden %.0f%%\n",
                  img_s, 1e3 * step, 1e3 * median(backward_s), comm_ms, exposed_ms, 100 * hidden);
      std::printf(
          "{\"model\":\"%s\",\"ranks\":%d,\"threads\":%d,\"batch\":%lld,\"img_per_s\":%.2f,"
          "\"step_ms\":%.3f,\"backward_ms\":%.3f,\"allreduce_ms\":%.3f,\"exposed_ms\":%.3f,"
          "\"hidden\":%.4f,\"grad_mb\":%.2f}\n",
          args.model.c_str(), ranks, args.threads, static_cast<long long>(args.batch), img_s,
          1e3 * step, 1e3 * median(backward_s), comm_ms, exposed_ms, hidden, grad_bytes / 1e6);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_data_parallel: %s\n", e.what());
    if (comm && comm->size() > 1) comm->abort(1);
    return 1;
  }
  return 0;
}
