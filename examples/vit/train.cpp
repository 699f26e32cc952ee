// `vit train`: the training loop of the command line, on the public API.
//
// A run directory holds config.json (the effective options, written once),
// metrics.jsonl/.csv, curves.png, last.safetensors (model + optimizer + train
// state, written atomically at each epoch end, every --checkpoint-every steps
// and at the end) and best.safetensors (weights of the best test top-1).
// --resume reloads config.json and last.safetensors and continues from the
// saved data cursor; since a batch is a pure function of its cursor and the
// RNG states are in the checkpoint, the resumed run ends bitwise where the
// uninterrupted one would (same thread count).
#include "train.hpp"
#include "commands.hpp"  // the number checks

#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common.hpp"
#include "datasets.hpp"
#include "metrics.hpp"
#include "plot.hpp"
#include "progress.hpp"
#include "train_state.hpp"

namespace fs = std::filesystem;

namespace vitcli {

void add_train_options(CLI::App& cmd, TrainOptions& o) {
  cmd.add_option("--dataset", o.dataset, "Data set")
      ->check(CLI::IsMember(dataset_names()))
      ->capture_default_str();
  cmd.add_option("--data", o.data,
                 "Data directory (default for fashion-mnist: /usr/share/datasets/fashion-mnist)");
  cmd.add_option("--model", o.model,
                 "Model preset (default: cifar-tiny for CIFAR, fmnist-tiny for (Fashion-)MNIST, "
                 "vit-ti16 for folders)");
  cmd.add_option("--out", o.out, "Run directory (default: runs/<date>-<time>-<dataset>-<model>)");
  cmd.add_option("--epochs", o.epochs,
                 "Epochs; the schedule spans them (default: 100 CIFAR, 50 Fashion-MNIST, 30 "
                 "folders, 10 MNIST, 10 when fine-tuning with --init)")
      ->check(positive_number());
  cmd.add_option("--steps", o.steps, "Stop after this many optimizer steps (schedule still spans --epochs)")
      ->check(positive_number());
  cmd.add_option("--batch", o.batch, "Batch size")->check(positive_number())->capture_default_str();
  cmd.add_option("--optimizer", o.optimizer, "Optimizer")
      ->check(CLI::IsMember({"adamw", "adam", "sgd"}))
      ->capture_default_str();
  cmd.add_option("--lr", o.lr, "Peak learning rate (default: 1e-3 for adam/adamw, 0.05 for sgd; a tenth of "
                 "that when fine-tuning with --init)")
      ->check(positive_number());
  cmd.add_option("--weight-decay", o.weight_decay, "Weight decay (not on biases, norms, pos_embed, cls_token)")
      ->check(non_negative_number())
      ->capture_default_str();
  cmd.add_option("--momentum", o.momentum, "SGD momentum")->check(number_in(0.0, 1.0))->capture_default_str();
  cmd.add_option("--schedule", o.schedule, "Learning-rate schedule after warmup")
      ->check(CLI::IsMember({"cosine", "step", "constant"}))
      ->capture_default_str();
  cmd.add_option("--warmup-epochs", o.warmup_epochs, "Linear warmup epochs (default: epochs/20, at least 1)")
      ->check(non_negative_number());
  cmd.add_option("--min-lr", o.min_lr, "Cosine floor")->check(non_negative_number())->capture_default_str();
  cmd.add_option("--clip-grad", o.clip_grad, "Clip the global gradient norm to this (0: off)")
      ->check(non_negative_number());
  cmd.add_option("--label-smoothing", o.label_smoothing, "Label smoothing")
      ->check(number_in(0.0, 0.999))
      ->capture_default_str();
  cmd.add_option("--dropout", o.dropout, "Dropout rate")->check(number_in(0.0, 0.999));
  cmd.add_option("--drop-path", o.drop_path, "Stochastic depth rate")->check(number_in(0.0, 0.999));
  cmd.add_option("--seed", o.seed, "Seed of init, shuffling, augmentation and dropout")->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (default: all cores)")->check(positive_number());
  cmd.add_option("--device", o.device, "Device")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd.add_flag("--no-augment", o.no_augment, "No random crop, flip or other augmentation");
  cmd.add_flag("--no-shuffle", o.no_shuffle, "Batches in file order");
  cmd.add_option("--crop-padding", o.crop_padding, "Random-crop padding (default: 4 at 32px, 2 at 28px, 0 otherwise)")
      ->check(non_negative_number());
  cmd.add_flag("!--no-hflip", o.hflip, "No random horizontal flip");
  cmd.add_option("--randaugment-n", o.randaugment_n, "RandAugment ops per image (0: off)")
      ->check(CLI::Range(0, 10));
  cmd.add_option("--randaugment-m", o.randaugment_m, "RandAugment magnitude (0..10)")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
  cmd.add_option("--erasing", o.erasing, "Random erasing probability")->check(number_in(0.0, 1.0));
  cmd.add_option("--mixup", o.mixup, "Mixup alpha (0: off)")->check(non_negative_number());
  cmd.add_option("--cutmix", o.cutmix, "CutMix alpha (0: off)")->check(non_negative_number());
  cmd.add_option("--val-ratio", o.val_ratio, "Folder data sets: share of each class held out")
      ->check(number_in(0.0, 0.9))
      ->capture_default_str();
  cmd.add_option("--init", o.init, "Fine-tune from these weights (timm names; head re-initialised "
                                   "if the class count differs, pos_embed resampled)")
      ->check(CLI::ExistingFile);
  cmd.add_flag("--freeze-backbone", o.freeze_backbone, "Train only the classifier head");
  cmd.add_flag("--resume", o.resume, "Continue the run in --out from its last.safetensors");
  cmd.add_flag("--force", o.force, "Replace a run already in --out");
  cmd.add_option("--checkpoint-every", o.checkpoint_every, "Also write last.safetensors every N steps")
      ->check(non_negative_number());
  cmd.add_option("--log-every", o.log_every, "Metrics row every N steps")
      ->check(positive_number())
      ->capture_default_str();
  cmd.add_option("--max-nonfinite", o.max_nonfinite, "Stop after this many consecutive NaN/Inf steps")
      ->check(positive_number())
      ->capture_default_str();
  cmd.add_option("--workers", o.workers, "Data loader threads")->check(positive_number())->capture_default_str();
}

namespace {

nlohmann::json options_to_json(const TrainOptions& o) {
  return {{"dataset", o.dataset}, {"data", o.data}, {"model", o.model}, {"epochs", o.epochs},
          {"steps", o.steps}, {"batch", o.batch}, {"optimizer", o.optimizer}, {"lr", o.lr},
          {"weight_decay", o.weight_decay}, {"momentum", o.momentum}, {"schedule", o.schedule},
          {"warmup_epochs", o.warmup_epochs}, {"min_lr", o.min_lr}, {"clip_grad", o.clip_grad},
          {"label_smoothing", o.label_smoothing}, {"dropout", o.dropout},
          {"drop_path", o.drop_path}, {"seed", o.seed}, {"threads", o.threads},
          {"device", o.device}, {"no_augment", o.no_augment}, {"no_shuffle", o.no_shuffle},
          {"crop_padding", o.crop_padding}, {"hflip", o.hflip},
          {"randaugment_n", o.randaugment_n}, {"randaugment_m", o.randaugment_m},
          {"erasing", o.erasing}, {"mixup", o.mixup}, {"cutmix", o.cutmix},
          {"val_ratio", o.val_ratio}, {"init", o.init}, {"freeze_backbone", o.freeze_backbone},
          {"checkpoint_every", o.checkpoint_every}, {"log_every", o.log_every},
          {"max_nonfinite", o.max_nonfinite}};
}

TrainOptions options_from_json(const nlohmann::json& j, const std::string& src) {
  using vit::io::detail::json_field;
  TrainOptions o;
  o.dataset = json_field<std::string>(j, "dataset", src);
  o.data = json_field<std::string>(j, "data", src);
  o.model = json_field<std::string>(j, "model", src);
  o.epochs = json_field<int64_t>(j, "epochs", src);
  o.steps = json_field<int64_t>(j, "steps", src);
  o.batch = json_field<int64_t>(j, "batch", src);
  o.optimizer = json_field<std::string>(j, "optimizer", src);
  o.lr = json_field<double>(j, "lr", src);
  o.weight_decay = json_field<double>(j, "weight_decay", src);
  o.momentum = json_field<double>(j, "momentum", src);
  o.schedule = json_field<std::string>(j, "schedule", src);
  o.warmup_epochs = json_field<double>(j, "warmup_epochs", src);
  o.min_lr = json_field<double>(j, "min_lr", src);
  o.clip_grad = json_field<double>(j, "clip_grad", src);
  o.label_smoothing = json_field<double>(j, "label_smoothing", src);
  o.dropout = json_field<double>(j, "dropout", src);
  o.drop_path = json_field<double>(j, "drop_path", src);
  o.seed = json_field<uint64_t>(j, "seed", src);
  o.threads = json_field<int>(j, "threads", src);
  o.device = json_field<std::string>(j, "device", src);
  o.no_augment = json_field<bool>(j, "no_augment", src);
  o.no_shuffle = json_field<bool>(j, "no_shuffle", src);
  o.crop_padding = json_field<int64_t>(j, "crop_padding", src);
  o.hflip = json_field<bool>(j, "hflip", src);
  o.randaugment_n = json_field<int>(j, "randaugment_n", src);
  o.randaugment_m = json_field<int>(j, "randaugment_m", src);
  o.erasing = json_field<double>(j, "erasing", src);
  o.mixup = json_field<double>(j, "mixup", src);
  o.cutmix = json_field<double>(j, "cutmix", src);
  o.val_ratio = json_field<double>(j, "val_ratio", src);
  o.init = json_field<std::string>(j, "init", src);
  o.freeze_backbone = json_field<bool>(j, "freeze_backbone", src);
  o.checkpoint_every = json_field<int64_t>(j, "checkpoint_every", src);
  o.log_every = json_field<int64_t>(j, "log_every", src);
  o.max_nonfinite = json_field<int64_t>(j, "max_nonfinite", src);
  VIT_CHECK(o.epochs > 0 && o.batch > 0 && o.log_every > 0 && o.max_nonfinite > 0, src,
            ": epochs, batch, log_every and max_nonfinite must be positive");
  return o;
}

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

/// Per-data-set defaults for whatever the user left unset. Fine-tuning
/// (--init) moves pretrained weights, not random ones: a tenth of the
/// from-scratch learning rate over 10 epochs, as the seed's fine-tuning does.
void fill_defaults(TrainOptions& o) {
  if (o.data.empty()) o.data = dataset_info(o.dataset).default_dir;
  if (o.model.empty()) o.model = dataset_info(o.dataset).default_model;
  const bool fine_tune = !o.init.empty();
  if (o.epochs <= 0) o.epochs = fine_tune ? 10 : dataset_info(o.dataset).default_epochs;
  if (o.lr <= 0) o.lr = (o.optimizer == "sgd" ? 0.05 : 1e-3) * (fine_tune ? 0.1 : 1.0);
  if (o.warmup_epochs < 0) o.warmup_epochs = std::max<double>(1.0, std::floor(o.epochs / 20.0));
}

// Flags that define a run: --resume takes them from config.json instead.
const std::vector<std::string>& run_defining_flags() {
  static const std::vector<std::string> f = {
      "--dataset", "--model", "--epochs", "--steps", "--batch", "--optimizer", "--lr",
      "--weight-decay", "--momentum", "--schedule", "--warmup-epochs", "--min-lr", "--clip-grad",
      "--label-smoothing", "--dropout", "--drop-path", "--seed", "--no-augment", "--no-shuffle",
      "--crop-padding", "--no-hflip", "--randaugment-n", "--randaugment-m", "--erasing",
      "--mixup", "--cutmix", "--val-ratio", "--init", "--freeze-backbone", "--force"};
  return f;
}

std::unique_ptr<vit::optim::Optimizer<float>> make_optimizer(const TrainOptions& o,
                                                             vit::nn::VisionTransformer<float>& m) {
  auto groups = vit::optim::default_param_groups(vit::nn::trainable_parameters(m), o.weight_decay);
  if (o.optimizer == "sgd")
    return std::make_unique<vit::optim::SGD<float>>(std::move(groups),
                                                    vit::optim::SgdOptions{o.lr, o.momentum, 0.0, false});
  vit::optim::AdamOptions ao;
  ao.lr = o.lr;
  if (o.optimizer == "adam") return std::make_unique<vit::optim::Adam<float>>(std::move(groups), ao);
  return std::make_unique<vit::optim::AdamW<float>>(std::move(groups), ao);
}

// Fault injection for the tests:
//  VIT_INJECT_NAN_STEPS="3,4" poisons the loss (and so every gradient) at those
//    optimizer steps, as a diverging batch would;
//  VIT_INJECT_KILL_AT_STEP=N sends the process SIGKILL right after step N's
//    update, before anything of that step is logged or saved.
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

// The files a run writes, each replaced atomically through a temp file.
const char* const kRunFiles[] = {"config.json",   "last.safetensors", "best.safetensors",
                                 "metrics.jsonl", "metrics.csv",      "curves.png"};

/// Makes the run directory of a new run, or empties the one --force replaces.
void prepare_run_dir(const TrainOptions& o) {
  std::error_code ec;
  fs::create_directories(o.out, ec);
  VIT_CHECK(!ec && fs::is_directory(o.out), "--out: cannot create directory '", o.out, "': ", ec.message());
  if (o.force)
    for (const char* f : kRunFiles) fs::remove(o.out + "/" + f, ec);
  // A process killed while writing leaves its temp file behind; nobody else
  // writes in a run directory, so the ones found at start are garbage.
  vit::io::remove_stale_temp_files(o.out, kRunFiles);
}

/// A resumed run must see the data it started with: other classes or another
/// number of batches per epoch would silently change what the cursor means.
void check_same_data(const nlohmann::json& run_config, const std::string& cfg_path,
                     const vit::data::Dataset& train, int64_t batches_per_epoch) {
  const auto names = run_config.find("class_names");
  VIT_CHECK(names == run_config.end() || *names == nlohmann::json(train.class_names), "--resume: the data has classes ",
            nlohmann::json(train.class_names).dump(), " but ", cfg_path, " was trained on ",
            names->dump());
  const auto bpe = run_config.find("steps_per_epoch");
  VIT_CHECK(bpe == run_config.end() || *bpe == batches_per_epoch, "--resume: the data gives ",
            batches_per_epoch, " batches per epoch but ", cfg_path, " has ", bpe->dump(),
            " (another data set, or other files in --data)");
}

}  // namespace

int run_train(const CLI::App& cmd, TrainOptions o) {
  const auto wall0 = std::chrono::steady_clock::now();
  checked_device(o.device);  // before anything is written
  // ---- the run directory: new, replaced (--force) or resumed ----------------
  const TrainOptions given = o;
  std::optional<vit::io::Checkpoint<float>> resume_ck;
  std::optional<TrainState> resume_state;
  nlohmann::json run_config;  // config.json of the run being resumed
  if (o.resume) {
    VIT_CHECK(!o.out.empty(), "--resume: name the run directory with --out");
    for (const auto& f : run_defining_flags())
      VIT_CHECK(cmd.count(f) == 0, "--resume takes the run's settings from ", o.out,
                "/config.json; drop ", f);
    const std::string cfg_path = o.out + "/config.json";
    VIT_CHECK(fs::exists(cfg_path), "--resume: ", cfg_path, " does not exist (nothing to resume)");
    vit::io::remove_stale_temp_files(o.out, kRunFiles);
    run_config = vit::io::detail::parse_json(read_text(cfg_path), cfg_path);
    o = options_from_json(run_config, cfg_path);
    o.out = given.out, o.resume = true;
    if (cmd.count("--threads") && given.threads != o.threads) {
      // Reductions split across threads add in another order: still correct,
      // no longer bitwise the uninterrupted run.
      if (o.threads > 0)
        std::fprintf(stderr, "resume: %d threads where the run had %d; the weights will not be "
                     "bitwise those of an uninterrupted run\n", given.threads, o.threads);
      o.threads = given.threads;
    }
    if (cmd.count("--workers")) o.workers = given.workers;
    if (cmd.count("--device")) o.device = given.device;
    if (cmd.count("--data")) o.data = given.data;
    if (cmd.count("--checkpoint-every")) o.checkpoint_every = given.checkpoint_every;
    const std::string last = o.out + "/last.safetensors";
    if (fs::exists(last)) {
      resume_ck = vit::io::load_checkpoint<float>(last);
      resume_state = state_from_checkpoint(*resume_ck);
      VIT_CHECK(resume_ck->config && resume_state, last,
                ": not a training checkpoint (no train state)");
    } else {
      // Killed before its first checkpoint: the run restarts from step 0 with
      // its own config, which (being deterministic) is the same run.
      std::fprintf(stderr, "resume: %s has no checkpoint yet; starting the run from step 0\n",
                   o.out.c_str());
      o.resume = false;
    }
  } else {
    fill_defaults(o);
    if (o.out.empty()) o.out = default_run_dir(o);
    const bool has_run = fs::exists(o.out + "/config.json") || fs::exists(o.out + "/last.safetensors") ||
                         fs::exists(o.out + "/metrics.jsonl");
    VIT_CHECK(!has_run || o.force, "--out: ", o.out,
              " already holds a run; --resume continues it, --force replaces it");
    // The directory is made (or emptied, with --force) only once the preset,
    // the data and --init have been read: a typo must not cost the old run.
  }
  const vit::Device device = checked_device(o.device);  // again: --resume may have changed it
  // The count is part of the run (config.json): resuming on another machine
  // with the same count gives the same bits.
  if (o.threads <= 0) o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  vit::set_num_threads(o.threads);

  // ---- data and model ---------------------------------------------------------
  vit::nn::VitConfig cfg = vit::nn::vit_preset(o.model);
  const Splits data = load_splits(o.dataset, o.data, true, cfg.image_size, cfg.in_chans, o.val_ratio, o.seed);
  cfg.num_classes = data.train.num_classes();
  cfg.drop_rate = o.dropout, cfg.drop_path_rate = o.drop_path, cfg.seed = o.seed;
  if (resume_ck) cfg = *resume_ck->config;
  auto model = std::make_unique<vit::nn::VisionTransformer<float>>(cfg);
  const vit::data::Normalization norm = normalization_for(o.dataset, cfg.in_chans);
  if (!o.init.empty() && !resume_ck) {
    const auto init = vit::io::load_checkpoint<float>(o.init);
    vit::nn::PretrainedReport rep;
    try {
      rep = vit::nn::load_pretrained(*model, init.model);
    } catch (const vit::Error& e) {
      VIT_CHECK(false, "--init ", o.init, ": ", e.what());
    }
    std::fprintf(stderr, "init: %lld tensors from %s\n", static_cast<long long>(rep.loaded), o.init.c_str());
    for (const auto& n : rep.notes) std::fprintf(stderr, "init: %s\n", n.c_str());
  }
  if (o.freeze_backbone) vit::nn::freeze_backbone(*model);
  model->to(device);  // before the optimizer, whose state lives beside the parameters
  auto opt = make_optimizer(o, *model);

  vit::data::LoaderConfig lc;
  lc.batch_size = o.batch, lc.shuffle = !o.no_shuffle, lc.drop_last = true, lc.augment = !o.no_augment;
  lc.seed = o.seed, lc.normalization = norm, lc.workers = o.workers;
  lc.image_size = cfg.image_size, lc.channels = cfg.in_chans;
  lc.augment_config.crop_padding =
      o.crop_padding >= 0 ? o.crop_padding : cfg.image_size == 32 ? 4 : cfg.image_size == 28 ? 2 : 0;
  lc.augment_config.hflip = o.hflip;
  lc.augment_config.randaugment_n = o.randaugment_n, lc.augment_config.randaugment_m = o.randaugment_m;
  lc.augment_config.erasing_prob = o.erasing;
  lc.mixup = !o.no_augment && (o.mixup > 0 || o.cutmix > 0);
  lc.mixup_config.mixup_alpha = o.mixup, lc.mixup_config.cutmix_alpha = o.cutmix;
  lc.mixup_config.label_smoothing = o.label_smoothing, lc.mixup_config.num_classes = cfg.num_classes;
  vit::data::Loader loader(data.train, lc);
  const int64_t bpe = loader.batches_per_epoch();
  if (!run_config.is_null()) check_same_data(run_config, o.out + "/config.json", data.train, bpe);

  vit::optim::LrSchedule sched;
  sched.kind = vit::optim::schedule_kind(o.schedule);
  sched.base_lr = o.lr, sched.min_lr = o.min_lr;
  sched.total_steps = o.epochs * bpe;
  sched.warmup_steps = static_cast<int64_t>(std::llround(o.warmup_epochs * bpe));
  sched.step_size = std::max<int64_t>(1, (o.epochs / 3) * bpe), sched.gamma = 0.1;  // step: ×0.1 at 1/3, 2/3
  const int64_t last_step = o.steps > 0 ? std::min(o.steps, sched.total_steps) : sched.total_steps;

  // ---- state: fresh or from the checkpoint ------------------------------------
  TrainState st;
  st.optimizer = o.optimizer;
  if (resume_ck) {
    vit::io::load_model_weights(*model, *resume_ck);
    VIT_CHECK(resume_state->optimizer == o.optimizer, resume_ck->path, ": optimizer '",
              resume_state->optimizer, "' but config.json says '", o.optimizer, "'");
    opt->load_named_state(resume_ck->optimizer);
    st = *resume_state;
    opt->set_steps(st.step - st.nonfinite_steps);  // skipped steps did not advance Adam's bias correction
    model->dropout_generator().set_state(st.dropout_seed, st.dropout_offset);
    VIT_CHECK(st.batch_in_epoch < bpe, resume_ck->path, ": data cursor ", st.batch_in_epoch,
              " is beyond the ", bpe, " batches of an epoch");
    std::fprintf(stderr, "resume: %s at step %lld (epoch %lld, batch %lld)\n", resume_ck->path.c_str(),
                 static_cast<long long>(st.step), static_cast<long long>(st.epoch),
                 static_cast<long long>(st.batch_in_epoch));
    resume_ck.reset();
  } else {
    prepare_run_dir(o);
    nlohmann::json effective = options_to_json(o);
    effective["model_config"] = vit::io::config_to_json(cfg);
    effective["class_names"] = data.train.class_names;
    effective["normalization"] = nlohmann::json::parse(normalization_json(norm));
    effective["steps_per_epoch"] = bpe;
    vit::io::write_file_atomic(o.out + "/config.json", effective.dump(2) + "\n");
  }
  MetricsLog metrics(o.out, o.resume ? st.step : -1);
  const std::map<std::string, std::string> extra = {{"vit.normalization", normalization_json(norm)}};
  auto save_last = [&] {
    st.dropout_seed = model->dropout_generator().seed();
    st.dropout_offset = model->dropout_generator().offset();
    std::map<std::string, std::string> metadata = state_metadata(st);
    metadata.insert(extra.begin(), extra.end());
    vit::io::save_checkpoint(o.out + "/last.safetensors", *model, data.train.class_names, opt.get(), metadata);
  };

  std::printf("train: %s on %s (%lld train / %lld test images, %lld classes), %lld parameters, "
              "%d threads\n",
              cfg.name.c_str(), o.dataset.c_str(), static_cast<long long>(data.train.size()),
              static_cast<long long>(data.test.size()), static_cast<long long>(cfg.num_classes),
              static_cast<long long>(model->num_parameters()), vit::num_threads());
  std::printf("train: %lld epochs x %lld steps, batch %lld, %s lr %g, run dir %s\n",
              static_cast<long long>(o.epochs), static_cast<long long>(bpe), static_cast<long long>(o.batch),
              o.optimizer.c_str(), o.lr, o.out.c_str());
  std::fflush(stdout);

  // ---- the loop -----------------------------------------------------------------
  Progress progress(last_step, st.step);
  std::vector<vit::TensorF> params;
  for (auto& [n, p] : vit::nn::trainable_parameters(*model)) params.push_back(p);
  const double clip = o.clip_grad > 0 ? o.clip_grad : INFINITY;
  const std::vector<int64_t> nan_steps = injected_steps("VIT_INJECT_NAN_STEPS");
  const std::vector<int64_t> kill_steps = injected_steps("VIT_INJECT_KILL_AT_STEP");
  model->train();
  loader.start(st.epoch, st.batch_in_epoch);
  double window_loss = 0;
  int64_t window_n = 0, window_correct = 0, window_steps = 0;
  auto window_t0 = std::chrono::steady_clock::now();
  double wait_at_window = loader.wait_seconds();
  while (st.step < last_step) {
    const vit::data::Batch& b = loader.next();
    opt->set_lr(sched.at(st.step));
    opt->zero_grad();
    const vit::TensorF logits = model->forward(b.images.to(device));
    vit::TensorF loss = lc.mixup ? vit::cross_entropy(logits, b.soft_targets.to(device))
                                 : vit::cross_entropy(logits, b.labels, o.label_smoothing);
    if (std::find(nan_steps.begin(), nan_steps.end(), st.step + 1) != nan_steps.end())
      loss = vit::scale(loss, NAN);
    const double loss_v = loss.item();
    loss.backward();
    const double gnorm = vit::optim::clip_grad_norm(params, clip);
    if (!std::isfinite(loss_v) || !std::isfinite(gnorm)) {
      ++st.nonfinite_steps, ++st.nonfinite_run;
      opt->zero_grad();  // skip the update; the weights stay as they were
      if (st.nonfinite_run >= o.max_nonfinite) {
        const std::string last = o.out + "/last.safetensors";
        VIT_CHECK(false, "stopping: ", st.nonfinite_run, " consecutive steps with a non-finite ",
                  std::isfinite(loss_v) ? "gradient norm" : "loss", " (the last was step ", st.step + 1,
                  "); ", fs::exists(last) ? "the last good checkpoint is " + last + ", untouched"
                                          : std::string("no checkpoint had been written yet"));
      }
    } else {
      opt->step();
      st.nonfinite_run = 0;
      const int64_t n = b.size(), K = cfg.num_classes;
      int64_t correct = 0;
      const vit::TensorF host_logits = logits.to(vit::Device::CPU);
      for (int64_t i = 0; i < n; ++i) {
        const float* row = host_logits.data() + i * K;
        correct += std::max_element(row, row + K) - row == b.labels[i];
      }
      window_loss += loss_v * n, st.epoch_sums.loss_sum += loss_v * n;
      window_n += n, st.epoch_sums.images += n, window_correct += correct, st.epoch_sums.correct += correct;
    }
    ++st.step, ++window_steps;
    if (std::find(kill_steps.begin(), kill_steps.end(), st.step) != kill_steps.end()) ::raise(SIGKILL);
    st.epoch = b.epoch, st.batch_in_epoch = b.index + 1;
    const bool epoch_end = st.batch_in_epoch == bpe;
    if (epoch_end) ++st.epoch, st.batch_in_epoch = 0;

    const auto now = std::chrono::steady_clock::now();
    const double window_s = std::chrono::duration<double>(now - window_t0).count();
    const double img_s = window_s > 0 ? window_steps * o.batch / window_s : 0;
    const double train_acc = window_n ? double(window_correct) / window_n : NAN;
    progress.update(st.step, b.epoch, o.epochs, window_n ? window_loss / window_n : loss_v, train_acc, img_s);
    if (st.step % o.log_every == 0 || st.step == last_step) {
      MetricsRow r;
      r.kind = "step", r.step = st.step, r.epoch = b.epoch;
      r.time_s = std::chrono::duration<double>(now - wall0).count();
      r.lr = opt->lr(), r.loss = window_n ? window_loss / window_n : NAN, r.train_top1 = train_acc;
      r.img_per_s = img_s;
      r.data_wait = window_s > 0 ? (loader.wait_seconds() - wait_at_window) / window_s : 0;
      r.nonfinite = st.nonfinite_steps;
      metrics.append(r);
      progress.log_line(r);
      window_loss = 0, window_n = window_correct = window_steps = 0;
      window_t0 = now, wait_at_window = loader.wait_seconds();
    }
    if (epoch_end || st.step == last_step) {
      const EvalResult ev = evaluate(*model, data.test, norm, std::max<int64_t>(o.batch, 256));
      MetricsRow r;
      r.kind = "epoch", r.step = st.step, r.epoch = b.epoch;
      r.time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
      const StepSums& e = st.epoch_sums;
      r.lr = opt->lr(), r.loss = e.images ? e.loss_sum / e.images : NAN;
      r.train_top1 = e.images ? double(e.correct) / e.images : NAN;
      r.test_loss = ev.loss, r.test_top1 = ev.top1, r.test_top5 = ev.top5;
      r.data_wait = r.time_s > 0 ? loader.wait_seconds() / r.time_s : 0;
      r.nonfinite = st.nonfinite_steps;
      metrics.append(r);
      progress.epoch_line(r, o.epochs);
      st.epoch_sums = StepSums{};
      if (ev.top1 > st.best_top1) {
        st.best_top1 = ev.top1;
        vit::io::save_checkpoint<float>(o.out + "/best.safetensors", *model, data.train.class_names,
                                        nullptr, extra);
      }
      write_curves_png(o.out + "/curves.png", metrics.rows());
    }
    if (epoch_end || st.step == last_step ||
        (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0))
      save_last();
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("done: %lld steps in %.1f s, best test top-1 %.2f%%, data wait %.1f%% of the time, "
              "%lld non-finite steps skipped; %s/last.safetensors\n",
              static_cast<long long>(st.step), total_s, 100 * st.best_top1,
              100 * loader.wait_seconds() / total_s, static_cast<long long>(st.nonfinite_steps),
              o.out.c_str());
  return 0;
}

}  // namespace vitcli
