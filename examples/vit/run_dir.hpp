// The run directory of `vit train`, and how a run starts in it: new,
// replacing an old one (--force), or resumed (--resume).
//
// A run directory holds config.json (the effective options, written once),
// metrics.jsonl/.csv, curves.png, last.safetensors (model + optimizer + train
// state, written atomically at each epoch end, every --checkpoint-every steps
// and at the end) and best.safetensors (weights of the best test top-1).
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
};

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
/// checkpoint left them; the checkpoint is released. A checkpoint of a job
/// with another number of ranks moves the data cursor to the same share of
/// its epoch (saying so): the data order is not the original run's.
/// batches_per_epoch: the loader's (micro-batches of this rank).
void restore_run(RunStart& run, vit::nn::VisionTransformer<float>& model,
                 vit::optim::Optimizer<float>& opt, int64_t batches_per_epoch, int world_size);

/// Makes the directory of a new run (or empties the one --force replaces)
/// and writes its config.json.
void create_run_dir(const TrainOptions& o, const nlohmann::json& config);

/// Writes last.safetensors: model, optimizer moments, `st` (with the model's
/// generator state as of now) and `extra` metadata.
void save_last(const TrainOptions& o, vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names, const vit::optim::Optimizer<float>& opt,
               TrainState& st, const std::map<std::string, std::string>& extra);
/// Writes best.safetensors: weights only, loadable by timm.
void save_best(const TrainOptions& o, const vit::nn::VisionTransformer<float>& model,
               const std::vector<std::string>& class_names,
               const std::map<std::string, std::string>& extra);

std::string last_checkpoint_path(const TrainOptions& o);

}  // namespace vitcli
