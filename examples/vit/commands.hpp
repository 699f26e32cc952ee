// The subcommands other than train: their options and entry points.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace vitcli {

/// A number check with a readable message. CLI11's own ones let "nan"
/// through (every comparison with NaN is false) and print their range as
/// "0 to 1.797...e308" written out in full.
inline CLI::Validator number_check(const std::string& name, std::function<bool(double)> ok,
                                   const std::string& must_be) {
  return CLI::Validator(
      [ok = std::move(ok), must_be](std::string& s) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(s, &used);
          if (used == s.size() && std::isfinite(v) && ok(v)) return {};
        } catch (const std::exception&) {
        }
        return "must be " + must_be + ", got '" + s + "'";
      },
      name);
}
inline CLI::Validator positive_number() {
  return number_check("POSITIVE", [](double v) { return v > 0; }, "a positive number");
}
inline CLI::Validator non_negative_number() {
  return number_check("NONNEGATIVE", [](double v) { return v >= 0; }, "a number >= 0");
}
/// A finite number in [lo, hi].
inline CLI::Validator number_in(double lo, double hi) {
  std::ostringstream range;
  range << "[" << lo << ", " << hi << "]";  // shortest form: [0, 0.999]
  return number_check("NUMBER in " + range.str(), [lo, hi](double v) { return v >= lo && v <= hi; },
                      "a number in " + range.str());
}

struct EvalOptions {
  std::string weights, dataset = "fashion-mnist", data, model, dump_logits;
  int64_t batch = 256;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32, tf32 or bf16 (the model's bf16 twin)
  double val_ratio = 0.2;  // folder data sets: must match the training run's
  uint64_t seed = 0;       // folder data sets: the split seed of the training run
  double crop_pct = 0;     // folder data sets; 0: the checkpoint's, else 0.875
  std::string out = ".";   // where confusion.csv and confusion.png go
};
void add_eval_options(CLI::App& cmd, EvalOptions& o);
int run_eval(const EvalOptions& o);

struct PredictOptions {
  std::string weights, model, attention_map;
  std::vector<std::string> images;
  int64_t top = 5;
  int64_t attention_layer = -1;  // -1: rollout over every layer
  int64_t attention_head = -1;   // -1: the mean over the layer's heads
  int64_t batch = 32;            // images per forward
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32, tf32 or bf16 (the model's bf16 twin)
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
