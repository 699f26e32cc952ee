// curves.png: the training curves of a run, drawn without a plotting library.
// Left panel: loss over optimizer steps (train loss at each log step, test
// loss at each epoch). Right panel: accuracy over steps (train batch top-1,
// test top-1 and top-5 at each epoch). Lines by Bresenham, text by
// stb_easy_font's quads, written as PNG through the library's encoder.
#pragma once

#include <vit/vit.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "metrics.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace vitcli {

using Rgb = std::array<uint8_t, 3>;

class Canvas {
 public:
  Canvas(int64_t w, int64_t h) : img_(3, h, w) { std::fill(img_.data.begin(), img_.data.end(), 255); }
  void pixel(int64_t x, int64_t y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    for (int k = 0; k < 3; ++k) img_.at(k, y, x) = c[k];
  }
  void rect(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c) {
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = x0; x < x1; ++x) pixel(x, y, c);
  }
  void line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c, int width = 1) {
    const int64_t dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int64_t err = dx + dy;
    for (;;) {
      rect(x0, y0, x0 + width, y0 + width, c);
      if (x0 == x1 && y0 == y1) break;
      const int64_t e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  /// Text at (x, y) top-left, stb_easy_font's 1-pixel strokes scaled by `scale`.
  void text(double x, double y, const std::string& s, Rgb c, int scale = 1) {
    static thread_local std::vector<char> buf(64 * 1024);
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf.data(),
                                          static_cast<int>(buf.size()));
    const float* v = reinterpret_cast<const float*>(buf.data());
    for (int q = 0; q < quads; ++q) {
      const float* a = v + q * 16;  // 4 vertices of 16 bytes (x, y, z, rgba)
      const float* b = a + 8;       // the opposite corner
      rect(static_cast<int64_t>(x + a[0] * scale), static_cast<int64_t>(y + a[1] * scale),
           static_cast<int64_t>(x + b[0] * scale), static_cast<int64_t>(y + b[1] * scale), c);
    }
  }
  static int text_width(const std::string& s, int scale = 1) {
    std::string copy = s;
    return stb_easy_font_width(copy.data()) * scale;
  }
  const vit::data::Image& image() const { return img_; }

 private:
  vit::data::Image img_;
};

struct Series {
  std::string label;
  Rgb color;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

namespace detail {
inline std::string tick_label(double v) {
  char buf[32];
  if (std::abs(v) >= 1000) std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (std::abs(v) >= 10) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.2g", v);
  return buf;
}

/// One panel at (x0,y0) of size w×h: frame, ticks, series, legend.
inline void panel(Canvas& cv, int64_t x0, int64_t y0, int64_t w, int64_t h, const std::string& title,
                  const std::vector<Series>& series, double ylo, double yhi, double xmax) {
  const int64_t L = 60, R = 15, T = 30, B = 35;  // margins for labels
  const int64_t px0 = x0 + L, py0 = y0 + T, pw = w - L - R, ph = h - T - B;
  const Rgb black{0, 0, 0}, grid{225, 225, 225};
  cv.text(static_cast<double>(x0 + L), static_cast<double>(y0 + 8), title, black, 2);
  if (!(yhi > ylo)) yhi = ylo + 1;
  if (!(xmax > 0)) xmax = 1;
  auto X = [&](double s) { return px0 + static_cast<int64_t>(std::lround(s / xmax * (pw - 1))); };
  auto Y = [&](double v) {
    const double t = std::clamp((v - ylo) / (yhi - ylo), 0.0, 1.0);
    return py0 + ph - 1 - static_cast<int64_t>(std::lround(t * (ph - 1)));
  };
  for (int i = 0; i <= 4; ++i) {
    const double v = ylo + (yhi - ylo) * i / 4, s = xmax * i / 4;
    cv.line(px0, Y(v), px0 + pw - 1, Y(v), grid);
    cv.line(X(s), py0, X(s), py0 + ph - 1, grid);
    const std::string yl = tick_label(v), xl = tick_label(std::round(s));
    cv.text(static_cast<double>(px0 - 8 - Canvas::text_width(yl, 2)), static_cast<double>(Y(v) - 6), yl, black, 2);
    cv.text(static_cast<double>(X(s) - Canvas::text_width(xl, 2) / 2), static_cast<double>(py0 + ph + 8), xl, black, 2);
  }
  cv.line(px0, py0, px0, py0 + ph - 1, black);
  cv.line(px0, py0 + ph - 1, px0 + pw - 1, py0 + ph - 1, black);
  int64_t legend_y = py0 + 6;
  for (const auto& s : series) {
    for (size_t i = 1; i < s.points.size(); ++i)
      cv.line(X(s.points[i - 1].first), Y(s.points[i - 1].second), X(s.points[i].first),
              Y(s.points[i].second), s.color, 2);
    if (s.points.size() == 1) cv.rect(X(s.points[0].first) - 2, Y(s.points[0].second) - 2,
                                      X(s.points[0].first) + 3, Y(s.points[0].second) + 3, s.color);
    if (s.points.empty()) continue;
    cv.rect(px0 + pw - 150, legend_y + 4, px0 + pw - 130, legend_y + 7, s.color);
    cv.text(static_cast<double>(px0 + pw - 124), static_cast<double>(legend_y), s.label, black, 2);
    legend_y += 18;
  }
}
}  // namespace detail

/// Renders the run's curves from its metric rows into a PNG (atomically).
inline void write_curves_png(const std::string& path, const std::vector<MetricsRow>& rows) {
  Series train_loss{"train loss", {31, 119, 180}, {}}, test_loss{"test loss", {214, 39, 40}, {}};
  Series train_acc{"train top-1", {31, 119, 180}, {}}, test1{"test top-1", {214, 39, 40}, {}},
      test5{"test top-5", {44, 160, 44}, {}};
  double xmax = 1, lmax = 0;
  for (const auto& r : rows) {
    const double s = static_cast<double>(r.step);
    xmax = std::max(xmax, s);
    if (r.kind == "step") {
      if (std::isfinite(r.loss)) train_loss.points.emplace_back(s, r.loss), lmax = std::max(lmax, r.loss);
      if (std::isfinite(r.train_top1)) train_acc.points.emplace_back(s, 100 * r.train_top1);
    } else {
      if (std::isfinite(r.test_loss)) test_loss.points.emplace_back(s, r.test_loss), lmax = std::max(lmax, r.test_loss);
      if (std::isfinite(r.test_top1)) test1.points.emplace_back(s, 100 * r.test_top1);
      if (std::isfinite(r.test_top5)) test5.points.emplace_back(s, 100 * r.test_top5);
    }
  }
  Canvas cv(1400, 500);
  detail::panel(cv, 0, 0, 700, 500, "loss vs step", {train_loss, test_loss}, 0, lmax * 1.05, xmax);
  detail::panel(cv, 700, 0, 700, 500, "accuracy (%) vs step", {train_acc, test1, test5}, 0, 100, xmax);
  vit::data::write_png(path, cv.image());
}

}  // namespace vitcli
