// The confusion matrix of an evaluation and what is read from it: per-class
// accuracy (the share of a class's images predicted as it, i.e. recall) and
// precision, the table `vit eval` prints, confusion.csv (rows: true class,
// columns: predicted, a header of class names) and confusion.png (a heat map
// coloured by each row's share, counts in the cells where they fit, class
// names on both axes, a colour bar). Counts are K×K, row-major, row = true.
#pragma once

#include <vit/vit.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "raster.hpp"

namespace vitcli {

struct ClassStats {
  int64_t images = 0;     // of this true class
  int64_t correct = 0;    // of them predicted as it
  int64_t predicted = 0;  // images predicted as this class
  double accuracy() const { return images ? static_cast<double>(correct) / images : 0.0; }
  double precision() const { return predicted ? static_cast<double>(correct) / predicted : 0.0; }
};

namespace detail {
inline int64_t checked_classes(const std::vector<std::string>& names, const std::vector<int64_t>& counts,
                               const char* who) {
  const auto K = static_cast<int64_t>(names.size());
  VIT_CHECK(K >= 1 && static_cast<int64_t>(counts.size()) == K * K, who, ": ", counts.size(),
            " counts for ", K, " classes (need ", K, "x", K, ")");
  for (int64_t c : counts) VIT_CHECK(c >= 0, who, ": negative count ", c);
  return K;
}

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

inline std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v);
  return buf;
}
}  // namespace detail

/// Per-class figures from a K×K confusion matrix (row = true class).
inline std::vector<ClassStats> per_class_stats(const std::vector<int64_t>& counts, int64_t K) {
  VIT_CHECK(K >= 1 && static_cast<int64_t>(counts.size()) == K * K, "per_class_stats: ",
            counts.size(), " counts for ", K, " classes");
  std::vector<ClassStats> s(static_cast<size_t>(K));
  for (int64_t t = 0; t < K; ++t)
    for (int64_t p = 0; p < K; ++p) {
      const int64_t n = counts[t * K + p];
      s[t].images += n, s[p].predicted += n;
      if (t == p) s[t].correct += n;
    }
  return s;
}

/// The mean of the per-class accuracies over the classes that have images
/// (balanced accuracy).
inline double mean_class_accuracy(const std::vector<ClassStats>& s) {
  double sum = 0;
  int64_t n = 0;
  for (const auto& c : s)
    if (c.images > 0) sum += c.accuracy(), ++n;
  return n ? sum / n : 0.0;
}

/// confusion.csv: "true\predicted,<name>,..." then one row per true class.
inline std::string confusion_csv(const std::vector<std::string>& names, const std::vector<int64_t>& counts) {
  const int64_t K = detail::checked_classes(names, counts, "confusion.csv");
  std::string out = "true\\predicted";
  for (const auto& n : names) out += ',', out += detail::csv_field(n);
  out += '\n';
  for (int64_t t = 0; t < K; ++t) {
    out += detail::csv_field(names[t]);
    for (int64_t p = 0; p < K; ++p) out += ',', out += std::to_string(counts[t * K + p]);
    out += '\n';
  }
  return out;
}

/// The per-class table `vit eval` prints: images, correct, accuracy (of the
/// class's images, the share predicted as it) and precision (of the images
/// predicted as the class, the share that are it; "-" when none were).
inline std::string per_class_table(const std::vector<std::string>& names, const std::vector<int64_t>& counts) {
  const int64_t K = detail::checked_classes(names, counts, "per-class table");
  const auto stats = per_class_stats(counts, K);
  int width = 5;
  for (const auto& n : names) width = std::max(width, static_cast<int>(std::min<size_t>(n.size(), 32)));
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-*s %8s %8s %10s %10s\n", width, "class", "images", "correct",
                "accuracy", "precision");
  out += buf;
  for (int64_t k = 0; k < K; ++k) {
    const auto& s = stats[k];
    std::snprintf(buf, sizeof buf, "  %-*s %8lld %8lld %10s %10s\n", width, names[k].substr(0, 32).c_str(),
                  static_cast<long long>(s.images), static_cast<long long>(s.correct),
                  s.images ? detail::percent(s.accuracy()).c_str() : "-",
                  s.predicted ? detail::percent(s.precision()).c_str() : "-");
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "  mean per-class accuracy %s\n",
                detail::percent(mean_class_accuracy(stats)).c_str());
  return out + buf;
}

/// confusion.png: rows true class, columns predicted; each cell coloured by
/// its share of the row (white 0% to dark blue 100%), its count written in
/// it where the digits fit, the diagonal outlined. Cells shrink from 48 px (up to 15 classes) to 9 px
/// (80 and more); labels longer than the margin are cut with "..".
inline vit::data::Image confusion_image(const std::vector<std::string>& names,
                                        const std::vector<int64_t>& counts) {
  using namespace raster;
  const int64_t K = detail::checked_classes(names, counts, "confusion.png");
  const auto stats = per_class_stats(counts, K);
  const int64_t cell = std::clamp<int64_t>(720 / K, 9, 48);
  const int label_scale = cell >= 24 ? 2 : 1;
  const int64_t label_max = 150;  // pixels a class name may take
  std::vector<std::string> labels;
  int64_t label_w = 0;
  for (const auto& n : names) {
    labels.push_back(fit_text(n, label_max, label_scale));
    label_w = std::max(label_w, Raster::text_width(labels.back(), label_scale));
  }
  int64_t total = 0, correct = 0;
  for (const auto& s : stats) total += s.images, correct += s.correct;
  char buf[160];
  std::snprintf(buf, sizeof buf, "Confusion matrix: %lld images, top-1 %s", static_cast<long long>(total),
                detail::percent(total ? static_cast<double>(correct) / total : 0.0).c_str());
  const std::string title = buf;
  const std::string subtitle = "colour: share of the true class's images; numbers: image counts";
  const int64_t side = K * cell, pad = 16, axis_title = kLineHeight * 2;
  const int64_t left = pad + axis_title + label_w + 8, top = pad + 2 * kLineHeight * 2 + 10;
  const int64_t bar_w = colour_bar_width(16, "100%", "0%", "share of the true class");
  const int64_t width = std::max(left + side + 24 + bar_w + pad, pad + Raster::text_width(title, 2) + pad);
  const int64_t height = top + side + 8 + label_w + 8 + axis_title + pad;
  Raster r(width, height);
  r.text(pad, pad, title, kBlack, 2);
  r.text(pad, pad + 2 * kLineHeight + 4, subtitle, kGrey, 1);
  for (int64_t t = 0; t < K; ++t)
    for (int64_t p = 0; p < K; ++p) {
      const int64_t n = counts[t * K + p];
      const double share = stats[t].images ? static_cast<double>(n) / stats[t].images : 0.0;
      const Rgb bg = blues(share);
      const int64_t x = left + p * cell, y = top + t * cell;
      r.fill(x, y, x + cell, y + cell, bg);
      const std::string s = std::to_string(n);
      if (n == 0 && cell < 24) continue;  // many classes: empty cells stay blank, the eye finds the rest
      for (int scale : {2, 1}) {  // the larger size that fits the cell
        if (scale == 2 && cell < 40) continue;
        if (Raster::text_width(s, scale) > cell - 3 || kGlyphHeight * scale > cell - 2) continue;
        r.text(x + (cell - Raster::text_width(s, scale) + scale) / 2, y + (cell - kGlyphHeight * scale) / 2,
               s, ink_on(bg), scale);
        break;
      }
    }
  // Thin lines between cells when they are large enough to spare the pixels.
  if (cell >= 16)
    for (int64_t i = 1; i < K; ++i) {
      r.fill(left + i * cell, top, left + i * cell + 1, top + side, {220, 220, 220});
      r.fill(left, top + i * cell, left + side, top + i * cell + 1, {220, 220, 220});
    }
  // The diagonal (right answers) outlined, so it reads as such at a glance.
  if (cell >= 16)
    for (int64_t k = 0; k < K; ++k)
      r.frame(left + k * cell, top + k * cell, left + (k + 1) * cell + 1, top + (k + 1) * cell + 1, kGrey);
  r.frame(left - 1, top - 1, left + side + 1, top + side + 1, kGrey);
  const int64_t glyph = kGlyphHeight * label_scale;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t mid = k * cell + (cell - glyph) / 2;
    r.text(left - 6 - Raster::text_width(labels[k], label_scale), top + mid, labels[k], kBlack, label_scale);
    r.text_up(left + mid, top + side + 6 + Raster::text_width(labels[k], label_scale), labels[k], kBlack,
              label_scale);
  }
  const std::string true_title = "true class", pred_title = "predicted class";
  r.text_up(pad, top + side / 2 + Raster::text_width(true_title, 2) / 2, true_title, kBlack, 2);
  r.text_centred(left + side / 2, top + side + 8 + label_w + 8, pred_title, kBlack, 2);
  colour_bar(r, left + side + 24, top, 16, std::min<int64_t>(side, 400), blues, "100%", "0%",
             "share of the true class");
  return r.image();
}

/// Writes `dir`/confusion.csv and `dir`/confusion.png, each atomically
/// (a reader never sees half a file); `dir` must exist.
inline void write_confusion(const std::string& dir, const std::vector<std::string>& class_names,
                            const std::vector<int64_t>& counts) {
  const std::string base = dir.empty() ? std::string(".") : dir;
  vit::io::write_file_atomic(base + "/confusion.csv", confusion_csv(class_names, counts));
  vit::data::write_png(base + "/confusion.png", confusion_image(class_names, counts));
}

}  // namespace vitcli
