// Where a training run stands: everything a bit-exact resume needs besides
// tensors. It travels in last.safetensors as one __metadata__ entry,
// "vit.train_state", a JSON object; the library's checkpoint only carries the
// string, the trainer owns its meaning. Header-only so the checkpoint tests
// can check the round trip and the refusals.
#pragma once

#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <vit/vit.hpp>

namespace vitcli {

/// Train loss and top-1 summed over the steps that updated the weights since
/// some point (the last metrics row, the start of the epoch).
struct StepSums {
  double loss_sum = 0;  // sum of per-image losses
  int64_t images = 0;
  int64_t correct = 0;
};

struct TrainState {
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // data cursor: the epoch the next batch comes from
  int64_t batch_in_epoch = 0;  // data cursor: index of the next batch in that epoch
  uint64_t dropout_seed = 0;   // the model's dropout/drop-path generator
  uint64_t dropout_offset = 0;
  double best_top1 = -1;        // best test top-1 so far (-1: none yet)
  int64_t nonfinite_steps = 0;  // updates skipped for a NaN/Inf loss or gradient
  int64_t nonfinite_run = 0;    // of which consecutive at the end
  std::string optimizer;        // "adamw", "adam", "sgd": must match on resume
  int64_t world_size = 1;       // ranks of the job that wrote it (data parallel)
  // The current epoch's running sums, so that a run resumed mid-epoch reports
  // the same epoch figures as one never interrupted.
  StepSums epoch_sums;
};

inline const char* kTrainStateKey = "vit.train_state";

inline nlohmann::json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"epoch", s.epoch},
          {"batch_in_epoch", s.batch_in_epoch},
          // Generator state as strings: JSON readers (and Python's) lose u64 precision.
          {"dropout_seed", std::to_string(s.dropout_seed)},
          {"dropout_offset", std::to_string(s.dropout_offset)},
          {"best_top1", s.best_top1},
          {"nonfinite_steps", s.nonfinite_steps},
          {"nonfinite_run", s.nonfinite_run},
          {"optimizer", s.optimizer},
          {"world_size", s.world_size},
          {"epoch_loss_sum", s.epoch_sums.loss_sum},
          {"epoch_images", s.epoch_sums.images},
          {"epoch_correct", s.epoch_sums.correct}};
}

/// The state held in `j`; every missing, mistyped or inconsistent field is a
/// vit::Error naming `source`.
inline TrainState state_from_json(const nlohmann::json& j, const std::string& source) {
  using vit::io::detail::json_field;
  TrainState s;
  s.step = json_field<int64_t>(j, "step", source);
  s.epoch = json_field<int64_t>(j, "epoch", source);
  s.batch_in_epoch = json_field<int64_t>(j, "batch_in_epoch", source);
  auto u64 = [&](const char* key) {
    const std::string v = json_field<std::string>(j, key, source);
    size_t used = 0;
    uint64_t out = 0;
    try {
      out = std::stoull(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    // stoull would also take a sign or leading blanks.
    VIT_CHECK(!v.empty() && std::isdigit(static_cast<unsigned char>(v[0])) && used == v.size(),
              source, ": field '", key, "' is not an unsigned integer: \"", v, "\"");
    return out;
  };
  s.dropout_seed = u64("dropout_seed");
  s.dropout_offset = u64("dropout_offset");
  s.best_top1 = json_field<double>(j, "best_top1", source);
  s.nonfinite_steps = json_field<int64_t>(j, "nonfinite_steps", source);
  s.nonfinite_run = json_field<int64_t>(j, "nonfinite_run", source);
  s.optimizer = json_field<std::string>(j, "optimizer", source);
  // Absent before data parallel: such runs had one rank.
  if (j.contains("world_size")) s.world_size = json_field<int64_t>(j, "world_size", source);
  VIT_CHECK(s.world_size >= 1, source, ": world_size must be at least 1");
  // Absent in checkpoints written before they existed: the epoch figures then
  // cover only the steps after the resume.
  if (j.contains("epoch_loss_sum")) {
    s.epoch_sums.loss_sum = json_field<double>(j, "epoch_loss_sum", source);
    s.epoch_sums.images = json_field<int64_t>(j, "epoch_images", source);
    s.epoch_sums.correct = json_field<int64_t>(j, "epoch_correct", source);
  }
  VIT_CHECK(s.step >= 0 && s.epoch >= 0 && s.batch_in_epoch >= 0, source,
            ": train state has a negative step, epoch or cursor");
  const StepSums& e = s.epoch_sums;
  VIT_CHECK(e.images >= 0 && e.correct >= 0 && e.correct <= e.images, source,
            ": train state has inconsistent epoch counts");
  return s;
}

/// The __metadata__ entry that carries `s` in a checkpoint.
inline std::map<std::string, std::string> state_metadata(const TrainState& s) {
  return {{kTrainStateKey, state_to_json(s).dump()}};
}

/// The state a checkpoint carries, or nothing for weights-only files; errors
/// name the file and the key.
template <class T>
std::optional<TrainState> state_from_checkpoint(const vit::io::Checkpoint<T>& ck) {
  const auto it = ck.metadata.find(kTrainStateKey);
  if (it == ck.metadata.end()) return std::nullopt;
  const std::string src = ck.path + " (" + kTrainStateKey + ")";
  return state_from_json(vit::io::detail::parse_json(it->second, src), src);
}

}  // namespace vitcli
