// metrics.jsonl and metrics.csv of a run: one row per log step ("step") and per
// epoch ("epoch"); epochs are numbered from 1, as the log lines say. Rows are appended and flushed as they come, so a killed run
// keeps what it logged; a resumed run first drops the rows logged after its
// checkpoint, so the files read as one uninterrupted run.
#pragma once

#include <vit/vit.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace vitcli {

/// One row; fields that do not apply stay NaN (written as null / empty).
struct MetricsRow {
  std::string kind;  // "step" or "epoch"
  int64_t step = 0, epoch = 0;  // epoch: 1 for the first
  double time_s = NAN, lr = NAN, loss = NAN, train_top1 = NAN, test_loss = NAN, test_top1 = NAN,
         test_top5 = NAN, img_per_s = NAN, data_wait = NAN;
  int64_t nonfinite = 0;
  double ema_test_loss = NAN, ema_test_top1 = NAN, ema_test_top5 = NAN;  // --model-ema
};

class MetricsLog {
 public:
  /// Opens the two files in run_dir. keep_until_step >= 0 (a resume) keeps only
  /// earlier rows with step <= keep_until_step; < 0 starts empty files.
  MetricsLog(const std::string& run_dir, int64_t keep_until_step)
      : jsonl_path_(run_dir + "/metrics.jsonl"), csv_path_(run_dir + "/metrics.csv") {
    std::string kept_jsonl, kept_csv = header() + "\n";
    if (keep_until_step >= 0) {
      std::ifstream in(jsonl_path_);
      std::string line;
      while (std::getline(in, line)) {
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
          break;  // a line cut by the kill: everything after it is gone too
        }
        MetricsRow r = from_json(j);
        if (r.step > keep_until_step) break;
        rows_.push_back(r);
        kept_jsonl += line + "\n";
        kept_csv += csv_line(r) + "\n";
      }
    }
    vit::io::write_file_atomic(jsonl_path_, kept_jsonl);
    vit::io::write_file_atomic(csv_path_, kept_csv);
  }

  void append(const MetricsRow& r) {
    rows_.push_back(r);
    append_line(jsonl_path_, to_json(r).dump());
    append_line(csv_path_, csv_line(r));
  }
  const std::vector<MetricsRow>& rows() const { return rows_; }

 private:
  static std::string header() {
    return "kind,step,epoch,time_s,lr,loss,train_top1,test_loss,test_top1,test_top5,img_per_s,"
           "data_wait,nonfinite,ema_test_loss,ema_test_top1,ema_test_top5";
  }
  static std::string num(double v) {
    if (!std::isfinite(v)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
  }
  static std::string csv_line(const MetricsRow& r) {
    std::ostringstream os;
    os << r.kind << ',' << r.step << ',' << r.epoch << ',' << num(r.time_s) << ',' << num(r.lr)
       << ',' << num(r.loss) << ',' << num(r.train_top1) << ',' << num(r.test_loss) << ','
       << num(r.test_top1) << ',' << num(r.test_top5) << ',' << num(r.img_per_s) << ','
       << num(r.data_wait) << ',' << r.nonfinite << ',' << num(r.ema_test_loss) << ','
       << num(r.ema_test_top1) << ',' << num(r.ema_test_top5);
    return os.str();
  }
  static nlohmann::json to_json(const MetricsRow& r) {
    nlohmann::json j{{"kind", r.kind}, {"step", r.step}, {"epoch", r.epoch}};
    auto put = [&](const char* k, double v) {
      if (std::isfinite(v)) j[k] = v;
    };
    put("time_s", r.time_s), put("lr", r.lr), put("loss", r.loss), put("train_top1", r.train_top1);
    put("test_loss", r.test_loss), put("test_top1", r.test_top1), put("test_top5", r.test_top5);
    put("img_per_s", r.img_per_s), put("data_wait", r.data_wait);
    j["nonfinite"] = r.nonfinite;
    put("ema_test_loss", r.ema_test_loss), put("ema_test_top1", r.ema_test_top1);
    put("ema_test_top5", r.ema_test_top5);
    return j;
  }
  static MetricsRow from_json(const nlohmann::json& j) {
    MetricsRow r;
    auto get = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN; };
    r.kind = j.value("kind", "");
    r.step = j.value("step", int64_t{0});
    r.epoch = j.value("epoch", int64_t{0});
    r.time_s = get("time_s"), r.lr = get("lr"), r.loss = get("loss"), r.train_top1 = get("train_top1");
    r.test_loss = get("test_loss"), r.test_top1 = get("test_top1"), r.test_top5 = get("test_top5");
    r.img_per_s = get("img_per_s"), r.data_wait = get("data_wait");
    r.nonfinite = j.value("nonfinite", int64_t{0});
    r.ema_test_loss = get("ema_test_loss"), r.ema_test_top1 = get("ema_test_top1");
    r.ema_test_top5 = get("ema_test_top5");
    return r;
  }
  static void append_line(const std::string& path, const std::string& line) {
    std::ofstream out(path, std::ios::app);
    out << line << '\n';
    out.flush();
    VIT_CHECK(out.good(), "cannot write '", path, "': ", std::strerror(errno));
  }

  std::string jsonl_path_, csv_path_;
  std::vector<MetricsRow> rows_;
};

}  // namespace vitcli
