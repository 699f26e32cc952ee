// Progress on the console: on a terminal a one-line bar on stderr redrawn in
// place (loss, accuracy, img/s, ETA); otherwise (a log file, CI) nothing is
// redrawn and a plain line goes to stdout at each metrics row. Epoch summaries
// go to stdout either way.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "job.hpp"
#include "metrics.hpp"

namespace vitcli {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t first_step)
      : total_(total_steps), first_(first_step), tty_(::isatty(2) == 1 && main_rank()),
        t0_(std::chrono::steady_clock::now()) {}

  void update(int64_t step, int64_t epoch, int64_t epochs, double loss, double acc, double img_s) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (step != total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    const double frac = total_ > 0 ? double(step) / total_ : 1;
    const int width = 24, filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %5.1f%% loss %.4f acc %5.1f%% %6.0f img/s ETA %s",
                 static_cast<long long>(epoch + 1), static_cast<long long>(epochs), bar.c_str(),
                 100 * frac, loss, std::isfinite(acc) ? 100 * acc : 0.0, img_s, eta(step).c_str());
    std::fflush(stderr);
  }
  void log_line(const MetricsRow& r) {
    if (tty_) return;
    std::printf("step %lld  epoch %lld  lr %.3e  loss %.4f  train top-1 %5.1f%%  %.0f img/s  data wait %.1f%%  ETA %s\n",
                static_cast<long long>(r.step), static_cast<long long>(r.epoch), r.lr, r.loss,
                std::isfinite(r.train_top1) ? 100 * r.train_top1 : 0.0, r.img_per_s, 100 * r.data_wait,
                eta(r.step).c_str());
    std::fflush(stdout);
  }
  void epoch_line(const MetricsRow& r, int64_t epochs) {
    if (tty_) std::fprintf(stderr, "\r\033[K");
    std::printf("epoch %lld/%lld  step %lld  train loss %.4f  train top-1 %5.2f%%  test loss %.4f  "
                "test top-1 %5.2f%%  top-5 %5.2f%%  (%.0f s)\n",
                static_cast<long long>(r.epoch + 1), static_cast<long long>(epochs),
                static_cast<long long>(r.step), r.loss, 100 * r.train_top1, r.test_loss,
                100 * r.test_top1, 100 * r.test_top5, r.time_s);
    std::fflush(stdout);
  }

 private:
  std::string eta(int64_t step) const {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const int64_t done = step - first_;
    if (done <= 0) return "?";
    const int64_t s = static_cast<int64_t>(el / done * (total_ - step));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    return buf;
  }
  int64_t total_, first_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_draw_{};
};

}  // namespace vitcli
