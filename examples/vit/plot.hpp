// curves.png: the training curves of a run, drawn without a plotting library
// on raster.hpp's canvas. Left: loss over optimizer steps (train loss at each
// metrics row, test loss at each epoch); right: accuracy in % (train batch
// top-1, test top-1 and top-5, and the EMA's test top-1 with --model-ema).
// Made to be read at a glance: the legend above the plot, never on the data,
// with each curve's last value; axis titles; ticks at round 1-2-5 values
// (steps in thousands as "20k"), none cut at the edge; the accuracy axis
// fitted to the data rather than 0-100; test curves as lines with markers.
#pragma once

#include <vit/vit.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "metrics.hpp"
#include "raster.hpp"

namespace vitcli {

struct Series {
  std::string label;
  raster::Rgb color;
  std::vector<std::pair<double, double>> points;  // (step, value)
  bool markers = false;                           // test metrics: one point per epoch
};

namespace plot_detail {

/// The 1-2-5 step that cuts `range` into at most `max_ticks` intervals.
inline double nice_step(double range, int max_ticks) {
  if (!(range > 0)) return 1;
  const double raw = range / max_ticks, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * (1 - 1e-9)) return m * mag;
  return 10 * mag;
}

/// A tick value as a label: as many decimals as the step needs, steps of
/// thousands as "20k" / "2.5k".
inline std::string tick_label(double v, double step, bool thousands) {
  char buf[32];
  if (std::abs(v) < step * 1e-6) return "0";
  const bool k = thousands && step >= 1000;
  if (k) v /= 1000, step /= 1000;
  int dec = 0;  // the fewest decimals that write every multiple of the step exactly
  while (dec < 6 && std::abs(step * std::pow(10.0, dec) - std::round(step * std::pow(10.0, dec))) > 1e-6)
    ++dec;
  std::snprintf(buf, sizeof buf, k ? "%.*fk" : "%.*f", dec, v);
  return buf;
}

/// An axis range [lo, hi] covering the data, widened to whole steps.
struct Axis {
  double lo, hi, step;
};
inline Axis fit_axis(double lo, double hi, int max_ticks, double floor_at, double ceil_at) {
  if (!(hi > lo)) lo -= 0.5, hi += 0.5;
  const double pad = 0.04 * (hi - lo);
  lo = std::max(floor_at, lo - pad), hi = std::min(ceil_at, hi + pad);
  const double step = nice_step(hi - lo, max_ticks);
  return {std::max(floor_at, std::floor(lo / step) * step), std::min(ceil_at, std::ceil(hi / step) * step),
          step};
}

inline void thick_line(raster::Raster& r, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                       raster::Rgb c, int width) {
  const int64_t dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int64_t err = dx + dy;
  for (;;) {
    r.fill(x0 - width / 2, y0 - width / 2, x0 - width / 2 + width, y0 - width / 2 + width, c);
    if (x0 == x1 && y0 == y1) break;
    const int64_t e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

inline void disc(raster::Raster& r, int64_t cx, int64_t cy, int64_t radius, raster::Rgb c) {
  for (int64_t y = -radius; y <= radius; ++y)
    for (int64_t x = -radius; x <= radius; ++x)
      if (x * x + y * y <= radius * radius + radius) r.pixel(cx + x, cy + y, c);
}

inline std::string value_text(double v, bool percent) {
  char buf[32];
  std::snprintf(buf, sizeof buf, percent ? "%.1f%%" : "%.3f", v);
  return buf;
}

/// One panel in [x0, x0 + w) × [y0, y0 + h): title, legend (a row of swatches
/// and labels with each curve's last value, wrapped), frame, grid, ticks, axis
/// titles and the series.
inline void panel(raster::Raster& r, int64_t x0, int64_t y0, int64_t w, int64_t h,
                  const std::string& title, const std::string& y_title, bool percent,
                  const std::vector<Series>& series, double xmax) {
  using namespace raster;
  const Rgb grid{232, 232, 232};
  const int scale = 2, glyph = kGlyphHeight * scale;
  r.text(x0 + 16, y0 + 10, title, kBlack, scale);
  // Legend above the plot.
  int64_t lx = x0 + 16, ly = y0 + 10 + glyph + 14;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    for (const auto& [x, v] : s.points) lo = std::min(lo, v), hi = std::max(hi, v);
    const std::string label = s.label + " " + value_text(s.points.back().second, percent);
    const int64_t entry_w = 30 + Raster::text_width(label, scale) + 24;
    if (lx + entry_w > x0 + w - 10) lx = x0 + 16, ly += glyph + 10;
    r.fill(lx, ly + glyph / 2 - 1, lx + 24, ly + glyph / 2 + 2, s.color);
    if (s.markers) disc(r, lx + 12, ly + glyph / 2, 4, s.color);
    r.text(lx + 30, ly, label, kBlack, scale);
    lx += entry_w;
  }
  const int64_t legend_bottom = ly + glyph + 10;
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  const Axis ya = fit_axis(lo, hi, 6, percent ? 0.0 : -INFINITY, percent ? 100.0 : INFINITY);
  const double xstep = nice_step(std::max(xmax, 1.0), 6);
  const bool thousands = xmax >= 10000;
  // Plot area: room on the left for the y labels and title, below for the x ones.
  int64_t ylabel_w = 0;
  for (double v = ya.lo; v <= ya.hi + ya.step * 1e-6; v += ya.step)
    ylabel_w = std::max(ylabel_w, Raster::text_width(tick_label(v, ya.step, false), scale));
  const int64_t px0 = x0 + 16 + glyph + 10 + ylabel_w + 8, py0 = legend_bottom + 8;
  const int64_t px1 = x0 + w - 40, py1 = y0 + h - (8 + glyph + 12 + glyph + 12);
  const double xhi = std::max(xmax, 1.0);
  auto X = [&](double s) { return px0 + std::lround(s / xhi * static_cast<double>(px1 - px0)); };
  auto Y = [&](double v) {
    const double t = std::clamp((v - ya.lo) / (ya.hi - ya.lo), 0.0, 1.0);
    return py1 - std::lround(t * static_cast<double>(py1 - py0));
  };
  for (double v = ya.lo; v <= ya.hi + ya.step * 1e-6; v += ya.step) {
    const int64_t y = Y(v);
    r.fill(px0, y, px1, y + 1, grid);
    const std::string s = tick_label(v, ya.step, false);
    r.text(px0 - 8 - Raster::text_width(s, scale), y - glyph / 2, s, kBlack, scale);
  }
  for (double s = 0; s <= xhi + xstep * 1e-6; s += xstep) {
    const int64_t x = X(s);
    r.fill(x, py0, x + 1, py1, grid);
    r.text_centred(x, py1 + 8, tick_label(s, xstep, thousands), kBlack, scale);
  }
  r.fill(px0, py0, px0 + 1, py1 + 1, kBlack);  // axes
  r.fill(px0, py1, px1 + 1, py1 + 1, kBlack);
  r.text_centred((px0 + px1) / 2, py1 + 8 + glyph + 12, "step", kBlack, scale);
  r.text_up(x0 + 16, (py0 + py1) / 2 + Raster::text_width(y_title, scale) / 2, y_title, kBlack, scale);
  // The noisy train curve (the first) underneath; then the others last to
  // first, so the model's test curve is on top of the EMA's when they agree.
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k == 0 ? 0 : series.size() - k];
    for (size_t i = 1; i < s.points.size(); ++i)
      thick_line(r, X(s.points[i - 1].first), Y(s.points[i - 1].second), X(s.points[i].first),
                 Y(s.points[i].second), s.color, 2);
    if (s.markers)
      for (const auto& [x, v] : s.points) disc(r, X(x), Y(v), 4, s.color);
  }
}

}  // namespace plot_detail

/// The run's curves from its metric rows, as an image.
inline vit::data::Image curves_image(const std::vector<MetricsRow>& rows) {
  const raster::Rgb blue{31, 119, 180}, red{214, 39, 40}, green{44, 160, 44}, orange{255, 127, 14};
  Series train_loss{"train loss", blue, {}, false}, test_loss{"test loss", red, {}, true},
      ema_loss{"EMA test loss", orange, {}, true};
  Series train_acc{"train top-1", blue, {}, false}, test1{"test top-1", red, {}, true},
      test5{"test top-5", green, {}, true}, ema1{"EMA test top-1", orange, {}, true};
  double xmax = 1;
  for (const auto& r : rows) {
    const double s = static_cast<double>(r.step);
    xmax = std::max(xmax, s);
    auto put = [s](Series& series, double v, double k) {
      if (std::isfinite(v)) series.points.emplace_back(s, k * v);
    };
    if (r.kind == "step") {
      put(train_loss, r.loss, 1), put(train_acc, r.train_top1, 100);
    } else {
      put(test_loss, r.test_loss, 1), put(ema_loss, r.ema_test_loss, 1);
      put(test1, r.test_top1, 100), put(test5, r.test_top5, 100), put(ema1, r.ema_test_top1, 100);
    }
  }
  raster::Raster r(1400, 560);
  plot_detail::panel(r, 0, 0, 700, 560, "Loss", "loss (cross-entropy)", false,
                     {train_loss, test_loss, ema_loss}, xmax);
  plot_detail::panel(r, 700, 0, 700, 560, "Accuracy", "accuracy (%)", true,
                     {train_acc, test1, test5, ema1}, xmax);
  return r.image();
}

/// Renders the run's curves into a PNG (atomically).
inline void write_curves_png(const std::string& path, const std::vector<MetricsRow>& rows) {
  vit::data::write_png(path, curves_image(rows));
}

}  // namespace vitcli
