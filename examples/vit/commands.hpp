// The subcommands other than train: their options and entry points.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace vitcli {

struct EvalOptions {
  std::string weights, dataset = "fashion-mnist", data, model, dump_logits;
  int64_t batch = 256;
  int threads = 0;
  double val_ratio = 0.2;  // folder data sets: must match the training run's
  uint64_t seed = 0;       // folder data sets: the split seed of the training run
};
void add_eval_options(CLI::App& cmd, EvalOptions& o);
int run_eval(const EvalOptions& o);

struct PredictOptions {
  std::string weights, model, attention_map;
  std::vector<std::string> images;
  int64_t top = 5;
  int threads = 0;
};
void add_predict_options(CLI::App& cmd, PredictOptions& o);
int run_predict(const PredictOptions& o);

struct InfoOptions {
  std::string model, weights;
  int64_t batch = 128;
  int64_t classes = 0;
};
void add_info_options(CLI::App& cmd, InfoOptions& o);
int run_info(const InfoOptions& o);

}  // namespace vitcli
