// Drawing for the pictures the command line writes (attention maps, the
// confusion matrix): an RGB raster with filled and outlined rectangles, text
// in stb_easy_font's stroke font (upright or turned to read bottom to top),
// pasted images, colour maps and a vertical colour bar. Saved as PNG through
// the library's encoder. Everything outside the raster is clipped.
#pragma once

#include <vit/vit.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace vitcli::raster {

using Rgb = std::array<uint8_t, 3>;
inline constexpr Rgb kBlack{0, 0, 0}, kWhite{255, 255, 255}, kGrey{110, 110, 110};

/// Glyph metrics of the font at scale 1: capitals are 7 px tall, descenders
/// reach 9, each character advances 6 px.
inline constexpr int kGlyphHeight = 7, kLineHeight = 12;

class Raster {
 public:
  Raster(int64_t width, int64_t height, Rgb background = kWhite) : img_(3, height, width) {
    for (int k = 0; k < 3; ++k)
      std::fill_n(img_.data.begin() + k * width * height, width * height, background[k]);
  }
  int64_t width() const { return img_.width; }
  int64_t height() const { return img_.height; }
  const vit::data::Image& image() const { return img_; }

  void pixel(int64_t x, int64_t y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    for (int k = 0; k < 3; ++k) img_.at(k, y, x) = c[k];
  }
  /// Fills [x0, x1) × [y0, y1).
  void fill(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c) {
    x0 = std::max<int64_t>(x0, 0), y0 = std::max<int64_t>(y0, 0);
    x1 = std::min(x1, img_.width), y1 = std::min(y1, img_.height);
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = x0; x < x1; ++x)
        for (int k = 0; k < 3; ++k) img_.at(k, y, x) = c[k];
  }
  /// A 1-pixel outline just inside [x0, x1) × [y0, y1).
  void frame(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb c) {
    fill(x0, y0, x1, y0 + 1, c), fill(x0, y1 - 1, x1, y1, c);
    fill(x0, y0, x0 + 1, y1, c), fill(x1 - 1, y0, x1, y1, c);
  }
  /// Pastes a grey or RGB image with its top-left corner at (x, y).
  void paste(const vit::data::Image& im, int64_t x, int64_t y) {
    for (int64_t r = 0; r < im.height; ++r)
      for (int64_t q = 0; q < im.width; ++q) {
        const auto v = [&](int k) { return im.at(im.channels == 3 ? k : 0, r, q); };
        pixel(x + q, y + r, {v(0), v(1), v(2)});
      }
  }

  /// Text with its top-left corner at (x, y), each stroke pixel scale×scale.
  void text(int64_t x, int64_t y, const std::string& s, Rgb c, int scale = 1) {
    for_each_stroke(s, [&](float x0, float y0, float x1, float y1) {
      fill(x + std::lround(x0 * scale), y + std::lround(y0 * scale), x + std::lround(x1 * scale),
           y + std::lround(y1 * scale), c);
    });
  }
  /// Text turned a quarter left (it reads bottom to top); (x, y) is the
  /// bottom-left corner of the turned text, its top the first character's.
  void text_up(int64_t x, int64_t y, const std::string& s, Rgb c, int scale = 1) {
    for_each_stroke(s, [&](float x0, float y0, float x1, float y1) {
      // (u, v) in the text -> (x + v, y - u) on the raster.
      fill(x + std::lround(y0 * scale), y - std::lround(x1 * scale), x + std::lround(y1 * scale),
           y - std::lround(x0 * scale), c);
    });
  }
  static int64_t text_width(const std::string& s, int scale = 1) {
    std::string copy = s;
    return static_cast<int64_t>(stb_easy_font_width(copy.data())) * scale;
  }
  /// Centred horizontally on cx.
  void text_centred(int64_t cx, int64_t y, const std::string& s, Rgb c, int scale = 1) {
    text(cx - text_width(s, scale) / 2, y, s, c, scale);
  }

 private:
  template <class F>
  static void for_each_stroke(const std::string& s, F&& f) {
    // 64 bytes per quad, at most ~13 quads per character ('%', '8').
    std::vector<char> buf(1024 + s.size() * 1024);
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf.data(),
                                          static_cast<int>(buf.size()));
    const auto* v = reinterpret_cast<const float*>(buf.data());
    for (int q = 0; q < quads; ++q) {
      const float* a = v + q * 16;  // 4 vertices of (x, y, z, rgba): corners 0 and 2 are opposite
      const float* b = a + 8;
      f(a[0], a[1], b[0], b[1]);
    }
  }
  vit::data::Image img_;
};

/// Text that fits `max_width` pixels at `scale`: cut with ".." when longer.
inline std::string fit_text(const std::string& s, int64_t max_width, int scale = 1) {
  if (Raster::text_width(s, scale) <= max_width) return s;
  std::string t = s;
  while (!t.empty() && Raster::text_width(t + "..", scale) > max_width) t.pop_back();
  return t.empty() ? "" : t + "..";
}

inline uint8_t to_byte(double v) {
  return static_cast<uint8_t>(std::lround(255 * std::clamp(v, 0.0, 1.0)));
}

/// Matplotlib's 'jet' for t in [0, 1]: blue, cyan, yellow, red.
inline Rgb jet(double t) {
  auto ramp = [](double x) { return std::clamp(1.5 - std::abs(x), 0.0, 1.0); };
  return {to_byte(ramp(4 * t - 3)), to_byte(ramp(4 * t - 2)), to_byte(ramp(4 * t - 1))};
}

/// A white-to-dark-blue scale (close to matplotlib's 'Blues') for t in [0, 1].
inline Rgb blues(double t) {
  static constexpr std::array<std::array<double, 3>, 5> stops = {{{247, 251, 255},
                                                                   {198, 219, 239},
                                                                   {107, 174, 214},
                                                                   {33, 113, 181},
                                                                   {8, 48, 107}}};
  const double s = std::clamp(t, 0.0, 1.0) * (stops.size() - 1);
  const size_t i = std::min(static_cast<size_t>(s), stops.size() - 2);
  const double f = s - static_cast<double>(i);
  Rgb c;
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<uint8_t>(std::lround((1 - f) * stops[i][k] + f * stops[i + 1][k]));
  return c;
}

/// Black or white, whichever reads better on background c.
inline Rgb ink_on(Rgb c) {
  const double luma = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  return luma > 140 ? kBlack : kWhite;
}

/// A vertical colour bar in [x, x + w) × [y, y + h), map(1) at the top, with
/// `top` and `bottom` written to its right and `caption` turned up beside them.
template <class Map>
void colour_bar(Raster& r, int64_t x, int64_t y, int64_t w, int64_t h, Map map,
                const std::string& top, const std::string& bottom, const std::string& caption = "",
                int scale = 1) {
  for (int64_t i = 0; i < h; ++i)
    r.fill(x, y + i, x + w, y + i + 1, map(h > 1 ? 1.0 - static_cast<double>(i) / (h - 1) : 1.0));
  r.frame(x - 1, y - 1, x + w + 1, y + h + 1, kGrey);
  const int64_t tx = x + w + 4 * scale;
  r.text(tx, y, top, kBlack, scale);
  r.text(tx, y + h - kGlyphHeight * scale, bottom, kBlack, scale);
  if (!caption.empty()) {
    const int64_t label_w = std::max(Raster::text_width(top, scale), Raster::text_width(bottom, scale));
    const int64_t cy = y + h / 2 + Raster::text_width(caption, scale) / 2;
    r.text_up(tx + label_w + 4 * scale, cy, caption, kBlack, scale);
  }
}

/// Width the bar, its labels and caption take (for laying out a picture).
inline int64_t colour_bar_width(int64_t w, const std::string& top, const std::string& bottom,
                                const std::string& caption = "", int scale = 1) {
  const int64_t label_w = std::max(Raster::text_width(top, scale), Raster::text_width(bottom, scale));
  return w + 4 * scale + label_w + (caption.empty() ? 0 : 4 * scale + kLineHeight * scale);
}

}  // namespace vitcli::raster
