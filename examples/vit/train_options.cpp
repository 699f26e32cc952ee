// The table of `vit train`'s options, and what follows from it: CLI flags,
// config.json, the flags --resume refuses or takes, and the defaults that
// depend on the data set.
#include "train_options.hpp"

#include <cmath>
#include <optional>
#include <type_traits>
#include <variant>
#include <vector>
#include <vit/vit.hpp>

#include "commands.hpp"  // the number checks
#include "datasets.hpp"

namespace vitcli {

namespace {

/// What --resume does with an option given on its command line.
enum class OnResume {
  kConfig,   // config.json's value is used; one given now is ignored
  kRefused,  // it defines the run: giving it is an error
  kGiven,    // where and how fast the run goes: a value given now wins
};

/// One option, written once.
struct TrainOption {
  using Member =
      std::variant<std::string TrainOptions::*, int64_t TrainOptions::*, uint64_t TrainOptions::*,
                   int TrainOptions::*, double TrainOptions::*, bool TrainOptions::*,
                   std::vector<double> TrainOptions::*>;
  std::string flag;  // as CLI11 takes it: "!--no-x" is a flag that sets x to false
  Member member;
  std::string help;
  std::string group;  // the heading it is listed under in --help
  std::optional<CLI::Validator> check;
  bool show_default = false;
  bool saved = true;  // kept in config.json
  bool since_added = false;  // newer than some config.json files: absent there means the default
  bool pair = false;         // takes exactly two numbers (--scale 0.08 1)
  OnResume on_resume = OnResume::kConfig;

  TrainOption& checked(CLI::Validator v) { return check = std::move(v), *this; }
  TrainOption& with_default() { return show_default = true, *this; }
  TrainOption& run_defining() { return on_resume = OnResume::kRefused, *this; }
  TrainOption& given_on_resume() { return on_resume = OnResume::kGiven, *this; }
  TrainOption& not_saved() { return saved = false, *this; }
  TrainOption& added_later() { return since_added = true, *this; }
  TrainOption& expected_pair() { return pair = true, *this; }

  bool negated() const { return flag[0] == '!'; }
  /// The name users type and errors show: "--no-hflip".
  std::string name() const { return negated() ? flag.substr(1) : flag; }
  /// The config.json key, which is the member's name: the flag without its
  /// dashes, and without "no_" for a negated flag ("!--no-hflip": "hflip").
  std::string key() const {
    std::string k = name().substr(2);
    for (char& c : k)
      if (c == '-') c = '_';
    return negated() ? k.substr(3) : k;
  }
};

TrainOption option(std::string flag, TrainOption::Member member, std::string help) {
  TrainOption t;
  t.flag = std::move(flag), t.member = member, t.help = std::move(help);
  return t;
}

/// Rows under one --help heading.
std::vector<TrainOption> grouped(const std::string& group, std::vector<TrainOption> rows) {
  for (TrainOption& t : rows) t.group = group;
  return rows;
}

/// A pair of numbers lo <= hi, each in [min, max].
CLI::Validator ordered_pair(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& v) -> std::string {
        // CLI11 checks a vector element by element; the order is checked in fill_defaults.
        double x = 0;
        if (!CLI::detail::lexical_cast(v, x) || !(x >= min && x <= max))
          return "value " + v + " is not a number in [" + std::to_string(min) + ", " +
                 std::to_string(max) + "]";
        return {};
      },
      "");
}

/// Every option of `vit train`, in the order of --help.
const std::vector<TrainOption>& train_options() {
  using O = TrainOptions;
  // One option per row, its properties on one line.
  // clang-format off
  static const std::vector<TrainOption> table = [] {
  std::vector<std::vector<TrainOption>> groups = {
    grouped("Data", {
      option("--dataset", &O::dataset, "Data set")
          .checked(CLI::IsMember(dataset_names())).with_default().run_defining(),
      option("--data", &O::data,
             "Data directory (default for fashion-mnist: /usr/share/datasets/fashion-mnist; "
             "folders: DIR/<class>/… split by --val-ratio, or DIR/train/<class>/… and "
             "DIR/val/<class>/… as given)")
          .given_on_resume(),
      option("--val-ratio", &O::val_ratio, "Folder data sets without train/ and val/: share of each class held out")
          .checked(number_in(0.0, 0.9)).with_default().run_defining(),
      option("--mean", &O::norm_mean,
             "Normalisation mean per channel (default: the data set's; ImageNet's for folders "
             "at 224, 0.5 for in21k presets)")
          .checked(number_in(-10.0, 10.0)).run_defining().added_later(),
      option("--std", &O::norm_std, "Normalisation standard deviation per channel (default: as --mean)")
          .checked(number_in(1e-6, 10.0)).run_defining().added_later(),
      option("--crop-pct", &O::crop_pct,
             "Folders, evaluation: resize the shorter side to size/crop-pct, then centre crop (timm)")
          .checked(number_in(0.1, 1.0)).with_default().run_defining().added_later(),
      option("--workers", &O::workers, "Data loader threads")
          .checked(positive_number()).with_default().not_saved().given_on_resume(),
    }),
    grouped("Model", {
      option("--model", &O::model,
             "Model preset (default: cifar-tiny for CIFAR, fmnist-tiny for (Fashion-)MNIST, "
             "vit-ti16 for folders)")
          .run_defining(),
      option("--representation-size", &O::representation_size,
             "Pre-logits layer (Linear + Tanh) of this width before the head; 0: none "
             "(default: the preset's, 768/1024/1280 for the in21k presets)")
          .checked(non_negative_number()).run_defining().added_later(),
      option("--gelu", &O::gelu, "GELU form: erf (exact) or tanh (default: the preset's, erf)")
          .checked(CLI::IsMember({"erf", "tanh"})).run_defining().added_later(),
      option("--pos-embed", &O::pos_embed,
             "Position embedding: learned, or sincos (fixed 2-D sin-cos, as MAE)")
          .checked(CLI::IsMember({"learned", "sincos"})).with_default().run_defining().added_later(),
      option("--init", &O::init,
             "Fine-tune from these weights (.safetensors with timm names; head re-initialised "
             "if the class count differs, pos_embed resampled; scripts/pth_to_safetensors.py "
             "converts .pth files)")
          .checked(CLI::ExistingFile).run_defining(),
      option("--freeze-backbone", &O::freeze_backbone, "Train only the classifier head (and pre-logits)")
          .run_defining(),
    }),
    grouped("Optimisation", {
      option("--epochs", &O::epochs,
             "Epochs; the schedule spans them (default: 100 CIFAR, 50 Fashion-MNIST, 30 "
             "folders, 10 MNIST, 10 when fine-tuning with --init)")
          .checked(positive_number()).run_defining(),
      option("--steps", &O::steps,
             "Stop after this many optimizer steps (schedule still spans --epochs)")
          .checked(positive_number()).run_defining(),
      option("--batch", &O::batch, "Batch size per rank (global batch: batch x ranks x accum-steps)")
          .checked(positive_number()).with_default().run_defining(),
      option("--accum-steps", &O::accum_steps,
             "Gradient accumulation: micro-batches per optimizer step (with several ranks, "
             "gradients are averaged only on the last)")
          .checked(positive_number()).with_default().run_defining().added_later(),
      option("--optimizer", &O::optimizer, "Optimizer")
          .checked(CLI::IsMember({"adamw", "adam", "sgd"})).with_default().run_defining(),
      option("--lr", &O::lr,
             "Peak learning rate (default: 1e-3 for adam/adamw, 0.05 for sgd; a tenth of "
             "that when fine-tuning with --init)")
          .checked(positive_number()).run_defining(),
      option("--weight-decay", &O::weight_decay,
             "Weight decay (not on biases, norms, pos_embed, cls_token)")
          .checked(non_negative_number()).with_default().run_defining(),
      option("--momentum", &O::momentum, "SGD momentum")
          .checked(number_in(0.0, 1.0)).with_default().run_defining(),
      option("--schedule", &O::schedule, "Learning-rate schedule after warmup")
          .checked(CLI::IsMember({"cosine", "step", "constant"})).with_default().run_defining(),
      option("--step-size", &O::step_size,
             "--schedule step: epochs between decays (default: a third of the run)")
          .checked(positive_number()).run_defining().added_later(),
      option("--gamma", &O::gamma, "--schedule step: learning-rate factor at each decay")
          .checked(number_in(0.0, 1.0)).with_default().run_defining().added_later(),
      option("--warmup-epochs", &O::warmup_epochs,
             "Linear warmup epochs (default: epochs/20, at least 1, at most a tenth of the run)")
          .checked(non_negative_number()).run_defining(),
      option("--min-lr", &O::min_lr, "Cosine floor")
          .checked(non_negative_number()).with_default().run_defining(),
      option("--clip-grad", &O::clip_grad, "Clip the global gradient norm to this (0: off)")
          .checked(non_negative_number()).run_defining(),
      option("--model-ema", &O::model_ema,
             "Keep an exponential moving average of the weights, evaluated each epoch and "
             "saved as ema.safetensors (timm)")
          .run_defining().added_later(),
      option("--model-ema-decay", &O::model_ema_decay, "EMA decay per step (warmed up as timm's)")
          .checked(number_in(0.0, 1.0)).with_default().run_defining().added_later(),
    }),
    grouped("Regularisation and augmentation", {
      option("--label-smoothing", &O::label_smoothing, "Label smoothing")
          .checked(number_in(0.0, 0.999)).with_default().run_defining(),
      option("--dropout", &O::dropout, "Dropout rate").checked(number_in(0.0, 0.999)).run_defining(),
      option("--attn-drop", &O::attn_drop, "Attention dropout rate (on the softmax probabilities)")
          .checked(number_in(0.0, 0.999)).run_defining().added_later(),
      option("--drop-path", &O::drop_path, "Stochastic depth rate")
          .checked(number_in(0.0, 0.999)).run_defining(),
      option("--no-augment", &O::no_augment, "No random crop, flip or other augmentation")
          .run_defining(),
      option("--crop-padding", &O::crop_padding,
             "Random-crop padding of small images (default: 4 at 32px, 2 at 28px)")
          .checked(non_negative_number()).run_defining(),
      option("--scale", &O::scale,
             "Folders: RandomResizedCrop's range of the image area kept")
          .checked(ordered_pair(1e-4, 1.0)).expected_pair().with_default().run_defining().added_later(),
      option("--ratio", &O::ratio, "Folders: RandomResizedCrop's range of aspect ratios")
          .checked(ordered_pair(1e-2, 100.0)).expected_pair().with_default().run_defining().added_later(),
      option("!--no-hflip", &O::hflip, "No random horizontal flip").run_defining(),
      option("--color-jitter", &O::color_jitter,
             "Brightness, contrast and saturation jitter factor (timm; 0: off)")
          .checked(number_in(0.0, 1.0)).run_defining().added_later(),
      option("--randaugment-n", &O::randaugment_n, "RandAugment ops per image (0: off)")
          .checked(CLI::Range(0, 10)).run_defining(),
      option("--randaugment-m", &O::randaugment_m, "RandAugment magnitude (0..10)")
          .checked(CLI::Range(0, 10)).with_default().run_defining(),
      option("--erasing", &O::erasing, "Random erasing probability")
          .checked(number_in(0.0, 1.0)).run_defining(),
      option("--erasing-area", &O::erasing_area,
             "Random erasing: range of the image area erased (the tutorial's CutOut: 0.1 0.4)")
          .checked(ordered_pair(1e-4, 1.0)).expected_pair().with_default().run_defining().added_later(),
      option("--mixup", &O::mixup, "Mixup alpha (0: off)")
          .checked(non_negative_number()).run_defining(),
      option("--cutmix", &O::cutmix, "CutMix alpha (0: off)")
          .checked(non_negative_number()).run_defining(),
    }),
    grouped("Run", {
      option("--out", &O::out, "Run directory (default: runs/<date>-<time>-<dataset>-<model>)")
          .not_saved().given_on_resume(),
      option("--resume", &O::resume, "Continue the run in --out from its last.safetensors")
          .not_saved().given_on_resume(),
      option("--force", &O::force, "Replace a run already in --out").not_saved().run_defining(),
      option("--seed", &O::seed, "Seed of init, shuffling, augmentation and dropout")
          .with_default().run_defining(),
      option("--no-shuffle", &O::no_shuffle, "Batches in file order").run_defining(),
      // Part of the run (config.json): resuming with the same count gives the
      // same bits; another count is allowed, with a warning.
      option("--threads", &O::threads, "CPU threads (default: all cores, shared by the ranks of a job)")
          .checked(positive_number()).given_on_resume(),
      option("--device", &O::device, "Device")
          .checked(CLI::IsMember({"cpu", "cuda"})).with_default().given_on_resume(),
      option("--precision", &O::precision,
             "Arithmetic: fp32; tf32 (TF32 tensor cores for GEMMs and attention on the GPU); bf16 "
             "(bf16 activations and GEMM operands, float32 accumulation, float32 master weights)")
          .checked(CLI::IsMember({"fp32", "tf32", "bf16"})).with_default().run_defining().added_later(),
      // The graph replays the very kernels of the eager step: the same bits either way.
      option("!--no-cuda-graph", &O::cuda_graph,
             "On the GPU, run each step op by op instead of replaying it as one CUDA graph")
          .not_saved().given_on_resume(),
      option("--checkpoint-every", &O::checkpoint_every, "Also write last.safetensors every N steps")
          .checked(non_negative_number()).given_on_resume(),
      option("--log-every", &O::log_every, "Metrics row every N steps")
          .checked(positive_number()).with_default(),
      option("--tensorboard", &O::tensorboard,
             "Also write TensorBoard event files under <out>/tensorboard (loss, accuracy, lr)")
          .added_later(),
      option("--max-nonfinite", &O::max_nonfinite, "Stop after this many consecutive NaN/Inf steps")
          .checked(positive_number()).with_default(),
    }),
  };
  std::vector<TrainOption> all;
  for (auto& g : groups) all.insert(all.end(), g.begin(), g.end());
  return all;
  }();
  // clang-format on
  return table;
}

}  // namespace

void add_train_options(CLI::App& cmd, TrainOptions& o) {
  for (const TrainOption& t : train_options()) {
    CLI::Option* opt = std::visit(
        [&](auto m) -> CLI::Option* {
          auto& value = o.*m;
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>, bool>) {
            // "!--no-x" clears x; a callback flag keeps CLI11's "{false}" out of --help.
            if (t.negated()) return cmd.add_flag_callback(t.name(), [&value] { value = false; }, t.help);
            return cmd.add_flag(t.flag, value, t.help);
          } else
            return cmd.add_option(t.flag, value, t.help);
        },
        t.member);
    if (t.check) opt->check(*t.check);
    if (t.show_default) opt->capture_default_str();
    if (t.pair) {  // "--scale LO HI", default "0.08 1"
      const auto& v = o.*std::get<std::vector<double> TrainOptions::*>(t.member);
      opt->type_size(2)->expected(1)->type_name("LO HI")->default_str(CLI::detail::to_string(v[0]) + " " +
                                                        CLI::detail::to_string(v[1]));
    }
    opt->group(t.group);
  }
}

nlohmann::json options_to_json(const TrainOptions& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const TrainOption& t : train_options())
    if (t.saved) std::visit([&](auto m) { j[t.key()] = o.*m; }, t.member);
  return j;
}

TrainOptions options_from_json(const nlohmann::json& j, const std::string& src) {
  TrainOptions o;
  for (const TrainOption& t : train_options()) {
    if (!t.saved) continue;
    const std::string key = t.key();
    if (t.since_added && !j.contains(key)) continue;  // a run from before the option: its default
    std::visit(
        [&](auto m) {
          using V = std::decay_t<decltype(o.*m)>;
          o.*m = vit::io::detail::json_field<V>(j, key.c_str(), src);
        },
        t.member);
  }
  VIT_CHECK(o.epochs > 0 && o.batch > 0 && o.accum_steps > 0 && o.log_every > 0 && o.max_nonfinite > 0, src,
            ": epochs, batch, accum_steps, log_every and max_nonfinite must be positive");
  return o;
}

void refuse_run_defining_flags(const CLI::App& cmd, const std::string& run_dir) {
  for (const TrainOption& t : train_options())
    VIT_CHECK(t.on_resume != OnResume::kRefused || cmd.count(t.name()) == 0,
              "--resume takes the run's settings from ", run_dir, "/config.json; drop ", t.name());
}

void apply_resume_flags(const CLI::App& cmd, const TrainOptions& given, TrainOptions& o) {
  for (const TrainOption& t : train_options())
    if (t.on_resume == OnResume::kGiven && cmd.count(t.name()))
      std::visit([&](auto m) { o.*m = given.*m; }, t.member);
}

/// Fine-tuning (--init) moves pretrained weights, not random ones: a tenth of
/// the from-scratch learning rate over 10 epochs, as the seed's fine-tuning does.
void fill_defaults(TrainOptions& o) {
  const DatasetInfo& d = dataset_info(o.dataset);
  if (o.data.empty()) o.data = d.default_dir;
  if (o.model.empty()) o.model = d.default_model;
  const bool fine_tune = !o.init.empty();
  if (o.epochs <= 0) o.epochs = fine_tune ? 10 : d.default_epochs;
  if (o.lr <= 0) o.lr = (o.optimizer == "sgd" ? 0.05 : 1e-3) * (fine_tune ? 0.1 : 1.0);
  // timm's warmup is a few epochs of a long run; on a short one it is capped at
  // a tenth, so `--epochs 1` still trains (at full lr for 90% of its steps).
  if (o.warmup_epochs < 0)
    o.warmup_epochs = std::min(std::max<double>(1.0, std::floor(o.epochs / 20.0)), 0.1 * o.epochs);
  if (o.step_size <= 0) o.step_size = std::max<double>(1.0, std::floor(o.epochs / 3.0));
  check_pairs(o);
}

void check_pairs(const TrainOptions& o) {
  const std::pair<const char*, const std::vector<double>*> pairs[] = {
      {"--scale", &o.scale}, {"--ratio", &o.ratio}, {"--erasing-area", &o.erasing_area}};
  for (const auto& [flag, v] : pairs)
    VIT_CHECK(v->size() == 2 && (*v)[0] <= (*v)[1], flag, ": expected two numbers, the smaller first");
  // One value stands for every channel; otherwise the two agree.
  const size_t m = o.norm_mean.size(), s = o.norm_std.size();
  VIT_CHECK(m == s || m <= 1 || s <= 1, "--mean has ", m, " values but --std has ", s);
}

}  // namespace vitcli
