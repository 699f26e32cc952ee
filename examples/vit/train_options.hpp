// `vit train`'s options: the struct a run is configured by, and the table
// (train_options.cpp) that writes each option once, binding its flag, help,
// check, config.json key and what --resume does with it. The CLI flags,
// config.json in both directions and the run-defining set all follow from
// that table: a new option is one member here and one row there.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vitcli {

struct TrainOptions {
  std::string dataset = "fashion-mnist";
  std::string data;    // default: the data set's standard place (Fashion-MNIST only)
  std::string model;   // default: per data set (cifar-tiny, fmnist-tiny, vit-ti16)
  std::string out;     // default: runs/<date>-<time>-<dataset>-<model>
  int64_t epochs = 0;  // 0: per data set
  int64_t steps = 0;   // > 0: stop after this many optimizer steps
  int64_t batch = 128;      // per rank (timm): the global batch is batch x ranks x accum_steps
  int64_t accum_steps = 1;  // micro-batches per optimizer step (gradient accumulation)
  std::string optimizer = "adamw";
  double lr = 0;  // 0: 1e-3 for adam(w), 0.05 for sgd
  double weight_decay = 0.05;
  double momentum = 0.9;  // sgd
  std::string schedule = "cosine";
  double step_size = 0;       // --schedule step: epochs between decays (0: a third of the run)
  double gamma = 0.1;         // --schedule step: the factor at each decay
  double warmup_epochs = -1;  // < 0: epochs / 20, at least 1 and at most a tenth of the run's steps
  double min_lr = 1e-5;
  double clip_grad = 0;  // <= 0: no clipping
  double label_smoothing = 0.1;
  double dropout = 0;
  double drop_path = 0;
  double attn_drop = 0;
  int64_t representation_size = -1;  // < 0: the preset's (in21k presets: a pre-logits layer)
  std::string gelu;                  // "": the preset's; "erf" or "tanh"
  std::string pos_embed = "learned"; // or "sincos": fixed 2-D sin-cos (MAE)
  uint64_t seed = 0;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32, tf32 (GPU tensor cores) or bf16 (mixed, fp32 master weights)
  bool no_augment = false;
  bool no_shuffle = false;
  int64_t crop_padding = -1;  // < 0: 4 for 32x32 data, 2 for 28x28
  bool hflip = true;
  int randaugment_n = 0;  // 0: off; e.g. 2
  int randaugment_m = 9;
  double erasing = 0;      // random erasing probability
  std::vector<double> erasing_area = {0.02, 1.0 / 3};  // erased share of the image (timm's min/max area)
  double color_jitter = 0;  // brightness, contrast and saturation factor (timm's --color-jitter; 0: off)
  std::vector<double> scale = {0.08, 1.0};           // RandomResizedCrop area share (folders)
  std::vector<double> ratio = {3.0 / 4, 4.0 / 3};    // RandomResizedCrop aspect ratio (folders)
  double crop_pct = 0.875;  // evaluation of folders: resize the shorter side to size/crop_pct, centre crop
  std::vector<double> norm_mean;  // --mean; empty: the data set's (ImageNet's for 224 presets, 0.5 for in21k)
  std::vector<double> norm_std;   // --std; empty: likewise
  double mixup = 0;        // mixup alpha (0: off)
  double cutmix = 0;       // cutmix alpha (0: off)
  double val_ratio = 0.2;  // folder data sets: share held out for validation
  std::string init;        // pretrained weights to fine-tune from
  bool freeze_backbone = false;
  bool resume = false;
  bool force = false;
  int64_t checkpoint_every = 0;  // steps; 0: at each epoch end only
  int64_t log_every = 50;
  int64_t max_nonfinite = 5;  // consecutive non-finite steps that stop the run
  int workers = 1;            // data loader threads
  bool cuda_graph = true;     // on the GPU: capture the step once, replay it every step
  bool model_ema = false;        // keep an exponential moving average of the weights (timm)
  double model_ema_decay = 0.9998;
  bool tensorboard = false;      // event files under <out>/tensorboard
};

/// Registers the train subcommand's flags on `cmd`, bound to `o`.
void add_train_options(CLI::App& cmd, TrainOptions& o);

/// The options config.json keeps: all but --out, --resume, --force, --workers and --no-cuda-graph.
nlohmann::json options_to_json(const TrainOptions& o);
/// Options read back from config.json; a missing or mistyped field is an
/// error naming `src`.
TrainOptions options_from_json(const nlohmann::json& j, const std::string& src);

/// --resume takes the run's settings from config.json: a flag that defines
/// the run (--lr, --seed, ...) is refused, naming `run_dir`.
void refuse_run_defining_flags(const CLI::App& cmd, const std::string& run_dir);
/// --resume: the flags that say only where and how fast the run goes
/// (--threads, --workers, --device, --data, --checkpoint-every, --out)
/// replace config.json's values in `o` when given.
void apply_resume_flags(const CLI::App& cmd, const TrainOptions& given, TrainOptions& o);

/// Per-data-set defaults for whatever the user left unset, for a new run.
void fill_defaults(TrainOptions& o);
/// The two-number options are ordered pairs; --mean and --std agree in length.
void check_pairs(const TrainOptions& o);

}  // namespace vitcli
