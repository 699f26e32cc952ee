// safetensors: reader and writer of the format Hugging Face and timm use for
// weights. Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// ({"name": {"dtype","shape","data_offsets"}, "__metadata__": {str: str}}),
// then the byte buffer the offsets index.
// The reader enforces every rule of the reference Rust crate (and is stricter
// where that crate is lax: no duplicate keys, no unknown fields) before it
// trusts any size in the header, so a hostile file costs at most its own size
// in memory and one line of error. No mmap and no lazy loading: checkpoints
// here are small, and owning the bytes keeps lifetimes trivial.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/core/tensor.hpp"
#include "vit/io/atomic_file.hpp"

namespace vit::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors I/O copies tensor bytes as they are: it needs a little-endian host");

/// Element types of the format, in the reference crate's order.
// clang-format off
enum class Dtype {
  BOOL, U8, I8, F8_E5M2, F8_E4M3,  // 1 byte
  I16, U16, F16, BF16,             // 2 bytes
  I32, U32, F32,                   // 4 bytes
  F64, I64, U64                    // 8 bytes
};
// clang-format on

/// The reader refuses longer headers, as the reference crate does.
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

namespace dtypes {
struct Entry {
  Dtype dtype;
  std::string_view name;
  size_t size;
};
// Indexed by the enum's value.
// clang-format off
inline constexpr std::array<Entry, 15> kTable{{
    {Dtype::BOOL, "BOOL", 1}, {Dtype::U8, "U8", 1},   {Dtype::I8, "I8", 1},
    {Dtype::F8_E5M2, "F8_E5M2", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1},
    {Dtype::I16, "I16", 2},   {Dtype::U16, "U16", 2}, {Dtype::F16, "F16", 2}, {Dtype::BF16, "BF16", 2},
    {Dtype::I32, "I32", 4},   {Dtype::U32, "U32", 4}, {Dtype::F32, "F32", 4},
    {Dtype::F64, "F64", 8},   {Dtype::I64, "I64", 8}, {Dtype::U64, "U64", 8}}};
// clang-format on
static_assert(
    [] {
      for (size_t i = 0; i < kTable.size(); ++i)
        if (static_cast<size_t>(kTable[i].dtype) != i) return false;
      return true;
    }(),
    "dtypes::kTable must follow the enum's order");
}  // namespace dtypes

/// The name the header uses ("F32", "BF16").
inline std::string_view dtype_name(Dtype d) { return dtypes::kTable[static_cast<size_t>(d)].name; }
/// Bytes per element.
inline size_t dtype_size(Dtype d) { return dtypes::kTable[static_cast<size_t>(d)].size; }
/// The dtype a header name denotes, if any (names are case-sensitive).
inline std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& e : dtypes::kTable)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

/// One tensor of a file: offsets are relative to the start of the byte buffer.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

}  // namespace vit::io

// Helpers live in vit::detail: a vit::io::detail would hide vit::detail from
// other vit::io code that writes `detail::`.
namespace vit::detail {

/// Text from a file, fit for a one-line message: control bytes (and, when
/// ascii_only, all non-ASCII bytes) escaped as \xNN, long text cut, so file
/// contents cannot forge extra log lines.
inline std::string printable(std::string_view s, size_t max_len = 160, bool ascii_only = false) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_len) return out + "...";
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\\' || (ascii_only && c >= 0x80)) {
      out += c == '\\' ? "\\\\" : std::string{'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// "a string", "an array", ... for messages about a JSON value of the wrong kind.
inline std::string json_kind(const nlohmann::json& v) {
  if (v.is_number()) return "a number";
  if (v.is_array() || v.is_object()) return std::string("an ") + v.type_name();
  if (v.is_null()) return "null";
  return std::string("a ") + v.type_name();
}

/// IEEE binary16 -> binary32, exact (every half is a float).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant · 2^-24 is exact in float
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  const uint32_t bits = exp == 0x1f ? sign | 0x7f800000u | (mant << 13)  // inf, NaN (payload kept)
                                    : sign | ((exp + 112u) << 23) | (mant << 13);
  return std::bit_cast<float>(bits);
}

/// bfloat16 is the top half of a float.
inline float bf16_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

}  // namespace vit::detail

namespace vit::io {

/// A whole safetensors file in memory, validated on load. Tensors convert to
/// Tensor<float>/Tensor<double> on request; raw bytes are available for any dtype.
class SafetensorsFile {
 public:
  /// Reads and validates the file; errors name `path`.
  static SafetensorsFile read(const std::string& path);
  /// Validates bytes already in memory; errors name `source_name`.
  static SafetensorsFile parse(std::vector<uint8_t> bytes, std::string source_name) {
    SafetensorsFile f;
    f.source_ = std::move(source_name);
    f.bytes_ = std::move(bytes);
    f.validate();
    return f;
  }

  /// The path or source name errors mention.
  const std::string& source() const { return source_; }
  /// `__metadata__` (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// All tensors, in the order of their bytes in the buffer.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// Dtype, shape and offsets of a tensor; throws naming the file and tensor if absent.
  const TensorInfo& info(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) fail("no tensor named '" + vit::detail::printable(name) + "'");
    return tensors_[it->second];
  }
  /// The tensor's bytes as stored (little-endian, row-major).
  std::span<const uint8_t> bytes(const std::string& name) const {
    const TensorInfo& t = info(name);
    return {bytes_.data() + data_start_ + t.begin, static_cast<size_t>(t.end - t.begin)};
  }
  /// A new CPU tensor holding the values (T = float, double or bf16). F16, BF16
  /// and F32 widen exactly; F64 -> float and anything wider -> bf16 round to
  /// nearest even (as torch's .float() / .bfloat16()); BF16 -> bf16 copies the
  /// bits; other dtypes throw.
  template <class T>
  Tensor<T> tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  [[noreturn]] void fail(const std::string& what) const { throw Error(source_ + ": " + what); }
  void validate();
  nlohmann::json parse_header_json(const char* text, size_t n) const;
  TensorInfo parse_entry(const std::string& name, const nlohmann::json& v) const;
  void parse_metadata(const nlohmann::json& v);
  void check_layout(uint64_t buffer_len) const;

  std::string source_;
  std::vector<uint8_t> bytes_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

inline SafetensorsFile SafetensorsFile::read(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) vit::detail::throw_errno("open", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) < 0) vit::detail::throw_errno("read", path, errno);
  if (S_ISDIR(st.st_mode)) vit::detail::throw_errno("read", path, EISDIR);
  // The file's own size, not the header's claims, sizes the buffer; pipes and
  // files that grow while read are handled by reading on until EOF.
  std::vector<uint8_t> bytes(S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 0);
  size_t got = 0;
  for (;;) {
    uint8_t probe[1 << 16];
    const bool full = got == bytes.size();
    const ssize_t r =
        full ? ::read(fd, probe, sizeof probe) : ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      vit::detail::throw_errno("read", path, errno);
    }
    if (r == 0) break;
    if (full) bytes.insert(bytes.end(), probe, probe + r);
    got += static_cast<size_t>(r);
  }
  bytes.resize(got);
  return parse(std::move(bytes), path);
}

/// What a file that is not safetensors looks like, from its first bytes.
inline std::string file_kind(const std::vector<uint8_t>& b) {
  auto starts = [&b](std::initializer_list<uint8_t> sig) {
    return b.size() >= sig.size() && std::equal(sig.begin(), sig.end(), b.begin());
  };
  const std::string convert = "; convert it with scripts/pth_to_safetensors.py";
  if (starts({'P', 'K', 3, 4}))
    return "it is a zip archive, as PyTorch's torch.save .pth files are" + convert;
  if (b.size() >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
    return "it is a Python pickle, as older PyTorch .pth files are" + convert;
  if (starts({0x89, 'P', 'N', 'G'})) return "it is a PNG image";
  if (starts({0xFF, 0xD8, 0xFF})) return "it is a JPEG image";
  if (starts({0x1F, 0x8B})) return "it is gzip-compressed";
  return "it does not start with an 8-byte header length followed by a JSON header";
}

inline void SafetensorsFile::validate() {
  const uint64_t size = bytes_.size();
  if (size < 8)
    fail("file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, bytes_.data(), 8);
  // A safetensors file is an 8-byte length then '{'. Anything else whose
  // length makes no sense is another kind of file: say so, not "header length 6199779332130742307".
  if ((n > kMaxHeaderSize || n > size - 8) && (size < 9 || bytes_[8] != '{'))
    fail("not a safetensors file (" + file_kind(bytes_) + ")");
  if (n > kMaxHeaderSize)
    fail("header length " + std::to_string(n) + " exceeds the limit of " +
         std::to_string(kMaxHeaderSize) + " bytes");
  if (n > size - 8)
    fail("header length " + std::to_string(n) + " exceeds the " + std::to_string(size - 8) +
         " bytes that follow it");
  const char* text = reinterpret_cast<const char*>(bytes_.data() + 8);
  if (n == 0 || text[0] != '{') fail("header is not a JSON object (it must start with '{')");
  const nlohmann::json header = parse_header_json(text, static_cast<size_t>(n));
  if (!header.is_object()) fail("header is not a JSON object");
  data_start_ = 8 + n;

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      parse_metadata(value);
    } else {
      tensors_.push_back(parse_entry(key, value));
    }
  }
  // Offset order; ties (empty tensors at one offset) by name, for a stable order.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  check_layout(size - data_start_);
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

inline nlohmann::json SafetensorsFile::parse_header_json(const char* text, size_t n) const {
  // nlohmann::json keeps the last of duplicate keys without a word, so the
  // parser callback records every key per open object and flags a repeat.
  struct Frame {
    std::string name;  // the key this object or array sits under
    std::set<std::string> keys;
  };
  std::vector<Frame> stack;
  std::string last_key;
  std::optional<std::string> duplicate;
  using Event = nlohmann::json::parse_event_t;
  auto on_event = [&](int, Event ev, nlohmann::json& parsed) {
    switch (ev) {
      case Event::object_start:
      case Event::array_start:
        stack.push_back({stack.empty() ? std::string() : last_key, {}});
        break;
      case Event::object_end:
      case Event::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case Event::key: {
        last_key = parsed.get<std::string>();
        if (duplicate || stack.empty() || stack.back().keys.insert(last_key).second) break;
        const std::string k = vit::detail::printable(last_key);
        if (stack.size() == 1) {
          duplicate = last_key == "__metadata__" ? std::string("duplicate __metadata__")
                                                 : "duplicate tensor name '" + k + "'";
        } else if (stack.size() == 2 && stack.back().name == "__metadata__") {
          duplicate = "duplicate key '" + k + "' in __metadata__";
        } else if (stack.size() == 2) {
          duplicate = "tensor '" + vit::detail::printable(stack.back().name) +
                      "' has duplicate field '" + k + "'";
        } else {
          duplicate = "duplicate key '" + k + "' in the header";
        }
        break;
      }
      case Event::value:
        break;
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, text + n, on_event);
  } catch (const nlohmann::json::exception& e) {
    // what() is "[json.exception.parse_error.101] parse error at ..."; keep the
    // human part, escaped, since it quotes bytes of the file.
    std::string_view msg = e.what();
    if (const size_t p = msg.find("] "); msg.rfind("[json.exception", 0) == 0 && p != msg.npos)
      msg.remove_prefix(p + 2);
    fail("header is not valid JSON: " + vit::detail::printable(msg, 300, true));
  }
  if (duplicate) fail(*duplicate);
  return j;
}

inline void SafetensorsFile::parse_metadata(const nlohmann::json& v) {
  if (!v.is_object())
    fail("__metadata__ is " + vit::detail::json_kind(v) + ", not an object of strings");
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string())
      fail("__metadata__ value of '" + vit::detail::printable(k) + "' is " +
           vit::detail::json_kind(s) + ", not a string");
    metadata_.emplace(k, s.get<std::string>());
  }
}

inline TensorInfo SafetensorsFile::parse_entry(const std::string& name,
                                               const nlohmann::json& v) const {
  const std::string who = "tensor '" + vit::detail::printable(name) + "'";
  if (!v.is_object()) fail(who + " is " + vit::detail::json_kind(v) + ", not an object");
  for (const auto& [k, _] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      fail(who + " has unknown field '" + vit::detail::printable(k) +
           "' (expected dtype, shape, data_offsets)");
  for (const char* k : {"dtype", "shape", "data_offsets"})
    if (!v.contains(k)) fail(who + " has no '" + k + "'");

  TensorInfo t;
  t.name = name;
  const auto& dt = v["dtype"];
  if (!dt.is_string()) fail(who + " dtype is " + vit::detail::json_kind(dt) + ", not a string");
  const auto dtype = dtype_from_name(dt.get_ref<const std::string&>());
  if (!dtype)
    fail(who + " has unknown dtype '" + vit::detail::printable(dt.get_ref<const std::string&>()) +
         "'");
  t.dtype = *dtype;

  const auto& shape = v["shape"];
  if (!shape.is_array())
    fail(who + " shape is " + vit::detail::json_kind(shape) + ", not an array");
  for (const auto& d : shape) {
    if (d.is_number_integer() && !d.is_number_unsigned())  // nlohmann types negatives as signed
      fail(who + " has negative dimension " + std::to_string(d.get<int64_t>()) + " in its shape");
    if (!d.is_number_unsigned())
      fail(who + " shape entry is " + vit::detail::json_kind(d) + ", not a non-negative integer");
    const uint64_t u = d.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(who + " dimension " + std::to_string(u) + " is too large");
    t.shape.push_back(static_cast<int64_t>(u));
  }

  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned())
    fail(who + " data_offsets must be two non-negative integers [begin, end]");
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  const std::string range = "[" + std::to_string(t.begin) + "," + std::to_string(t.end) + ")";
  if (t.begin > t.end) fail(who + " data_offsets " + range + " end before they begin");

  // Products stay within int64 (not just uint64 as in the reference) so the
  // shape is safe to hand to Tensor, whose numel is signed.
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  bool overflow = false;
  for (int64_t d : t.shape) {
    const auto u = static_cast<uint64_t>(d);
    if (u != 0 && numel > kMax / u) {
      overflow = true;
      break;
    }
    numel *= u;
  }
  const uint64_t esize = dtype_size(t.dtype);
  if (overflow || numel > kMax / esize)
    fail(who + " shape " + vit::to_string(t.shape) + " of " + std::string(dtype_name(t.dtype)) +
         " overflows the byte count");
  const uint64_t nbytes = numel * esize;
  if (t.end - t.begin != nbytes)
    fail(who + " data_offsets " + range + " do not match dtype " +
         std::string(dtype_name(t.dtype)) + " and shape " + vit::to_string(t.shape) + " (" +
         std::to_string(nbytes) + " bytes)");
  return t;
}

// Sorted by offset, the tensors must tile [0, buffer_len) exactly.
inline void SafetensorsFile::check_layout(uint64_t buffer_len) const {
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  auto range = [](const TensorInfo& t) {
    std::string r = "[";  // appended: g++ 12 warns (-Wrestrict) on "[" + string
    r += std::to_string(t.begin) + "," + std::to_string(t.end) + ")";
    return r;
  };
  for (const TensorInfo& t : tensors_) {
    const std::string who = "tensor '" + vit::detail::printable(t.name) + "'";
    if (t.begin > pos)
      fail("bytes [" + std::to_string(pos) + "," + std::to_string(t.begin) +
           ") of the data buffer belong to no tensor (gap before " + who + ")");
    if (t.begin < pos)  // pos > 0, so prev is set
      fail(who + " data_offsets " + range(t) + " overlap tensor '" +
           vit::detail::printable(prev->name) + "' " + range(*prev));
    if (t.end > buffer_len)
      fail(who + " data_offsets " + range(t) + " run past the end of the " +
           std::to_string(buffer_len) + "-byte data buffer");
    pos = t.end;
    prev = &t;
  }
  if (pos != buffer_len)
    fail(std::to_string(buffer_len - pos) +
         " trailing bytes after the last tensor (tensors end at " + std::to_string(pos) +
         ", the data buffer has " + std::to_string(buffer_len) + " bytes)");
}

template <class T>
Tensor<T> SafetensorsFile::tensor(const std::string& name) const {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || is_bf16_v<T>,
                "SafetensorsFile::tensor<T>: T must be float, double or bf16");
  const TensorInfo& t = info(name);
  if (t.dtype != Dtype::F32 && t.dtype != Dtype::F64 && t.dtype != Dtype::F16 &&
      t.dtype != Dtype::BF16)
    fail("tensor '" + vit::detail::printable(name) + "' has dtype " +
         std::string(dtype_name(t.dtype)) + ", which does not convert to " + vit::dtype_name<T>() +
         " (only F32, F64, F16, BF16 do)");
  Tensor<T> out = Tensor<T>::empty(t.shape);
  const uint8_t* src = bytes_.data() + data_start_ + t.begin;
  T* dst = out.data();
  const int64_t n = out.numel();
  // memcpy per element: the buffer's alignment is whatever the header length made it.
  auto convert = [&](auto raw, auto to_value) {
    using Raw = decltype(raw);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&raw, src + i * sizeof(Raw), sizeof(Raw));
      if constexpr (is_bf16_v<T>) dst[i] = T(static_cast<float>(to_value(raw)));
      else dst[i] = static_cast<T>(to_value(raw));
    }
  };
  auto same = [](auto x) { return x; };
  switch (t.dtype) {
    case Dtype::F32:
      if constexpr (std::is_same_v<T, float>)
        std::memcpy(dst, src, sizeof(float) * n);
      else
        convert(float{}, same);
      break;
    case Dtype::F64:
      if constexpr (std::is_same_v<T, double>)
        std::memcpy(dst, src, sizeof(double) * n);
      else
        convert(double{}, same);
      break;
    case Dtype::F16:
      convert(uint16_t{}, vit::detail::half_to_float);
      break;
    case Dtype::BF16:
      if constexpr (is_bf16_v<T>)
        std::memcpy(static_cast<void*>(dst), src, sizeof(uint16_t) * n);
      else
        convert(uint16_t{}, vit::detail::bf16_to_float);
      break;
    default:  // rejected above
      break;
  }
  return out;
}

/// Collects tensors and metadata, then writes one safetensors file. Tensors
/// are laid out in the order added. add() keeps a reference to the tensor's
/// storage rather than a copy, so a checkpoint costs no extra memory: values
/// are those at serialize()/write() time.
class SafetensorsWriter {
 public:
  /// Sets (or replaces) one `__metadata__` entry.
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  /// Adds a CPU tensor, stored as F32 (float), F64 (double) or BF16 (bf16).
  template <class T>
  void add(const std::string& name, const Tensor<T>& t) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || is_bf16_v<T>,
                  "SafetensorsWriter::add: T must be float, double or bf16");
    constexpr Dtype kDtype =
        std::is_same_v<T, float> ? Dtype::F32 : std::is_same_v<T, double> ? Dtype::F64 : Dtype::BF16;
    VIT_CHECK(t.defined(), "safetensors writer: tensor '", name, "' is undefined");
    VIT_CHECK(t.device() == Device::CPU, "safetensors writer: tensor '", name, "' is on ",
              t.device(), "; copy it to the CPU first");
    check_name(name);
    entries_.push_back({name, kDtype, t.shape(),
                        t.impl_ptr()->storage, reinterpret_cast<const uint8_t*>(t.data()),
                        sizeof(T) * static_cast<uint64_t>(t.numel())});
  }

  /// Adds bytes of any dtype (copied); their size must match dtype and shape.
  void add_raw(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
               std::span<const uint8_t> bytes) {
    uint64_t numel = 1;
    for (int64_t d : shape) {
      VIT_CHECK(d >= 0, "safetensors writer: tensor '", name, "' has negative dimension in shape ",
                shape);
      VIT_CHECK(
          d == 0 || numel <= std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(d),
          "safetensors writer: tensor '", name, "' shape ", shape, " is too large");
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t nbytes = numel * dtype_size(dtype);
    VIT_CHECK(bytes.size() == nbytes, "safetensors writer: tensor '", name, "' has ", bytes.size(),
              " bytes but dtype ", dtype_name(dtype), " and shape ", shape, " need ", nbytes);
    check_name(name);
    auto owned = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
    const uint8_t* data = owned->data();
    entries_.push_back({name, dtype, std::move(shape), std::move(owned), data, nbytes});
  }

  /// The whole file: length, header padded with spaces to a multiple of 8
  /// (so the buffer is 8-aligned, as the reference writes it), buffer.
  std::vector<uint8_t> serialize() const {
    const std::string h = header();
    uint64_t total = 8 + h.size();
    for (const Entry& e : entries_) total += e.nbytes;
    // Sized once and filled by memcpy (g++ 12 misreads growing inserts as overflows).
    std::vector<uint8_t> out(total);
    const uint64_t n = h.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, h.data(), h.size());
    size_t at = 8 + h.size();
    for (const Entry& e : entries_) {
      if (e.nbytes) std::memcpy(out.data() + at, e.data, e.nbytes);
      at += e.nbytes;
    }
    return out;
  }

  /// Writes the file atomically (see AtomicFile), streaming tensor bytes.
  void write(const std::string& path) const {
    const std::string h = header();
    const uint64_t n = h.size();
    AtomicFile f(path);
    f.write(&n, 8);
    f.write(h);
    for (const Entry& e : entries_) f.write(e.data, e.nbytes);
    f.commit();
  }

 private:
  struct Entry {
    std::string name;
    Dtype dtype;
    std::vector<int64_t> shape;
    std::shared_ptr<const void> keep_alive;  // the tensor's storage, or owned bytes
    const uint8_t* data;
    uint64_t nbytes;
  };

  // Called last by add/add_raw: a name is taken only once the entry is valid.
  void check_name(const std::string& name) {
    VIT_CHECK(name != "__metadata__", "safetensors writer: '__metadata__' is not a tensor name");
    VIT_CHECK(names_.insert(name).second, "safetensors writer: duplicate tensor name '", name, "'");
  }

  std::string header() const {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Entry& e : entries_) {
      nlohmann::ordered_json info = nlohmann::ordered_json::object();
      info["dtype"] = dtype_name(e.dtype);
      info["shape"] = e.shape;
      info["data_offsets"] = {offset, offset + e.nbytes};
      h[e.name] = std::move(info);
      offset += e.nbytes;
    }
    std::string s;
    try {
      s = h.dump();
    } catch (const nlohmann::json::exception&) {
      throw Error("safetensors writer: a tensor name or metadata string is not valid UTF-8");
    }
    s.append((8 - s.size() % 8) % 8, ' ');
    VIT_CHECK(s.size() <= kMaxHeaderSize, "safetensors writer: header of ", s.size(),
              " bytes exceeds the format's limit of ", kMaxHeaderSize);
    return s;
  }

  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
  std::set<std::string> names_;
};

}  // namespace vit::io
