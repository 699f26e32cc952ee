// The run directory of `vit train`, and how a run starts in it: new,
// replacing an old one (--force), or resumed (--resume).
//
// A run directory holds config.json (the effective options, written once),
// metrics.jsonl/.csv, curves.png, last.safetensors (model + optimizer + train
// state, and the EMA of the weights with --model-ema, written atomically at
// each epoch end, every --checkpoint-every steps and at the end),
// best.safetensors (weights of the best test top-1), ema.safetensors (the
// EMA's weights, each epoch end), confusion.csv/.png (the last epoch's test
// set) and, with --tensorboard, event files under tensorboard/.
// --resume reloads config.json and last.safetensors and continues from the
// saved data cursor; since a batch is a pure function of its cursor and the
// RNG states are in the checkpoint, the resumed run ends bitwise where the
// uninterrupted one would (same thread count).
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>
#include <vit/vit.hpp>

#include "train_options.hpp"
#include "train_state.hpp"

namespace vitcli {

/// A run settled but not yet touched on disk.
struct RunStart {
  TrainOptions options;   // the run's own: config.json's when resumed, else the given ones
  nlohmann::json config;  // config.json of a resumed run; null for a new one
  std::optional<vit::io::Checkpoint<float>> checkpoint;  // last.safetensors of a resumed run
  TrainState state;                                      // the checkpoint's, when there is one
  std::map<std::string, vit::TensorF> ema;  // the weights' EMA a resumed checkpoint holds (timm names)
};

/// last.safetensors keeps the EMA among the optimizer's tensors, as
/// "optimizer.ema.<parameter>": training state that every reader of the
/// weights (eval, predict, --init, timm) already leaves aside.
inline const char* kEmaStatePrefix = "ema.";

/// Settles the run `given` names. --resume: the run in --out, from its
/// config.json and last.safetensors (a run killed before its first checkpoint
/// restarts from step 0, which being deterministic is the same run). Else a
/// new run: defaults filled, and --out must hold no run unless --force.
/// Nothing is created or removed: a typo must not cost an old run.
RunStart open_run(const CLI::App& cmd, const TrainOptions& given);

/// A resumed run must see the data it started with: other classes or another
/// number of steps per epoch would silently change what the cursor means
/// (unless the number of ranks changed, which changes the steps anyway).
void check_same_data(const RunStart& run, const vit::data::Dataset& train,
                     int64_t batches_per_epoch);

/// Puts a resumed run's model, optimizer and dropout generator where its
/// checkpoint left them, and its EMA tensors into run.ema (a run with
/// --model-ema must have them); the checkpoint is released. A checkpoint of a job
/// with another number of ranks moves the data cursor to the same share of
/// its epoch (saying so): the data order is not the original run's.
/// batches_per_epoch: the loader's (micro-batches of this rank).
void restore_run(RunStart& run, vit::nn::VisionTransformer<float>& model,
                 vit::optim::Optimizer<float>& opt, int64_t batches_per_epoch, int world_size);

/// Makes the directory of a new run (or empties the one --force replaces)
/// and writes its config.json.
void create_run_dir(const TrainOptions& o, const nlohmann::json& config);

/// Writes last.safetensors: model, optimizer moments, the EMA when there is
/// one, `st` (with the model's generator state as of now) and `extra` metadata.
void save_last(const TrainOptions& o, vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names, const vit::optim::Optimizer<float>& opt,
               const vit::optim::ModelEma<float>* ema, TrainState& st,
               const std::map<std::string, std::string>& extra);
/// Writes best.safetensors: weights only, loadable by timm.
void save_best(const TrainOptions& o, const vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names,
               const std::map<std::string, std::string>& extra);
/// Writes ema.safetensors: the EMA's weights as a model of their own (timm
/// names; eval, predict and --init load it).
void save_ema(const TrainOptions& o, const vit::nn::VisionTransformer<float>& ema_model,
              const std::vector<std::string>& class_names,
              const std::map<std::string, std::string>& extra);

std::string last_checkpoint_path(const TrainOptions& o);

}  // namespace vitcli
