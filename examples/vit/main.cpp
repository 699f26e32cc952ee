// vit: train, evaluate and use Vision Transformers from the command line.
//   vit train   --dataset cifar10 --data DIR [--model cifar-tiny] [--out RUN_DIR] ...
//   vit eval    --weights W --dataset ... --data DIR [--dump-logits F.csv] [--out DIR]
//   vit predict --weights W IMAGE... [--attention-map OUT.png [--attention-layer L [--attention-head H]]]
//   vit info    --model PRESET | --weights W [--batch B]
// Every failure is one line on stderr naming the file or argument, exit code 1.
// Started by mpirun or srun as N processes, each is one rank of a
// data-parallel job (docs/distributed.md): rank 0 prints; a rank that fails
// says so, naming itself, and ends the whole job.
#include <cstdio>
#include <memory>
#include <new>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "flag_suggestion.hpp"
#include "job.hpp"
#include "train.hpp"

int main(int argc, char** argv) {
  try {
    vitcli::job_owner() = vit::dist::init_process_group(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit: %s\n", vitcli::user_message(e).c_str());
    return 1;
  }
  const bool many = vitcli::job().size() > 1;
  if (!vitcli::main_rank() && !std::freopen("/dev/null", "w", stdout)) return 1;
  // One line naming the rank, then every rank stops: none waits for a dead peer.
  auto fail = [&](const std::string& what) {
    vit::dist::Communicator& comm = vitcli::job();
    if (many)
      std::fprintf(stderr, "vit: rank %d of %d: %s\n", comm.rank(), comm.size(), what.c_str());
    else
      std::fprintf(stderr, "vit: %s\n", what.c_str());
    std::fflush(stderr);
    if (many) comm.abort(1);
    return 1;
  };
  // MPI_Finalize (in the communicator's destructor) before static destruction.
  struct EndJob {
    ~EndJob() { vitcli::job_owner().reset(); }
  } end_job;

  CLI::App app{"vit: Vision Transformers trained from scratch in C++ (train, eval, predict, info)", "vit"};
  app.set_version_flag("--version", std::string("vit " VIT_VERSION_STRING " (CPU GEMM kernels: ") +
                                        vit::ops::cpu_gemm_kernels + ")");
  app.require_subcommand(1, 1);
  // One line per parse error, like every other error of this tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vit: ") + e.what() + " (see --help)\n";
  });

  vitcli::TrainOptions train;
  vitcli::EvalOptions eval;
  vitcli::PredictOptions predict;
  vitcli::InfoOptions info;
  auto* train_cmd = app.add_subcommand("train", "Train a model (default: fmnist-tiny on Fashion-MNIST)");
  vitcli::add_train_options(*train_cmd, train);
  auto* eval_cmd = app.add_subcommand("eval", "Accuracy and loss of weights on a test split");
  vitcli::add_eval_options(*eval_cmd, eval);
  auto* predict_cmd = app.add_subcommand("predict", "Top classes for images, with an attention map");
  vitcli::add_predict_options(*predict_cmd, predict);
  auto* info_cmd = app.add_subcommand("info", "Parameters, FLOPs and activation memory of a model");
  vitcli::add_info_options(*info_cmd, info);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0) {
      // A misspelt flag is the likelier cause of any parse error (a "required"
      // one included): name it and the flag meant, in the subcommand's terms.
      const std::vector<std::string> args(argv + 1, argv + argc);
      for (const CLI::App* sub : app.get_subcommands()) {
        const std::string line = vitcli::unknown_flag_message(*sub, args);
        if (line.empty()) continue;
        const bool suggested = line.back() == ')';
        if (vitcli::main_rank())
          std::fprintf(stderr, "vit %s: %s%s\n", sub->get_name().c_str(), line.c_str(),
                       suggested ? "" : " (see --help)");
        return e.get_exit_code();
      }
    }
    return vitcli::main_rank() ? app.exit(e) : e.get_exit_code();  // the same on every rank: say it once
  }
  try {
    if (*train_cmd) return vitcli::run_train(*train_cmd, train);
    if (*eval_cmd) return vitcli::run_eval(eval);
    if (*predict_cmd) return vitcli::run_predict(predict);
    if (*info_cmd) return vitcli::run_info(info);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(vitcli::user_message(e));
  }
  return 1;
}
