// Progress on the console. On a terminal (stderr a TTY, rank 0) one status
// line at the bottom is redrawn in place (step/total, epoch, loss, accuracy,
// img/s, ETA), from before the first step on; log lines clear it, print, and
// it comes back under them, so neither garbles the other. Not on a terminal
// (a log file, CI) nothing is redrawn: plain lines only. Step lines (at each
// metrics row) and epoch summaries go to stdout either way.
#pragma once

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "job.hpp"
#include "metrics.hpp"

namespace vitcli {

class Progress {
 public:
  Progress(int64_t total_steps, int64_t first_step, int64_t epochs)
      : total_(total_steps), first_(first_step), epochs_(epochs),
        tty_(::isatty(2) == 1 && main_rank()), t0_(Clock::now()) {}

  /// Shows the bar before the first step (which may take a while: data
  /// loader start, first batches, caches).
  void start(int64_t epoch) {
    step_ = first_, epoch_ = epoch;
    status_ = "first step...";
    draw(true);
  }
  ~Progress() { clear(); }  // an error's line must not land on the bar
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// What the run does besides stepping (evaluating, saving), on the bar.
  void status(const std::string& what) {
    status_ = what;
    draw(true);
  }
  /// After each step: what the bar shows (redrawn at most 5 times a second).
  void update(int64_t step, int64_t epoch, double loss, double acc, double img_s) {
    step_ = step, epoch_ = epoch;
    char buf[160];
    std::snprintf(buf, sizeof buf, "loss %s  acc %s  %.0f img/s  ETA %s", number(loss, "%.4f").c_str(),
                  number(100 * acc, "%.1f%%").c_str(), img_s, eta(step).c_str());
    status_ = buf;
    draw(step == total_);
  }
  /// A step line (each metrics row).
  void log_line(const MetricsRow& r) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "step %lld/%lld  epoch %lld/%lld  lr %.3e  loss %.4f  train top-1 %5.1f%%  %.0f img/s  "
                  "data wait %.1f%%  ETA %s",
                  static_cast<long long>(r.step), static_cast<long long>(total_),
                  static_cast<long long>(r.epoch), static_cast<long long>(epochs_), r.lr, r.loss,
                  std::isfinite(r.train_top1) ? 100 * r.train_top1 : 0.0, r.img_per_s,
                  100 * r.data_wait, eta(r.step).c_str());
    print(buf);
  }
  /// The epoch summary.
  void epoch_line(const MetricsRow& r) {
    char buf[384];
    int n = std::snprintf(buf, sizeof buf,
                          "epoch %lld/%lld  step %lld  train loss %.4f  train top-1 %5.2f%%  test loss "
                          "%.4f  test top-1 %5.2f%%  top-5 %5.2f%%",
                          static_cast<long long>(r.epoch), static_cast<long long>(epochs_),
                          static_cast<long long>(r.step), r.loss, 100 * r.train_top1, r.test_loss,
                          100 * r.test_top1, 100 * r.test_top5);
    if (std::isfinite(r.ema_test_top1))
      n += std::snprintf(buf + n, sizeof buf - n, "  EMA test loss %.4f top-1 %5.2f%%", r.ema_test_loss,
                         100 * r.ema_test_top1);
    std::snprintf(buf + n, sizeof buf - n, "  (%.0f s)", r.time_s);
    print(buf);
  }
  /// Any other line of the run's log (stdout), printed above the bar.
  void print(const std::string& line) {
    if (!main_rank()) return;
    clear();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    draw(true);
  }
  /// Takes the bar off the terminal (the run's last lines follow).
  void finish() {
    clear();
    tty_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;

  static std::string number(double v, const char* fmt) {
    if (!std::isfinite(v)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
  }
  std::string eta(int64_t step) const {
    const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
    const int64_t done = step - first_;
    if (done <= 0) return "?";
    const int64_t s = static_cast<int64_t>(el / done * (total_ - step));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    return buf;
  }
  static int terminal_width() {
    winsize w{};
    return ::ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_col > 20 ? w.ws_col : 100;
  }
  void clear() {
    if (!tty_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
  void draw(bool now) {
    if (!tty_) return;
    const auto t = Clock::now();
    if (!now && t - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = t;
    const double frac = total_ > 0 ? std::clamp(double(step_) / total_, 0.0, 1.0) : 1.0;
    const int width = 20, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    char buf[512];
    std::snprintf(buf, sizeof buf, "[%s] %lld/%lld %5.1f%%  epoch %lld/%lld  %s", bar.c_str(),
                  static_cast<long long>(step_), static_cast<long long>(total_), 100 * frac,
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_), status_.c_str());
    std::string line = buf;
    // A line wider than the terminal wraps, and \r would then redraw only its tail.
    line.resize(std::min<size_t>(line.size(), static_cast<size_t>(terminal_width() - 1)));
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  int64_t total_, first_, epochs_;
  bool tty_;
  bool drawn_ = false;
  int64_t step_ = 0, epoch_ = 1;
  std::string status_;
  Clock::time_point t0_, last_draw_{};
};

}  // namespace vitcli
