// The run directory of `vit train`: settling a new, replaced or resumed run,
// and the files written in it besides the metrics (see run_dir.hpp).
#include "run_dir.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "job.hpp"

namespace fs = std::filesystem;

namespace vitcli {

namespace {

// The files a run writes, each replaced atomically through a temp file.
const char* const kRunFiles[] = {"config.json",     "last.safetensors", "best.safetensors",
                                 "ema.safetensors", "metrics.jsonl",    "metrics.csv",
                                 "curves.png",      "confusion.csv",    "confusion.png"};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VIT_CHECK(in.good(), "cannot read '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string default_run_dir(const TrainOptions& o) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return "runs/" + std::string(stamp) + "-" + o.dataset + "-" + o.model;
}

/// config.json and last.safetensors of the run in given.out.
void open_resumed(const CLI::App& cmd, const TrainOptions& given, RunStart& run) {
  TrainOptions& o = run.options;
  VIT_CHECK(!o.out.empty(), "--resume: name the run directory with --out");
  refuse_run_defining_flags(cmd, o.out);
  const std::string cfg_path = o.out + "/config.json";
  VIT_CHECK(fs::exists(cfg_path), "--resume: ", cfg_path, " does not exist (nothing to resume)");
  vit::io::remove_stale_temp_files(o.out, kRunFiles);
  run.config = vit::io::detail::parse_json(read_text(cfg_path), cfg_path);
  o = options_from_json(run.config, cfg_path);
  // Reductions split across threads add in another order: still correct,
  // no longer bitwise the uninterrupted run.
  if (cmd.count("--threads") && given.threads != o.threads && o.threads > 0 && main_rank())
    std::fprintf(stderr,
                 "resume: %d threads where the run had %d; the weights will not be "
                 "bitwise those of an uninterrupted run\n",
                 given.threads, o.threads);
  apply_resume_flags(cmd, given, o);  // --out and --resume among them
  const std::string last = last_checkpoint_path(o);
  if (fs::exists(last)) {
    run.checkpoint = vit::io::load_checkpoint<float>(last);
    const std::optional<TrainState> state = state_from_checkpoint(*run.checkpoint);
    VIT_CHECK(run.checkpoint->config && state, last,
              ": not a training checkpoint (no train state)");
    run.state = *state;
  } else {
    // Killed before its first checkpoint: the run restarts from step 0 with
    // its own config, which (being deterministic) is the same run.
    if (main_rank())
      std::fprintf(stderr, "resume: %s has no checkpoint yet; starting the run from step 0\n",
                   o.out.c_str());
    o.resume = false;
  }
}

}  // namespace

std::string last_checkpoint_path(const TrainOptions& o) { return o.out + "/last.safetensors"; }

RunStart open_run(const CLI::App& cmd, const TrainOptions& given) {
  RunStart run;
  TrainOptions& o = run.options;
  o = given;
  if (given.resume) {
    open_resumed(cmd, given, run);
  } else {
    fill_defaults(o);
    if (o.out.empty()) o.out = default_run_dir(o);
    const bool has_run = fs::exists(o.out + "/config.json") ||
                         fs::exists(last_checkpoint_path(o)) ||
                         fs::exists(o.out + "/metrics.jsonl");
    VIT_CHECK(!has_run || o.force, "--out: ", o.out,
              " already holds a run; --resume continues it, --force replaces it");
  }
  if (!run.checkpoint) run.state.optimizer = o.optimizer;
  return run;
}

void check_same_data(const RunStart& run, const vit::data::Dataset& train,
                     int64_t batches_per_epoch) {
  if (run.config.is_null()) return;  // a new run
  const std::string cfg_path = run.options.out + "/config.json";
  const nlohmann::json& c = run.config;
  const auto names = c.find("class_names");
  VIT_CHECK(names == c.end() || *names == nlohmann::json(train.class_names),
            "--resume: the data has classes ", nlohmann::json(train.class_names).dump(), " but ",
            cfg_path, " was trained on ", names->dump());
  // Another number of ranks changes the steps of an epoch (restore_run says so).
  const auto ranks = c.find("world_size");
  if ((ranks == c.end() ? 1 : ranks->get<int64_t>()) != job().size()) return;
  const auto bpe = c.find("steps_per_epoch");
  VIT_CHECK(bpe == c.end() || *bpe == batches_per_epoch, "--resume: the data gives ",
            batches_per_epoch, " batches per epoch but ", cfg_path, " has ", bpe->dump(),
            " (another data set, or other files in --data)");
}

void restore_run(RunStart& run, vit::nn::VisionTransformer<float>& model,
                 vit::optim::Optimizer<float>& opt, int64_t batches_per_epoch, int world_size) {
  const vit::io::Checkpoint<float>& ck = *run.checkpoint;
  TrainState& st = run.state;
  vit::io::load_model_weights(model, ck);
  VIT_CHECK(st.optimizer == run.options.optimizer, ck.path, ": optimizer '", st.optimizer,
            "' but config.json says '", run.options.optimizer, "'");
  // The EMA rides among the optimizer's tensors (kEmaStatePrefix); the rest is the optimizer's.
  std::vector<std::pair<std::string, vit::TensorF>> opt_state;
  const std::string ema_prefix = kEmaStatePrefix;
  for (auto& [key, t] : run.checkpoint->optimizer) {
    if (key.rfind(ema_prefix, 0) == 0) run.ema.emplace(key.substr(ema_prefix.size()), t);
    else opt_state.emplace_back(key, t);
  }
  VIT_CHECK(!run.options.model_ema || !run.ema.empty(), ck.path,
            ": holds no EMA of the weights, but the run trains with --model-ema");
  opt.load_named_state(opt_state);
  opt.set_steps(st.step -
                st.nonfinite_steps);  // skipped steps did not advance Adam's bias correction
  model.dropout_generator().set_state(st.dropout_seed, st.dropout_offset);
  if (st.world_size != world_size) {
    // Another number of ranks: the same share of the epoch in the new
    // global batches, rounded down to a whole step; the step count follows.
    const int64_t K = run.options.accum_steps, B = run.options.batch;
    const int64_t steps_per_epoch = batches_per_epoch / K;
    const int64_t images_done = st.batch_in_epoch * B * st.world_size;
    const int64_t steps_done = std::min(steps_per_epoch, images_done / (B * K * world_size));
    const int64_t old_step = st.step;
    st.batch_in_epoch = steps_done * K;
    st.step = st.epoch * steps_per_epoch + steps_done;
    if (st.batch_in_epoch == steps_per_epoch * K) ++st.epoch, st.batch_in_epoch = 0;
    if (main_rank())
      std::fprintf(stderr,
                   "resume: %s was written by %lld ranks, this job has %d: the model and "
                   "optimizer resume, the data order changes (step %lld there is step %lld here)\n",
                   ck.path.c_str(), static_cast<long long>(st.world_size), world_size,
                   static_cast<long long>(old_step), static_cast<long long>(st.step));
    st.world_size = world_size;
  }
  VIT_CHECK(st.batch_in_epoch < batches_per_epoch, ck.path, ": data cursor ", st.batch_in_epoch,
            " is beyond the ", batches_per_epoch, " batches of an epoch");
  if (main_rank())
    std::fprintf(stderr, "resume: %s at step %lld (next: epoch %lld, its batch %lld)\n",
                 ck.path.c_str(), static_cast<long long>(st.step),
                 static_cast<long long>(st.epoch + 1), static_cast<long long>(st.batch_in_epoch + 1));
  run.checkpoint.reset();  // the tensors are in the model and optimizer now
}

void create_run_dir(const TrainOptions& o, const nlohmann::json& config) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  VIT_CHECK(!ec && fs::is_directory(o.out), "--out: cannot create directory '", o.out,
            "': ", ec.message());
  if (o.force) {
    for (const char* f : kRunFiles) fs::remove(o.out + "/" + f, ec);
    fs::remove_all(o.out + "/tensorboard", ec);  // else TensorBoard shows the old run's curves too
  }
  // A process killed while writing leaves its temp file behind; nobody else
  // writes in a run directory, so the ones found at start are garbage.
  vit::io::remove_stale_temp_files(o.out, kRunFiles);
  vit::io::write_file_atomic(o.out + "/config.json", config.dump(2) + "\n");
}

void save_last(const TrainOptions& o, vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names, const vit::optim::Optimizer<float>& opt,
               const vit::optim::ModelEma<float>* ema, TrainState& st,
               const std::map<std::string, std::string>& extra) {
  st.dropout_seed = model.dropout_generator().seed();
  st.dropout_offset = model.dropout_generator().offset();
  std::map<std::string, std::string> metadata = state_metadata(st);
  metadata.insert(extra.begin(), extra.end());
  // The EMA rides among the optimizer's tensors, as restore_run reads it back.
  std::vector<std::pair<std::string, vit::TensorF>> ema_state;
  if (ema)
    for (const auto& [name, t] : ema->state_dict()) ema_state.emplace_back(kEmaStatePrefix + name, t);
  vit::io::save_checkpoint(last_checkpoint_path(o), model, class_names, &opt, metadata, ema_state);
}

void save_ema(const TrainOptions& o, const vit::nn::VisionTransformer<float>& ema_model,
              const std::vector<std::string>& class_names,
              const std::map<std::string, std::string>& extra) {
  vit::io::save_checkpoint<float>(o.out + "/ema.safetensors", ema_model, class_names, nullptr,
                                  extra);
}

void save_best(const TrainOptions& o, const vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names,
               const std::map<std::string, std::string>& extra) {
  vit::io::save_checkpoint<float>(o.out + "/best.safetensors", model, class_names, nullptr, extra);
}

}  // namespace vitcli
