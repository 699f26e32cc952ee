// Image files: decode JPEG/PNG/BMP (stb_image), write PNG (stb_image_write),
// and resize with PIL's antialiased bilinear filter.
//
// stb is compiled here, static (internal linkage), for JPEG, PNG and BMP only:
// fewer decoders is less attack surface, and static lets any number of
// translation units include this header. Do not also compile stb_image's own
// implementation in a translation unit that includes this header.
// Hostile files are bounded three ways: the file size is capped before
// reading, the dimensions are checked from the header before decoding, and
// every allocation stb makes is capped relative to those dimensions, so a PNG
// whose compressed data inflates far beyond its pixels (a "PNG bomb") fails
// instead of exhausting memory.
//
// resize() reproduces Pillow's Image.resize(BILINEAR) (what torchvision's
// Resize does on PIL images): a triangle filter whose support widens with the
// downscale factor (antialiasing), half-pixel centres, 22-bit fixed-point
// weights, horizontal pass then vertical, each rounded to uint8.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/idx.hpp"  // detail::read_file
#include "vit/io/atomic_file.hpp"

namespace vit::data::detail {
/// Largest single allocation stb may make on this thread (set per decode).
inline size_t& stb_alloc_limit() {
  thread_local size_t limit = SIZE_MAX;
  return limit;
}
inline void* stb_malloc(size_t n) { return n > stb_alloc_limit() ? nullptr : std::malloc(n); }
inline void* stb_realloc(void* p, size_t n) {
  return n > stb_alloc_limit() ? nullptr : std::realloc(p, n);
}
inline void stb_free(void* p) { std::free(p); }
}  // namespace vit::data::detail

#if defined(__GNUC__)
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wduplicated-branches"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MALLOC(sz) ::vit::data::detail::stb_malloc(sz)
#define STBI_REALLOC(p, newsz) ::vit::data::detail::stb_realloc(p, newsz)
#define STBI_FREE(p) ::vit::data::detail::stb_free(p)
#include <stb/stb_image.h>
#undef STB_IMAGE_STATIC
#undef STB_IMAGE_IMPLEMENTATION
#undef STBI_ONLY_JPEG
#undef STBI_ONLY_PNG
#undef STBI_ONLY_BMP
#undef STBI_NO_STDIO
#undef STBI_NO_HDR
#undef STBI_NO_LINEAR
#undef STBI_MALLOC
#undef STBI_REALLOC
#undef STBI_FREE

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#undef STB_IMAGE_WRITE_STATIC
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STBI_WRITE_NO_STDIO

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace vit::data {

/// Bounds on a decoded image, checked from the file header before decoding.
struct DecodeLimits {
  int64_t max_dim = 8192;                 ///< max width and max height
  int64_t max_pixels = 64 * 1024 * 1024;  ///< max width * height
};

/// Largest image file read_image() loads.
inline constexpr size_t kMaxImageFileBytes = size_t(256) << 20;

namespace detail {
/// Sets the stb allocation cap for the current thread; restores it on exit.
struct StbAllocLimit {
  size_t saved;
  explicit StbAllocLimit(size_t limit) : saved(stb_alloc_limit()) { stb_alloc_limit() = limit; }
  ~StbAllocLimit() { stb_alloc_limit() = saved; }
  StbAllocLimit(const StbAllocLimit&) = delete;
  StbAllocLimit& operator=(const StbAllocLimit&) = delete;
};

inline std::string failure_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

/// Two JPEG inputs that Debian 12's stb_image (2.27) mishandles, found by
/// tests/fuzz/fuzz_image.cpp: a Huffman table (DHT segment) declaring more
/// than 256 codes overruns stb's fixed-size tables, and a scan that uses a
/// table no DHT defined decodes with uninitialised tables (stb mallocs its
/// decoder state without clearing it): out-of-bounds reads, shifts past 32
/// bits. This walks the markers the way stb reads them and refuses both
/// before stb sees the file.
inline void check_jpeg_huffman_tables(std::span<const uint8_t> b, const std::string& name) {
  // stb takes any run of 0xFF fill bytes before the SOI marker (0xD8).
  size_t i = 0;
  while (i < b.size() && b[i] == 0xFF) ++i;
  if (i == 0 || i >= b.size() || b[i] != 0xD8) return;
  ++i;
  auto at = [&](size_t k) -> size_t { return k < b.size() ? b[k] : 0; };  // stb reads 0 past the end
  bool defined[2][4] = {};  // [DC, AC][table id]: set by a DHT
  bool progressive = false;
  while (i + 1 < b.size()) {
    if (b[i] != 0xFF) {  // entropy-coded data of a scan
      ++i;
      continue;
    }
    const uint8_t m = b[i + 1];
    if (m == 0xFF) {  // fill byte before a marker
      ++i;
      continue;
    }
    // No length: a stuffed 0xFF00 in scan data, RSTn, TEM, SOI; EOI ends the file.
    if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    if (m == 0xD9 || i + 3 >= b.size()) return;
    const size_t len = (at(i + 2) << 8) | at(i + 3);
    if (m == 0xC2) progressive = true;
    if (m == 0xDA) {  // SOS: every table the scan decodes with must exist
      const size_t ns = at(i + 4), spectral = i + 5 + 2 * ns;
      const size_t ss = at(spectral), ah = at(spectral + 2) >> 4;
      for (size_t c = 0; c < ns; ++c) {
        const size_t td = at(i + 6 + 2 * c) >> 4, ta = at(i + 6 + 2 * c) & 15;
        if (td > 3 || ta > 3) return;  // stb refuses the file itself
        const bool dc = progressive ? ss == 0 && ah == 0 : true;
        const bool ac = progressive ? ss > 0 : true;
        VIT_CHECK((!dc || defined[0][td]) && (!ac || defined[1][ta]), name,
                  ": corrupt JPEG (a scan uses a Huffman table that no DHT segment defines)");
      }
    }
    if (m != 0xC4) {
      i += 2 + len;
      continue;
    }
    // DHT: tables of (class/id byte, 16 code counts, the codes), as stb loops over them.
    long left = static_cast<long>(len) - 2;
    size_t p = i + 4;
    while (left > 0) {
      const size_t q = at(p);
      if ((q >> 4) > 1 || (q & 15) > 3) return;  // stb refuses the file itself
      size_t n = 0;
      for (size_t k = 1; k <= 16; ++k) n += at(p + k);
      VIT_CHECK(n <= 256, name, ": corrupt JPEG (a Huffman table declares ", n,
                " codes, at most 256)");
      defined[q >> 4][q & 15] = true;
      p += 17 + n;
      left -= static_cast<long>(17 + n);
    }
    if (left != 0) return;  // stb refuses a segment its tables do not fill exactly
    i = p;
  }
}
}  // namespace detail

/// Decodes a JPEG, PNG or BMP held in memory to CHW uint8 with `channels`
/// (1 = grey, 3 = RGB; stb converts, dropping alpha). `name` is used in
/// errors. Throws vit::Error naming it when the data is not a decodable image
/// or its header dimensions exceed `limits` (checked before decoding).
inline Image decode_image(std::span<const uint8_t> bytes, const std::string& name, int64_t channels,
                          DecodeLimits limits = {}) {
  VIT_CHECK(channels == 1 || channels == 3, name, ": channels must be 1 or 3, got ", channels);
  VIT_CHECK(limits.max_dim > 0 && limits.max_pixels > 0, name, ": decode limits must be positive");
  VIT_CHECK(!bytes.empty(), name, ": empty file");
  VIT_CHECK(bytes.size() <= size_t(INT_MAX), name, ": ", bytes.size(),
            " bytes is too large to decode");
  const int len = static_cast<int>(bytes.size());
  detail::check_jpeg_huffman_tables(bytes, name);
  int w = 0, h = 0, comp = 0;
  VIT_CHECK(stbi_info_from_memory(bytes.data(), len, &w, &h, &comp) == 1, name,
            ": not a decodable JPEG, PNG or BMP image (", detail::failure_reason(), ")");
  VIT_CHECK(w > 0 && h > 0, name, ": image has size ", w, "x", h);
  VIT_CHECK(w <= limits.max_dim && h <= limits.max_dim && int64_t(w) * h <= limits.max_pixels, name,
            ": image is ", w, "x", h, " (width x height), beyond the limit of ", limits.max_dim,
            " per side and ", limits.max_pixels, " pixels");

  // A legitimate decode allocates at most ~8 bytes per pixel (16-bit RGBA
  // PNG) plus a filter byte per row, and stb's buffer for the compressed data
  // grows to at most twice the file size. Anything bigger is a bomb.
  const size_t pixels = size_t(w) * size_t(h);
  const size_t cap = std::max(2 * bytes.size(), 16 * pixels + 16 * size_t(h)) + (size_t(1) << 20);
  int dw = 0, dh = 0, dc = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(nullptr, stbi_image_free);
  {
    detail::StbAllocLimit guard(cap);
    px.reset(stbi_load_from_memory(bytes.data(), len, &dw, &dh, &dc, static_cast<int>(channels)));
  }
  if (!px) {
    const std::string why = detail::failure_reason();
    VIT_CHECK(why != "outofmem", name, ": decoding needs more memory than a ", w, "x", h,
              " image can (corrupt or hostile file)");
    VIT_CHECK(false, name, ": cannot decode image (", why, ")");
  }
  VIT_CHECK(dw == w && dh == h, name, ": decoded size ", dw, "x", dh, " differs from header ", w,
            "x", h);

  // stb gives interleaved HWC; Dataset and the model want channel planes.
  Image img(channels, h, w);
  const int64_t plane = int64_t(w) * h;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < channels; ++c) img.data[c * plane + i] = px.get()[i * channels + c];
  return img;
}

/// Reads and decodes an image file (see decode_image); files over 256 MB are
/// refused before reading.
inline Image read_image(const std::string& path, int64_t channels, DecodeLimits limits = {}) {
  const std::vector<uint8_t> bytes = detail::read_file(path, kMaxImageFileBytes);
  return decode_image(bytes, path, channels, limits);
}

/// Encodes img (1 to 4 channels, CHW uint8) as PNG in memory.
inline std::string encode_png(const Image& img) {
  VIT_CHECK(img.channels >= 1 && img.channels <= 4, "encode_png: channels must be 1..4, got ",
            img.channels);
  VIT_CHECK(img.height > 0 && img.width > 0 && img.height <= INT_MAX / 4 &&
                img.width <= INT_MAX / 4 / img.channels,
            "encode_png: bad image size ", img.height, "x", img.width);
  VIT_CHECK(img.data.size() == size_t(img.numel()), "encode_png: ", img.data.size(),
            " bytes for a ", img.channels, "x", img.height, "x", img.width, " image");
  const int64_t plane = img.height * img.width;
  std::vector<uint8_t> hwc(img.data.size());
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < img.channels; ++c) hwc[i * img.channels + c] = img.data[c * plane + i];
  std::string out;
  auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(size));
  };
  const int ok =
      stbi_write_png_to_func(sink, &out, int(img.width), int(img.height), int(img.channels),
                             hwc.data(), int(img.width * img.channels));
  VIT_CHECK(ok != 0, "encode_png: stb_image_write failed for a ", img.width, "x", img.height,
            " image");
  return out;
}

/// Writes img as a PNG file atomically (temp file, fsync, rename): a reader
/// never sees a partial image.
inline void write_png(const std::string& path, const Image& img) {
  io::write_file_atomic(path, encode_png(img));
}

namespace detail {

/// Pillow's precompute_coeffs for the bilinear (triangle) filter: for each
/// output index, the first input index, the tap count, and ksize weights
/// normalised to sum 1 and then converted to 22-bit fixed point.
struct ResampleCoeffs {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;  // out_size * ksize
};

inline constexpr int kPrecisionBits = 32 - 8 - 2;

/// Fills rc for in_size -> out_size, reusing its storage (and k's, the
/// unnormalised taps): no allocation once the buffers have grown.
inline void resample_coeffs_into(int64_t in_size, int64_t out_size, ResampleCoeffs& rc,
                                 std::vector<double>& k) {
  const double scale = double(in_size) / double(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // the triangle filter has support 1
  rc.ksize = int64_t(std::ceil(support)) * 2 + 1;
  rc.first.resize(out_size);
  rc.count.resize(out_size);
  rc.weights.assign(size_t(out_size * rc.ksize), 0);
  k.resize(size_t(rc.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (double(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) truncation as in Pillow, then clamped to the image.
    const int64_t xmin = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(int64_t(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double t = std::abs((double(x + xmin) - center + 0.5) * ss);
      k[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += k[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      const double f = v * double(1 << kPrecisionBits);
      rc.weights[xx * rc.ksize + x] = int32_t(v < 0 ? -0.5 + f : 0.5 + f);
    }
    rc.first[xx] = xmin;
    rc.count[xx] = xmax;
  }
}

inline uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace detail

/// Buffers resize_region_into reuses across calls (one per thread), so that
/// resizing in the loader's steady state allocates nothing.
struct ResizeScratch {
  detail::ResampleCoeffs horizontal, vertical;
  std::vector<double> taps;
  std::vector<uint8_t> rows;  // the horizontal pass's output
};

/// Resizes the h x w window at (top, left) of the C x H x W image at src to
/// out_h x out_w, written to out (C * out_h * out_w bytes): exactly PIL's
/// img.crop(window).resize((out_w, out_h), BILINEAR), which is torchvision's
/// resized_crop on PIL images (the filter never reads outside the window).
inline void resize_region_into(const uint8_t* src, int64_t C, int64_t H, int64_t W, int64_t top,
                               int64_t left, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                               uint8_t* out, ResizeScratch& s) {
  constexpr int64_t kMaxSide = int64_t(1) << 16;
  VIT_CHECK(src != nullptr && out != nullptr && C > 0 && H > 0 && W > 0,
            "resize: bad source image ", C, "x", H, "x", W);
  VIT_CHECK(top >= 0 && left >= 0 && h > 0 && w > 0 && top + h <= H && left + w <= W,
            "resize: window ", h, "x", w, " at (", top, ",", left, ") outside a ", H, "x", W,
            " image");
  VIT_CHECK(out_h > 0 && out_w > 0 && out_h <= kMaxSide && out_w <= kMaxSide,
            "resize: target size ", out_h, "x", out_w, " is outside 1..", kMaxSide);
  const auto window = [&](int64_t c, int64_t y) { return src + (c * H + top + y) * W + left; };
  if (out_h == h && out_w == w) {
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < h; ++y) std::copy_n(window(c, y), w, out + (c * h + y) * w);
    return;
  }
  constexpr int64_t half = int64_t(1) << (detail::kPrecisionBits - 1);
  // Horizontal pass over only the window rows the vertical pass will read.
  const uint8_t* rows = nullptr;  // rows [row0, row0 + n) of the window, out_w wide
  int64_t row0 = 0, n = h;
  if (out_w != w) {
    detail::resample_coeffs_into(w, out_w, s.horizontal, s.taps);
    if (out_h != h) {
      detail::resample_coeffs_into(h, out_h, s.vertical, s.taps);
      row0 = s.vertical.first[0];
      n = s.vertical.first[out_h - 1] + s.vertical.count[out_h - 1] - row0;
    }
    uint8_t* dst = out;
    if (out_h != h) {
      s.rows.resize(size_t(C * n * out_w));
      dst = s.rows.data();
    }
    const detail::ResampleCoeffs& hc = s.horizontal;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < n; ++y) {
        const uint8_t* in = window(c, row0 + y);
        uint8_t* o = dst + (c * n + y) * out_w;
        for (int64_t xx = 0; xx < out_w; ++xx) {
          const int32_t* k = hc.weights.data() + xx * hc.ksize;
          const uint8_t* p = in + hc.first[xx];
          int64_t acc = half;
          for (int64_t x = 0; x < hc.count[xx]; ++x) acc += int64_t(p[x]) * k[x];
          o[xx] = detail::clip8(acc);
        }
      }
    if (out_h == h) return;
    rows = s.rows.data();
  } else {
    detail::resample_coeffs_into(h, out_h, s.vertical, s.taps);
  }
  const detail::ResampleCoeffs& vc = s.vertical;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t yy = 0; yy < out_h; ++yy) {
      const int32_t* k = vc.weights.data() + yy * vc.ksize;
      const int64_t y0 = vc.first[yy] - row0;
      uint8_t* o = out + (c * out_h + yy) * out_w;
      for (int64_t x = 0; x < out_w; ++x) {
        int64_t acc = half;
        for (int64_t y = 0; y < vc.count[yy]; ++y) {
          const uint8_t v = rows ? rows[(c * n + y0 + y) * out_w + x] : window(c, y0 + y)[x];
          acc += int64_t(v) * k[y];
        }
        o[x] = detail::clip8(acc);
      }
    }
}

/// Resizes to height x width (squash, no crop) with Pillow's BILINEAR filter,
/// antialiased when downscaling: matches PIL Image.resize((width, height),
/// Image.BILINEAR), hence torchvision Resize on PIL images. Same size: a copy.
inline Image resize(const Image& src, int64_t height, int64_t width) {
  VIT_CHECK(
      src.channels > 0 && src.height > 0 && src.width > 0 && src.data.size() == size_t(src.numel()),
      "resize: bad source image ", src.channels, "x", src.height, "x", src.width, " with ",
      src.data.size(), " bytes");
  constexpr int64_t kMaxSide = int64_t(1) << 16;
  VIT_CHECK(height > 0 && width > 0 && height <= kMaxSide && width <= kMaxSide,
            "resize: target size ", height, "x", width, " is outside 1..", kMaxSide);
  if (height == src.height && width == src.width) return src;
  Image out(src.channels, height, width);
  ResizeScratch s;
  resize_region_into(src.data.data(), src.channels, src.height, src.width, 0, 0, src.height,
                     src.width, height, width, out.data.data(), s);
  return out;
}

}  // namespace vit::data
