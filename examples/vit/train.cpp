// `vit train`: a run from its options to its last checkpoint. Where the run
// lives and how it resumes is run_dir's; one optimisation step is
// train_step's; here the model, data and schedule are set up, and the loop
// moves the data cursor, logs, evaluates and saves.
#include "train.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "confusion.hpp"
#include "data_pipeline.hpp"
#include "datasets.hpp"
#include "job.hpp"
#include "metrics.hpp"
#include "plot.hpp"
#include "progress.hpp"
#include "run_dir.hpp"
#include "tensorboard.hpp"
#include "train_step.hpp"

namespace vitcli {

namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<vit::optim::Optimizer<float>> make_optimizer(const TrainOptions& o,
                                                             vit::nn::VisionTransformer<float>& m) {
  auto groups = vit::optim::default_param_groups(vit::nn::trainable_parameters(m), o.weight_decay);
  if (o.optimizer == "sgd")
    return std::make_unique<vit::optim::SGD<float>>(
        std::move(groups), vit::optim::SgdOptions{o.lr, o.momentum, 0.0, false});
  vit::optim::AdamOptions ao;
  ao.lr = o.lr;
  if (o.optimizer == "adam")
    return std::make_unique<vit::optim::Adam<float>>(std::move(groups), ao);
  return std::make_unique<vit::optim::AdamW<float>>(std::move(groups), ao);
}

/// A fresh model for the run, fine-tuned from --init when given (not on a
/// resume: the checkpoint's weights replace these).
std::unique_ptr<vit::nn::VisionTransformer<float>> make_model(const TrainOptions& o,
                                                              const vit::nn::VitConfig& cfg,
                                                              bool resumed) {
  auto model = std::make_unique<vit::nn::VisionTransformer<float>>(cfg);
  if (!o.init.empty() && !resumed) {
    const auto init = vit::io::load_checkpoint<float>(o.init);
    vit::nn::PretrainedReport rep;
    try {
      rep = vit::nn::load_pretrained(*model, init.model);
    } catch (const vit::Error& e) {
      VIT_CHECK(false, "--init ", o.init, ": ", e.what());
    }
    if (main_rank()) {
      std::fprintf(stderr, "init: %lld tensors from %s\n", static_cast<long long>(rep.loaded),
                   o.init.c_str());
      for (const auto& n : rep.notes) std::fprintf(stderr, "init: %s\n", n.c_str());
    }
  }
  if (o.freeze_backbone) vit::nn::freeze_backbone(*model);
  return model;
}

/// The preset with the run's choices on top (regularisation, head, GELU, position embedding).
vit::nn::VitConfig model_config(const TrainOptions& o) {
  vit::nn::VitConfig cfg = vit::nn::vit_preset(o.model);
  cfg.drop_rate = o.dropout, cfg.drop_path_rate = o.drop_path, cfg.attn_drop_rate = o.attn_drop;
  if (o.representation_size >= 0) cfg.representation_size = o.representation_size;
  if (!o.gelu.empty()) cfg.gelu = o.gelu == "tanh" ? vit::GeluApprox::Tanh : vit::GeluApprox::None;
  cfg.pos_embed = vit::nn::pos_embed_kind(o.pos_embed);
  cfg.seed = o.seed;
  return cfg;
}

vit::optim::LrSchedule lr_schedule(const TrainOptions& o, int64_t steps_per_epoch) {
  vit::optim::LrSchedule sched;
  sched.kind = vit::optim::schedule_kind(o.schedule);
  sched.base_lr = o.lr, sched.min_lr = o.min_lr;
  sched.total_steps = o.epochs * steps_per_epoch;
  sched.warmup_steps = static_cast<int64_t>(std::llround(o.warmup_epochs * steps_per_epoch));
  sched.warmup_start_lr = std::min(1e-5, o.lr);  // timm's --warmup-lr: the first step moves the weights
  // step (StepLR): x gamma every step_size epochs; runs from before --step-size: a third of the run
  const double step_epochs = o.step_size > 0 ? o.step_size : std::floor(o.epochs / 3.0);
  sched.step_size = std::max<int64_t>(1, std::llround(step_epochs * steps_per_epoch));
  sched.gamma = o.gamma;
  return sched;
}

// Fault injection for the tests:
//  VIT_INJECT_NAN_STEPS="3,4" poisons the loss (and so every gradient) at those
//    optimizer steps, as a diverging batch would;
//  VIT_INJECT_KILL_AT_STEP=N sends the process SIGKILL right after step N's
//    update, before anything of that step is logged or saved;
//  VIT_INJECT_THROW_AT_STEP=N makes the step fail there with an error instead;
//  in a job of several ranks VIT_INJECT_KILL_RANK=r limits both to rank r.
std::vector<int64_t> injected_steps(const char* var) {
  std::vector<int64_t> out;
  const char* env = std::getenv(var);
  if (!env) return out;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    VIT_CHECK(end && *end == '\0' && !item.empty(), var, ": '", item, "' is not a step number");
    out.push_back(v);
  }
  return out;
}
bool contains(const std::vector<int64_t>& v, int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

/// Rank 0's parameters (and EMA) on every rank (the initialisation, --init or the
/// resumed checkpoint), then a checksum of parameters and optimizer state that
/// every rank compares with rank 0's before the first step: a rank that
/// differs (say, it resumed from another file) stops the job, named.
void agree_on_parameters(vit::nn::VisionTransformer<float>& model,
                         const vit::optim::Optimizer<float>& opt,
                         const vit::optim::ModelEma<float>* ema, vit::dist::Communicator& comm) {
  if (comm.size() == 1) return;
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a over the bytes
  auto add = [&hash](const vit::TensorF& t) {
    const std::vector<float> v = t.to_vector();
    const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.size() * sizeof(float); ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  };
  for (auto& [name, p] : model.named_parameters()) comm.broadcast(p, 0), add(p);
  if (ema)  // as the parameters: rank 0's
    for (auto& [name, t] : ema->state_dict()) comm.broadcast(t, 0);
  for (const auto& [name, t] : opt.named_state()) add(t);
  uint64_t rank0_hash = hash;
  comm.broadcast(&rank0_hash, 8, vit::dist::DType::UInt8, 0, vit::Device::CPU);
  std::vector<int64_t> differs(static_cast<size_t>(comm.size()), 0);
  differs[static_cast<size_t>(comm.rank())] = hash != rank0_hash;
  comm.allreduce_sum(differs.data(), comm.size(), vit::dist::DType::Int64, vit::Device::CPU);
  for (size_t r = 0; r < differs.size(); ++r)
    VIT_CHECK(!differs[r], "rank ", r, " holds parameters or optimizer state whose checksum "
              "differs from rank 0's (another checkpoint or --init file on its machine?)");
}

/// Dropout and drop-path draw other masks on every rank: rank r > 0 derives
/// its stream from rank 0's, which is the one checkpoints keep.
/// --precision: tf32 lets the GPU's GEMMs and attention use TF32 tensor cores;
/// bf16 makes the model's bf16 twin, which the optimizer's steps refresh.
/// Said once where a precision is not what the device computes fast.
std::unique_ptr<vit::nn::MixedPrecision> use_precision(const std::string& precision,
                                                       vit::nn::VisionTransformer<float>& model,
                                                       vit::optim::Optimizer<float>& opt,
                                                       vit::Device device) {
  if (precision == "tf32") {
    if (device == vit::Device::CUDA) allow_tf32();
    else if (main_rank())
      std::fprintf(stderr, "train: --precision tf32 is a GPU mode; on the CPU the run computes in fp32\n");
  }
  if (precision != "bf16") return nullptr;
  if (device == vit::Device::CPU && main_rank()) say_cpu_bf16_not_faster("train");
  auto mixed = std::make_unique<vit::nn::MixedPrecision>(model);
  mixed->attach(opt);
  return mixed;
}

void use_rank_dropout_stream(vit::nn::VisionTransformer<float>& model) {
  if (job().rank() == 0) return;
  vit::Generator& g = model.dropout_generator();
  g.set_state(vit::data::detail::mix_seed(g.seed(), 0xD0, static_cast<uint64_t>(job().rank())),
              g.offset());
}

bool kill_here() {
  const char* rank = std::getenv("VIT_INJECT_KILL_RANK");
  return !rank || std::atoi(rank) == job().rank();
}

/// Everything the loop uses, set up by run_train.
struct Run {
  const TrainOptions& o;
  const Splits& data;
  const vit::data::Normalization& norm;
  vit::nn::VisionTransformer<float>& model;
  vit::optim::Optimizer<float>& opt;
  vit::nn::VisionTransformer<float>* ema_model;  // --model-ema: the average, as a model
  vit::optim::ModelEma<float>* ema;
  vit::nn::MixedPrecision* mixed;  // --precision bf16: the model's bf16 twin
  TensorBoardWriter* tensorboard;  // --tensorboard, rank 0
  vit::data::Loader& loader;
  int64_t steps_per_epoch;  // optimizer steps: loader batches / accum_steps
  const vit::optim::LrSchedule& sched;
  vit::dist::Communicator* step_comm;  // the job's (for tensors on the model's device too)
  TrainState& st;
  std::map<std::string, std::string> extra;  // metadata of both checkpoints
  Clock::time_point wall0;

  double seconds_since_start(Clock::time_point t) const {
    return std::chrono::duration<double>(t - wall0).count();
  }
};

/// The steps since the last metrics row.
struct Window {
  StepSums sums;
  int64_t steps = 0;
  Clock::time_point t0;
  double wait0;            // the loader's data wait at t0
  double excluded_s = 0;   // evaluation and checkpoints inside the window: not training time
};

/// The epoch's end: test-set evaluation (of the EMA too), its metrics row,
/// best.safetensors when the test top-1 improved, ema.safetensors,
/// curves.png, and at the run's end the confusion matrix. `epoch` counts from 1.
/// Every rank evaluates its share; rank 0 alone writes (`metrics` is null elsewhere).
void end_epoch(Run& r, MetricsLog* metrics, Progress& progress, int64_t epoch, bool last) {
  progress.status("evaluating on the test set...");
  const int64_t eval_batch = std::max<int64_t>(r.o.batch, 256);
  const EvalResult ev = evaluate(r.model, r.data.test, r.norm, eval_batch, nullptr, &job(), r.mixed);
  const StepSums& e = r.st.epoch_sums;
  MetricsRow row;
  row.kind = "epoch", row.step = r.st.step, row.epoch = epoch;
  row.time_s = r.seconds_since_start(Clock::now());
  row.lr = r.opt.lr(), row.loss = e.images ? e.loss_sum / e.images : NAN;
  row.train_top1 = e.images ? double(e.correct) / e.images : NAN;
  row.test_loss = ev.loss, row.test_top1 = ev.top1, row.test_top5 = ev.top5;
  row.data_wait = row.time_s > 0 ? r.loader.wait_seconds() / row.time_s : 0;
  row.nonfinite = r.st.nonfinite_steps;
  if (r.ema) {
    const EvalResult ee = evaluate(*r.ema_model, r.data.test, r.norm, eval_batch, nullptr, &job());
    row.ema_test_loss = ee.loss, row.ema_test_top1 = ee.top1, row.ema_test_top5 = ee.top5;
  }
  progress.epoch_line(row);
  r.st.epoch_sums = StepSums{};
  const bool best = ev.top1 > r.st.best_top1;
  if (best) r.st.best_top1 = ev.top1;
  if (!metrics) return;
  metrics->append(row);
  if (r.tensorboard)
    r.tensorboard->scalars(row.step, {{"test/loss", row.test_loss},
                                      {"test/top1", 100 * row.test_top1},
                                      {"test/top5", 100 * row.test_top5},
                                      {"ema/test_loss", row.ema_test_loss},
                                      {"ema/test_top1", 100 * row.ema_test_top1},
                                      {"ema/test_top5", 100 * row.ema_test_top5},
                                      {"train/epoch_loss", row.loss},
                                      {"train/epoch_top1", 100 * row.train_top1}});
  if (best) save_best(r.o, r.model, r.data.train.class_names, r.extra);
  if (r.ema) save_ema(r.o, *r.ema_model, r.data.train.class_names, r.extra);
  if (last) write_confusion(r.o.out, r.data.train.class_names, ev.confusion);
  write_curves_png(r.o.out + "/curves.png", metrics->rows());
}

/// Brings the step guard's counters and sums to the host (a wait on the GPU):
/// the sums since the last read join the window's and the epoch's, the
/// counters replace the state's. Stops the run on a streak of non-finite steps.
void read_guard(TrainStep& step, TrainState& st, StepSums& window, const TrainOptions& o) {
  auto c = step.guard().read();
  step.guard().reset_sums();
  if (job().size() > 1) {  // every rank's share of the sums (integers in double add exactly)
    double sums[3] = {c.loss_sum, double(c.images), double(c.correct)};
    job().allreduce_sum(sums, 3, vit::dist::DType::Float64, vit::Device::CPU);
    c.loss_sum = sums[0], c.images = std::llround(sums[1]), c.correct = std::llround(sums[2]);
  }
  for (StepSums* s : {&window, &st.epoch_sums})
    s->loss_sum += c.loss_sum, s->images += c.images, s->correct += c.correct;
  st.nonfinite_steps = c.nonfinite_steps, st.nonfinite_run = c.nonfinite_run;
  if (c.longest_run < o.max_nonfinite) return;
  // Read every step (the CPU), the streak ends at this very step and the loss tells which
  // was not finite; read now and then (the GPU), the message says when it was seen.
  const bool every_step = step.guard().device() == vit::Device::CPU;
  const std::string what = !every_step ? "loss or gradient norm"
                           : std::isfinite(step.last_loss().item()) ? "gradient norm"
                                                                    : "loss";
  const std::string last = last_checkpoint_path(o);
  VIT_CHECK(false, "stopping: ", c.longest_run, " consecutive steps with a non-finite ", what,
            every_step ? " (the last was step " : " (seen by step ", st.step, "); ",
            std::filesystem::exists(last) ? "the last good checkpoint is " + last + ", untouched"
                                          : std::string("no checkpoint had been written yet"));
}

/// Steps from the state's cursor to `last_step`, logging every --log-every
/// steps, evaluating at each epoch end and checkpointing as --checkpoint-every
/// says. The steps are queued without waiting; the guard is read where the
/// loop needs its figures: every step on the CPU, where it costs nothing, and
/// on logging steps, epoch ends and checkpoints on the GPU. Every rank runs
/// the same loop and takes the same decisions; rank 0 alone writes.
void train_loop(Run& r, MetricsLog* metrics, int64_t last_step) {
  const TrainOptions& o = r.o;
  TrainState& st = r.st;
  const int64_t K = o.accum_steps;
  const std::vector<int64_t> nan_steps = injected_steps("VIT_INJECT_NAN_STEPS");
  const std::vector<int64_t> kill_steps = kill_here() ? injected_steps("VIT_INJECT_KILL_AT_STEP")
                                                      : std::vector<int64_t>{};
  const std::vector<int64_t> throw_steps = kill_here() ? injected_steps("VIT_INJECT_THROW_AT_STEP")
                                                       : std::vector<int64_t>{};
  StepContext ctx{.model = r.model,
                  .optimizer = r.opt,
                  .params = {},
                  .device = r.model.device(),
                  .soft_targets = r.loader.config().mixup,
                  .label_smoothing = o.label_smoothing,
                  .clip = o.clip_grad > 0 ? o.clip_grad : INFINITY,
                  .cuda_graph = o.cuda_graph,
                  .accum_steps = K,
                  .comm = r.step_comm,
                  .mixed = r.mixed};
  for (auto& [n, p] : vit::nn::trainable_parameters(r.model)) ctx.params.push_back(p);
  TrainStep step(ctx, o.batch, r.model.config.num_classes);
  if (o.cuda_graph && ctx.device == vit::Device::CUDA && (K > 1 || job().size() > 1) &&
      main_rank())
    std::fprintf(stderr, "train: CUDA graph off (%s runs op by op)\n",
                 job().size() > 1 ? "data parallel" : "gradient accumulation");
  step.guard().set_counters(st.nonfinite_steps, st.nonfinite_run, st.step - st.nonfinite_steps);
  if (r.ema) r.ema->set_skip_flag(step.guard().skip_flag());  // a skipped step moves no average
  const bool read_every_step = ctx.device == vit::Device::CPU;
  const int64_t images_per_step = o.batch * K * job().size();
  Progress progress(last_step, st.step, o.epochs);
  progress.start(st.epoch + 1);
  r.model.train();
  r.loader.start(st.epoch, st.batch_in_epoch);
  Window w{{}, 0, Clock::now(), r.loader.wait_seconds()};
  while (st.step < last_step) {
    r.opt.set_lr(r.sched.at(st.step));
    const bool poison = contains(nan_steps, st.step + 1);
    const vit::data::Batch* b = nullptr;
    do b = &r.loader.next();
    while (!step.run(*b, poison));
    ++st.step, ++w.steps;
    if (r.ema) r.ema->update(st.step);  // timm: update(model, step=num_updates), after the step
    if (contains(kill_steps, st.step)) ::raise(SIGKILL);
    VIT_CHECK(!contains(throw_steps, st.step), "injected failure after step ", st.step,
              " (VIT_INJECT_THROW_AT_STEP)");
    const int64_t epoch = b->epoch + 1;  // as people count: the first is epoch 1
    st.epoch = b->epoch, st.batch_in_epoch = b->index + 1;
    // Loader batches left over when accum_steps does not divide an epoch are skipped.
    const bool epoch_end = st.batch_in_epoch == r.steps_per_epoch * K;
    if (epoch_end) {
      ++st.epoch, st.batch_in_epoch = 0;
      if (r.steps_per_epoch * K != r.loader.batches_per_epoch() && st.step < last_step)
        r.loader.start(st.epoch, 0);
    }
    const bool log_row = st.step % o.log_every == 0 || st.step == last_step;
    const bool checkpoint = epoch_end || st.step == last_step ||
                            (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0);
    if (read_every_step || log_row || checkpoint) read_guard(step, st, w.sums, o);

    const auto now = Clock::now();
    const double window_s = std::chrono::duration<double>(now - w.t0).count() - w.excluded_s;
    const double img_s = window_s > 0 ? w.steps * images_per_step / window_s : 0;
    const double train_acc = w.sums.images ? double(w.sums.correct) / w.sums.images : NAN;
    const double window_loss = w.sums.images ? w.sums.loss_sum / w.sums.images : NAN;
    progress.update(st.step, epoch, window_loss, train_acc, img_s);
    if (log_row) {
      MetricsRow row;
      row.kind = "step", row.step = st.step, row.epoch = epoch;
      row.time_s = r.seconds_since_start(now);
      row.lr = r.opt.lr(), row.loss = window_loss, row.train_top1 = train_acc;
      row.img_per_s = img_s;
      row.data_wait = window_s > 0 ? (r.loader.wait_seconds() - w.wait0) / window_s : 0;
      row.nonfinite = st.nonfinite_steps;
      if (metrics) metrics->append(row);
      if (r.tensorboard)
        r.tensorboard->scalars(st.step, {{"train/loss", window_loss},
                                         {"train/top1", 100 * train_acc},
                                         {"train/lr", row.lr},
                                         {"train/img_per_s", img_s}});
      progress.log_line(row);
      w = Window{{}, 0, now, r.loader.wait_seconds(), 0};
    }
    // The guard was read above (a wait for every queued step), so what follows
    // is evaluation and saving alone: the window's rate leaves it out.
    const auto pause0 = Clock::now();
    if (epoch_end || st.step == last_step)
      end_epoch(r, metrics, progress, epoch, st.step == last_step);
    if (checkpoint && metrics)
      save_last(o, r.model, r.data.train.class_names, r.opt, r.ema, st, r.extra);
    if (checkpoint) w.excluded_s += std::chrono::duration<double>(Clock::now() - pause0).count();
  }
  progress.finish();
}

}  // namespace

int run_train(const CLI::App& cmd, TrainOptions given) {
  const auto wall0 = Clock::now();
  const int ranks = job().size();
  checked_device(given.device);  // before anything is read or written
  RunStart run = open_run(cmd, given);
  TrainOptions& o = run.options;
  const vit::Device device = checked_device(o.device);  // again: --resume may have changed it
  // The count is part of the run (config.json): resuming on another machine
  // with the same count gives the same bits. Ranks on one machine share its cores.
  o.threads = threads_per_rank(o.threads);
  vit::set_num_threads(o.threads);
  const std::string comm_note = use_gpu_communicator(device);
  vit::dist::Communicator& comm = job();  // for host buffers and the model's device
  vit::nn::VitConfig cfg = model_config(o);
  if (main_rank()) {  // loading can take a while: say so at once
    std::printf("train: loading %s%s%s...\n", o.dataset.c_str(), o.data.empty() ? "" : " from ",
                o.data.c_str());
    std::fflush(stdout);
  }
  const Splits data = run_splits(o, cfg);
  cfg.num_classes = data.train.num_classes();
  if (run.checkpoint) cfg = *run.checkpoint->config;
  auto model = make_model(o, cfg, run.checkpoint.has_value());
  const vit::data::Normalization norm = run_normalization(o, cfg);
  model->to(device);  // before the optimizer, whose state lives beside the parameters
  auto opt = make_optimizer(o, *model);
  vit::data::Loader loader(data.train, train_loader_config(o, cfg, norm));
  const int64_t steps_per_epoch = loader.batches_per_epoch() / o.accum_steps;
  VIT_CHECK(steps_per_epoch > 0, "--accum-steps ", o.accum_steps, ": an epoch of ",
            data.train.size(), " images has only ", loader.batches_per_epoch(),
            " batches of ", o.batch, " per rank");
  check_same_data(run, data.train, steps_per_epoch);
  const vit::optim::LrSchedule sched = lr_schedule(o, steps_per_epoch);
  const int64_t last_step = o.steps > 0 ? std::min(o.steps, sched.total_steps) : sched.total_steps;

  // Every rank has checked --out before rank 0 creates anything in it.
  comm.barrier();
  if (run.checkpoint) {
    restore_run(run, *model, *opt, loader.batches_per_epoch(), ranks);
  } else if (main_rank()) {
    nlohmann::json config = options_to_json(o);
    config["model_config"] = vit::io::config_to_json(cfg);
    config["class_names"] = data.train.class_names;
    config["normalization"] = nlohmann::json::parse(normalization_json(norm));
    config["steps_per_epoch"] = steps_per_epoch;
    config["world_size"] = ranks;
    config["global_batch"] = o.batch * o.accum_steps * ranks;
    create_run_dir(o, config);
  }
  // --model-ema: the average starts as the model (or as the checkpoint left it).
  std::unique_ptr<vit::nn::VisionTransformer<float>> ema_model;
  std::unique_ptr<vit::optim::ModelEma<float>> ema;
  if (o.model_ema) {
    ema_model = std::make_unique<vit::nn::VisionTransformer<float>>(cfg);
    ema_model->to(device);
    vit::optim::EmaOptions eo;
    eo.decay = o.model_ema_decay;  // warmed up as timm's --model-ema-warmup
    ema = std::make_unique<vit::optim::ModelEma<float>>(*model, *ema_model, eo);
    if (!run.ema.empty()) ema->load_state_dict(run.ema);
    run.ema.clear();
  }
  agree_on_parameters(*model, *opt, ema.get(), comm);
  use_rank_dropout_stream(*model);
  // After the checkpoint and the broadcast: the twin starts from the weights every rank has.
  std::unique_ptr<vit::nn::MixedPrecision> mixed = use_precision(o.precision, *model, *opt, device);
  TrainState& st = run.state;
  st.world_size = ranks;
  std::optional<MetricsLog> metrics;
  if (main_rank()) metrics.emplace(o.out, o.resume ? st.step : -1);
  // A new event file per start; a resumed run's first says to drop the
  // killed run's records after the checkpoint.
  std::optional<TensorBoardWriter> tensorboard;
  if (main_rank() && o.tensorboard)
    tensorboard.emplace(o.out + "/tensorboard", run.config.is_null() ? 0 : st.step + 1);

  std::printf(
      "train: %s on %s (%lld train / %lld test images, %lld classes), %lld parameters, "
      "%d threads\n",
      cfg.name.c_str(), o.dataset.c_str(), static_cast<long long>(data.train.size()),
      static_cast<long long>(data.test.size()), static_cast<long long>(cfg.num_classes),
      static_cast<long long>(model->num_parameters()), vit::num_threads());
  if (ranks > 1)
    std::printf("train: %d ranks (%s), batch %lld per rank x %lld accumulation steps = global "
                "batch %lld\n",
                ranks, comm_note.c_str(), static_cast<long long>(o.batch),
                static_cast<long long>(o.accum_steps),
                static_cast<long long>(o.batch * o.accum_steps * ranks));
  std::printf("train: %lld epochs x %lld steps, batch %lld, %s lr %g, run dir %s\n",
              static_cast<long long>(o.epochs), static_cast<long long>(steps_per_epoch),
              static_cast<long long>(o.batch * o.accum_steps * ranks), o.optimizer.c_str(), o.lr,
              o.out.c_str());
  std::fflush(stdout);

  Run r{.o = o,
        .data = data,
        .norm = norm,
        .model = *model,
        .opt = *opt,
        .ema_model = ema_model.get(),
        .ema = ema.get(),
        .mixed = mixed.get(),
        .tensorboard = tensorboard ? &*tensorboard : nullptr,
        .loader = loader,
        .steps_per_epoch = steps_per_epoch,
        .sched = sched,
        .step_comm = &comm,
        .st = st,
        // What eval and predict need to see images as training saw them.
        .extra = {{"vit.normalization", normalization_json(norm)},
                  {"vit.crop_pct", nlohmann::json(o.crop_pct).dump()}},
        .wall0 = wall0};
  train_loop(r, metrics ? &*metrics : nullptr, last_step);

  const double total_s = r.seconds_since_start(Clock::now());
  std::printf(
      "done: %lld steps in %.1f s, best test top-1 %.2f%%, data wait %.1f%% of the time, "
      "%lld non-finite steps skipped; %s/last.safetensors\n",
      static_cast<long long>(st.step), total_s, 100 * st.best_top1,
      100 * loader.wait_seconds() / total_s, static_cast<long long>(st.nonfinite_steps),
      o.out.c_str());
  return 0;
}

}  // namespace vitcli
