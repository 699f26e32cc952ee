// safetensors and AtomicFile: round trips (float, double, raw bytes, metadata),
// a file written by the Python `safetensors` library read back exactly, one
// malformed input per validation rule with its message, and atomic writes
// that leave the old file (and no temp) behind when anything fails.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/temp_dir.hpp"

using namespace vit;
using io::Dtype;
using io::SafetensorsFile;
using io::SafetensorsWriter;
namespace fs = std::filesystem;

using test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void put_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

/// The message of the vit::Error that f throws ("<no error>" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const vit::Error& e) {
    return e.what();
  }
  return "<no error>";
}

/// A file: length prefix `claimed` (default: the header's size), header, then
/// buffer_len zero bytes.
std::vector<uint8_t> make_file(const std::string& header, size_t buffer_len,
                               std::optional<uint64_t> claimed = std::nullopt) {
  const uint64_t n = claimed ? *claimed : header.size();
  std::vector<uint8_t> out(8 + header.size() + buffer_len, 0);
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// Written by safetensors 0.8.0 (torch 2.15) with
//   save_file({"w32": float32 [[1.5, -2.25, 0.1], [3e-39, 65504, -0.0]],
//              "h16": float16 [1, -0.5, 2**-24, 65504, inf, 0.333251953125],
//              "b16": bfloat16 [[1, -3.140625], [1e30, 2**-130]],
//              "ids": int64 [0, -1, 2**40 + 7]},
//             metadata={"format": "pt", "note": "made by safetensors 0.8.0"})
const uint8_t kPythonFile[] = {
    0x30, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61,
    0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x7b, 0x22, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74,
    0x22, 0x3a, 0x22, 0x70, 0x74, 0x22, 0x2c, 0x22, 0x6e, 0x6f, 0x74, 0x65, 0x22, 0x3a, 0x22, 0x6d,
    0x61, 0x64, 0x65, 0x20, 0x62, 0x79, 0x20, 0x73, 0x61, 0x66, 0x65, 0x74, 0x65, 0x6e, 0x73, 0x6f,
    0x72, 0x73, 0x20, 0x30, 0x2e, 0x38, 0x2e, 0x30, 0x22, 0x7d, 0x2c, 0x22, 0x69, 0x64, 0x73, 0x22,
    0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x36, 0x34, 0x22, 0x2c,
    0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74,
    0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x32, 0x34,
    0x5d, 0x7d, 0x2c, 0x22, 0x77, 0x33, 0x32, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65,
    0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a,
    0x5b, 0x32, 0x2c, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73,
    0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c, 0x34, 0x38, 0x5d, 0x7d, 0x2c, 0x22, 0x62,
    0x31, 0x36, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x42, 0x46,
    0x31, 0x36, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x2c, 0x32,
    0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22,
    0x3a, 0x5b, 0x34, 0x38, 0x2c, 0x35, 0x36, 0x5d, 0x7d, 0x2c, 0x22, 0x68, 0x31, 0x36, 0x22, 0x3a,
    0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c, 0x22,
    0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x36, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61,
    0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x35, 0x36, 0x2c, 0x36, 0x38,
    0x5d, 0x7d, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x10, 0xc0, 0xcd, 0xcc, 0xcc, 0x3d, 0xc8, 0xaa, 0x20, 0x00,
    0x00, 0xe0, 0x7f, 0x47, 0x00, 0x00, 0x00, 0x80, 0x80, 0x3f, 0x49, 0xc0, 0x4a, 0x71, 0x08, 0x00,
    0x00, 0x3c, 0x00, 0xb8, 0x01, 0x00, 0xff, 0x7b, 0x00, 0x7c, 0x55, 0x35,
};

template <class T>
bool same_bits(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(T) * a.numel()) == 0;
}

}  // namespace

TEST_CASE("safetensors round trip of float, double and raw tensors with metadata",
          "[io][safetensors]") {
  const TensorF w = test::randn<float>({2, 3}, 1);
  const TensorD m = test::randn<double>({4}, 2);
  const TensorF empty = TensorF::empty({0, 3});
  const std::vector<uint8_t> raw = {1, 2, 3, 4, 5};
  const int64_t step = -1234567890123;

  SafetensorsWriter wr;
  wr.set_metadata("step", "12");
  wr.set_metadata("config", "{\"depth\": 2, \"name\": \"vit-\\u00e9\"}");
  wr.add("blocks.0.w", w);
  wr.add_raw("mask", Dtype::U8, {5}, raw);
  wr.add("adam.m", m);
  wr.add("empty", empty);
  wr.add_raw("step", Dtype::I64, {}, {reinterpret_cast<const uint8_t*>(&step), 8});
  const std::vector<uint8_t> bytes = wr.serialize();

  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);  // the buffer starts 8-aligned, as the reference writes it
  CHECK(bytes[8] == '{');
  CHECK(bytes[8 + n - 1] == ' ');  // this header needs padding; it is spaces

  const SafetensorsFile f = SafetensorsFile::parse(bytes, "mem");
  CHECK(f.source() == "mem");
  CHECK(f.metadata() ==
        std::map<std::string, std::string>{{"config", "{\"depth\": 2, \"name\": \"vit-\\u00e9\"}"},
                                           {"step", "12"}});
  // Laid out in the order added; tensors() lists them in offset order.
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"blocks.0.w", "mask", "adam.m", "empty", "step"});
  CHECK(f.info("blocks.0.w").dtype == Dtype::F32);
  CHECK(f.info("adam.m").dtype == Dtype::F64);
  CHECK(f.info("mask").begin == 24);
  CHECK(f.info("mask").end == 29);
  CHECK(f.info("step").shape.empty());
  CHECK(f.contains("mask"));
  CHECK_FALSE(f.contains("nope"));

  CHECK(same_bits(f.tensor<float>("blocks.0.w"), w));
  CHECK(same_bits(f.tensor<double>("adam.m"), m));
  CHECK(f.tensor<float>("empty").shape() == Shape{0, 3});
  CHECK(same_bits(f.tensor<double>("blocks.0.w"), w.to_dtype<double>()));  // exact widening
  CHECK(same_bits(f.tensor<float>("adam.m"), m.to_dtype<float>()));        // rounds like a cast
  const auto mask = f.bytes("mask");
  CHECK(std::vector<uint8_t>(mask.begin(), mask.end()) == raw);
  int64_t step_back;
  std::memcpy(&step_back, f.bytes("step").data(), 8);
  CHECK(step_back == step);

  SECTION("through a file: write() produces exactly serialize()") {
    TempDir dir;
    wr.write(dir / "model.safetensors");
    CHECK(slurp(dir / "model.safetensors") == std::string(bytes.begin(), bytes.end()));
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
    const SafetensorsFile g = SafetensorsFile::read(dir / "model.safetensors");
    CHECK(g.source() == dir / "model.safetensors");
    CHECK(same_bits(g.tensor<double>("adam.m"), m));
  }
  SECTION("an empty writer gives the reference's empty file") {
    const std::vector<uint8_t> e = SafetensorsWriter().serialize();
    CHECK(e ==
          std::vector<uint8_t>{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '});
    CHECK(SafetensorsFile::parse(e, "e").tensors().empty());
  }
}

TEST_CASE("safetensors reads a file written by the Python safetensors library",
          "[io][safetensors]") {
  const SafetensorsFile f =
      SafetensorsFile::parse({std::begin(kPythonFile), std::end(kPythonFile)}, "py.safetensors");
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"},
                                                           {"note", "made by safetensors 0.8.0"}});
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"ids", "w32", "b16", "h16"});

  const TensorF w = f.tensor<float>("w32");
  CHECK(w.shape() == Shape{2, 3});
  CHECK(w.to_vector() == std::vector<float>{1.5f, -2.25f, 0.1f, 3e-39f, 65504.0f, -0.0f});
  CHECK(std::signbit(w.data()[5]));

  const TensorD h = f.tensor<double>("h16");
  CHECK(f.info("h16").dtype == Dtype::F16);
  CHECK(h.shape() == Shape{6});
  CHECK(h.to_vector() ==
        std::vector<double>{1.0, -0.5, std::ldexp(1.0, -24), 65504.0, INFINITY, 0.333251953125});

  const TensorF b = f.tensor<float>("b16");
  CHECK(f.info("b16").dtype == Dtype::BF16);
  CHECK(b.shape() == Shape{2, 2});
  CHECK(b.to_dtype<double>().to_vector() ==
        std::vector<double>{1.0, -3.140625, 1.0002555517425873e+30, std::ldexp(1.0, -130)});

  CHECK(f.info("ids").dtype == Dtype::I64);
  CHECK(f.info("ids").shape == std::vector<int64_t>{3});
  std::vector<int64_t> ids(3);
  std::memcpy(ids.data(), f.bytes("ids").data(), 24);
  CHECK(ids == std::vector<int64_t>{0, -1, (int64_t{1} << 40) + 7});
  CHECK(error_of([&] { f.tensor<float>("ids"); }) ==
        "py.safetensors: tensor 'ids' has dtype I64, which does not convert to float32 (only F32, "
        "F64, F16, BF16 do)");
  CHECK(error_of([&] { f.info("head.weight"); }) ==
        "py.safetensors: no tensor named 'head.weight'");
  CHECK(error_of([&] { f.tensor<double>("head.weight"); }) ==
        "py.safetensors: no tensor named 'head.weight'");
}

TEST_CASE("safetensors converts every float16 value exactly", "[io][safetensors]") {
  // Independent of the bit-twiddling: (-1)^s · 2^(e-15) · (1 + m/1024), subnormals m · 2^-24.
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint32_t s = bits >> 15, e = (bits >> 10) & 31, m = bits & 1023;
    const float got = vit::detail::half_to_float(static_cast<uint16_t>(bits));
    if (e == 31) {
      if (m == 0 ? !(std::isinf(got) && std::signbit(got) == (s == 1)) : !std::isnan(got))
        FAIL("half bits " << bits << " -> " << got);
      continue;
    }
    double want = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, int(e) - 15);
    if (s) want = -want;
    if (!(double(got) == want && std::signbit(got) == (s == 1)))
      FAIL("half bits " << bits << " -> " << got << ", expected " << want);
  }
  CHECK(vit::detail::bf16_to_float(0x3f80) == 1.0f);
  CHECK(vit::detail::bf16_to_float(0xc049) == -3.140625f);
}

TEST_CASE("safetensors accepts valid edge cases", "[io][safetensors]") {
  SECTION("tensors listed out of offset order, empty tensors sharing an offset, a scalar") {
    const std::string h = "{" + entry("z", "F32", "[1]", 0, 4) + "," +
                          entry("a", "U8", "[2]", 6, 8) + "," + entry("e2", "F64", "[0,5]", 4, 4) +
                          "," + entry("e1", "BOOL", "[3,0]", 4, 4) + "," +
                          entry("s", "I16", "[]", 4, 6) + "}   ";
    const SafetensorsFile f = SafetensorsFile::parse(make_file(h, 8), "ok");
    std::vector<std::string> names;
    for (const auto& t : f.tensors()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"z", "e1", "e2", "s", "a"});
    CHECK(f.tensor<double>("e2").numel() == 0);
  }
  SECTION("every dtype name") {
    for (int d = 0; d <= static_cast<int>(Dtype::U64); ++d) {
      const auto dt = static_cast<Dtype>(d);
      const size_t sz = io::dtype_size(dt);
      // Appended, not "{" + string: g++ 12 warns (-Wrestrict) on that prepend.
      std::string h = "{";
      h += entry("t", std::string(io::dtype_name(dt)), "[3]", 0, 3 * sz);
      h += "}";
      CHECK(SafetensorsFile::parse(make_file(h, 3 * sz), "ok").info("t").dtype == dt);
      CHECK(io::dtype_from_name(io::dtype_name(dt)) == dt);
    }
  }
}

TEST_CASE("safetensors rejects each malformed input with its own message", "[io][safetensors]") {
  const std::string f32_4 = entry("a", "F32", "[1]", 0, 4);
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    std::string message;  // after "bad.st: "; a trailing '*' means "starts with"
  };
  std::string deep = "{\"a\":";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}";
  const std::vector<Case> cases = {
      {"truncated length", {1, 0, 0}, "file is 3 bytes, too short for the 8-byte header length"},
      {"header length over the cap", make_file("{}", 16, 100000001),
       "header length 100000001 exceeds the limit of 100000000 bytes"},
      {"100 GB claimed header", make_file("{}", 0, uint64_t{100} << 30),
       "header length 107374182400 exceeds the limit of 100000000 bytes"},
      {"a .pth file (zip)", {'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0, 0, 0},
       "not a safetensors file (it is a zip archive, as PyTorch's torch.save .pth files are; "
       "convert it with scripts/pth_to_safetensors.py)"},
      {"a legacy .pth file (pickle)", {0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20},
       "not a safetensors file (it is a Python pickle, as older PyTorch .pth files are; "
       "convert it with scripts/pth_to_safetensors.py)"},
      {"a PNG image", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13},
       "not a safetensors file (it is a PNG image)"},
      {"header length past the end of the file", make_file("{}", 8, 64),
       "header length 64 exceeds the 10 bytes that follow it"},
      {"not JSON", make_file("{nope}", 0), "header is not valid JSON: parse error*"},
      {"trailing characters after the object", make_file("{} x", 0),
       "header is not valid JSON: parse error*"},
      {"invalid UTF-8", make_file("{\"\xff\":1}", 0), "header is not valid JSON: parse error*"},
      {"JSON array", make_file("[1,2]", 0), "header is not a JSON object (it must start with '{')"},
      {"empty header", make_file("", 0), "header is not a JSON object (it must start with '{')"},
      {"leading space", make_file(" {}", 0),
       "header is not a JSON object (it must start with '{')"},
      {"entry not an object", make_file("{\"a\":5}", 0), "tensor 'a' is a number, not an object"},
      {"missing dtype", make_file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "tensor 'a' has no 'dtype'"},
      {"missing data_offsets", make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4),
       "tensor 'a' has no 'data_offsets'"},
      {"unknown field",
       make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4),
       "tensor 'a' has unknown field 'x' (expected dtype, shape, data_offsets)"},
      {"unknown dtype", make_file("{" + entry("a", "F128", "[1]", 0, 4) + "}", 4),
       "tensor 'a' has unknown dtype 'F128'"},
      {"lower-case dtype", make_file("{" + entry("a", "f32", "[1]", 0, 4) + "}", 4),
       "tensor 'a' has unknown dtype 'f32'"},
      {"dtype not a string",
       make_file("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "tensor 'a' dtype is a number, not a string"},
      {"negative shape", make_file("{" + entry("a", "F32", "[2,-3]", 0, 4) + "}", 4),
       "tensor 'a' has negative dimension -3 in its shape"},
      {"fractional shape", make_file("{" + entry("a", "F32", "[1.0]", 0, 4) + "}", 4),
       "tensor 'a' shape entry is a number, not a non-negative integer"},
      {"shape not an array", make_file("{" + entry("a", "F32", "4", 0, 4) + "}", 4),
       "tensor 'a' shape is a number, not an array"},
      {"offsets mismatch with shape",
       make_file("{" + entry("head.weight", "F32", "[10,192]", 0, 100) + "}", 100),
       "tensor 'head.weight' data_offsets [0,100) do not match dtype F32 and shape (10,192) "
       "(7680 bytes)"},
      {"three offsets",
       make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4),
       "tensor 'a' data_offsets must be two non-negative integers [begin, end]"},
      {"negative offset",
       make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4),
       "tensor 'a' data_offsets must be two non-negative integers [begin, end]"},
      {"begin after end", make_file("{" + entry("a", "F32", "[1]", 8, 4) + "}", 8),
       "tensor 'a' data_offsets [8,4) end before they begin"},
      {"shape overflow",
       make_file("{" + entry("a", "F32", "[4611686018427387904,4]", 0, 0) + "}", 0),
       "tensor 'a' shape (4611686018427387904,4) of F32 overflows the byte count"},
      {"shape overflow before a zero",
       make_file("{" + entry("a", "U8", "[4294967296,4294967296,0]", 0, 0) + "}", 0),
       "tensor 'a' shape (4294967296,4294967296,0) of U8 overflows the byte count"},
      {"dimension beyond int64",
       make_file("{" + entry("a", "U8", "[18446744073709551615,0]", 0, 0) + "}", 0),
       "tensor 'a' dimension 18446744073709551615 is too large"},
      {"gap between tensors",
       make_file("{" + f32_4 + "," + entry("b", "F32", "[1]", 8, 12) + "}", 12),
       "bytes [4,8) of the data buffer belong to no tensor (gap before tensor 'b')"},
      {"gap at the start", make_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", 8),
       "bytes [0,4) of the data buffer belong to no tensor (gap before tensor 'a')"},
      {"overlap",
       make_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}",
                 12),
       "tensor 'b' data_offsets [4,12) overlap tensor 'a' [0,8)"},
      {"trailing bytes", make_file("{" + f32_4 + "}", 8),
       "4 trailing bytes after the last tensor (tensors end at 4, the data buffer has 8 bytes)"},
      {"bytes but no tensors", make_file("{}", 3),
       "3 trailing bytes after the last tensor (tensors end at 0, the data buffer has 3 bytes)"},
      {"tensor past the end of the file", make_file("{" + entry("a", "F32", "[2]", 0, 8) + "}", 4),
       "tensor 'a' data_offsets [0,8) run past the end of the 4-byte data buffer"},
      {"duplicate name", make_file("{" + f32_4 + "," + entry("a", "F32", "[1]", 4, 8) + "}", 8),
       "duplicate tensor name 'a'"},
      {"duplicate field",
       make_file(
           "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
       "tensor 'a' has duplicate field 'dtype'"},
      {"duplicate metadata key", make_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0),
       "duplicate key 'k' in __metadata__"},
      {"duplicate __metadata__", make_file("{\"__metadata__\":{},\"__metadata__\":{}}", 0),
       "duplicate __metadata__"},
      {"metadata value not a string", make_file("{\"__metadata__\":{\"step\":3}}", 0),
       "__metadata__ value of 'step' is a number, not a string"},
      {"metadata not an object", make_file("{\"__metadata__\":[\"a\"]}", 0),
       "__metadata__ is an array, not an object of strings"},
      {"metadata null", make_file("{\"__metadata__\":null}", 0),
       "__metadata__ is null, not an object of strings"},
      {"control characters in a name", make_file("{\"a\\nb\\\\\":5}", 0),
       "tensor 'a\\x0ab\\\\' is a number, not an object"},
      {"deeply nested value", make_file(deep, 0), "tensor 'a' is an array, not an object"},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.what);
    const std::string got = error_of([&] { SafetensorsFile::parse(c.bytes, "bad.st"); });
    const std::string want = "bad.st: " + c.message;
    if (want.back() == '*')
      CHECK(got.rfind(want.substr(0, want.size() - 1), 0) == 0);
    else
      CHECK(got == want);
    // One printable ASCII line, whatever bytes the file held.
    CHECK(std::all_of(got.begin(), got.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; }));
  }
}

TEST_CASE("safetensors file errors name the path", "[io][safetensors]") {
  TempDir dir;
  CHECK(error_of([&] { SafetensorsFile::read(dir / "missing.safetensors"); }) ==
        "cannot open '" + dir / "missing.safetensors" + "': No such file or directory");
  CHECK(error_of([&] { SafetensorsFile::read(dir.path.string()); }) ==
        "cannot read '" + dir.path.string() + "': Is a directory");
  put_file(dir / "short.safetensors", "abc");
  CHECK(error_of([&] { SafetensorsFile::read(dir / "short.safetensors"); }) ==
        dir / "short.safetensors" + ": file is 3 bytes, too short for the 8-byte header length");
}

TEST_CASE("safetensors writer rejects misuse", "[io][safetensors]") {
  SafetensorsWriter wr;
  wr.add("a", TensorF::zeros({2}));
  CHECK_THAT(error_of([&] { wr.add("a", TensorD::zeros({1})); }),
             Catch::Matchers::StartsWith("safetensors writer: duplicate tensor name 'a'"));
  CHECK_THAT(
      error_of([&] { wr.add("__metadata__", TensorF::zeros({1})); }),
      Catch::Matchers::StartsWith("safetensors writer: '__metadata__' is not a tensor name"));
  const std::vector<uint8_t> three(3);
  CHECK_THAT(error_of([&] { wr.add_raw("r", Dtype::F16, {2}, three); }),
             Catch::Matchers::StartsWith(
                 "safetensors writer: tensor 'r' has 3 bytes but dtype F16 and shape (2) need 4"));
  CHECK_THAT(error_of([&] { wr.add_raw("r", Dtype::U8, {-3}, three); }),
             Catch::Matchers::StartsWith("safetensors writer: tensor 'r' has negative dimension"));
  CHECK_THAT(error_of([&] { wr.add("u", TensorF()); }),
             Catch::Matchers::StartsWith("safetensors writer: tensor 'u' is undefined"));
  // A rejected add takes no name: "r" is still free.
  wr.add_raw("r", Dtype::U8, {3}, three);
  wr.set_metadata("bad", std::string("\xff"));
  CHECK(error_of([&] { wr.serialize(); }) ==
        "safetensors writer: a tensor name or metadata string is not valid UTF-8");
  wr.set_metadata("bad", "fine");
  CHECK(SafetensorsFile::parse(wr.serialize(), "w").tensors().size() == 2);
}

TEST_CASE("AtomicFile replaces the target on commit", "[io][atomic]") {
  TempDir dir;
  const std::string target = dir / "last.safetensors";
  put_file(target, "old contents");
  {
    io::AtomicFile f(target);
    CHECK(f.temp_path() == dir / (".last.safetensors.tmp." + std::to_string(::getpid())));
    f.write("new ", 4);
    f.write(std::string_view("contents!"));
    // Until commit, readers see the old file; the new bytes sit in the temp.
    CHECK(slurp(target) == "old contents");
    CHECK(dir.entries().size() == 2);
    f.commit();
    CHECK_THAT(error_of([&] { f.write("x", 1); }),
               Catch::Matchers::StartsWith("cannot write '" + target + "'"));
  }
  CHECK(slurp(target) == "new contents!");
  CHECK(dir.entries() == std::vector<std::string>{"last.safetensors"});

  io::write_file_atomic(dir / "config.json", "{\"depth\": 2}\n");
  CHECK(slurp(dir / "config.json") == "{\"depth\": 2}\n");
  CHECK(dir.entries() == std::vector<std::string>{"config.json", "last.safetensors"});
}

TEST_CASE("AtomicFile leaves the target untouched without commit", "[io][atomic]") {
  TempDir dir;
  const std::string target = dir / "ckpt.safetensors";
  put_file(target, "old");
  try {
    io::AtomicFile f(target);
    f.write("half a checkpoint", 17);
    throw std::runtime_error("training crashed mid-write");
  } catch (const std::runtime_error&) {
  }
  CHECK(slurp(target) == "old");
  CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});

  SECTION("a new file is not created either") {
    { io::AtomicFile f(dir / "new.bin"); }
    CHECK(dir.entries() == std::vector<std::string>{"ckpt.safetensors"});
  }
}

TEST_CASE("remove_stale_temp_files removes only AtomicFile's leftovers for the names given",
          "[io][atomic]") {
  TempDir dir;
  CHECK(io::atomic_temp_path(dir / "last.safetensors", 42) == dir / ".last.safetensors.tmp.42");
  CHECK(io::atomic_temp_path("config.json", 7) == ".config.json.tmp.7");
  for (const char* name : {"last.safetensors", ".last.safetensors.tmp.123", ".config.json.tmp.9",
                           ".last.safetensors.tmp.12x", ".last.safetensors.tmp.", ".notes.txt.tmp.5"})
    put_file(dir / name, "x");
  const char* const run_files[] = {"last.safetensors", "config.json"};
  io::remove_stale_temp_files(dir.path.string(), run_files);
  CHECK(dir.entries() == std::vector<std::string>{".last.safetensors.tmp.", ".last.safetensors.tmp.12x",
                                                  ".notes.txt.tmp.5", "last.safetensors"});
  // A directory that does not exist is nothing to clean, not an error.
  io::remove_stale_temp_files(dir / "missing", run_files);
}

TEST_CASE("AtomicFile errors name the path and the system's reason", "[io][atomic]") {
  TempDir dir;
  const std::string in_missing = dir / "no/such/dir/model.safetensors";
  CHECK(error_of([&] { io::AtomicFile f(in_missing); }) ==
        "cannot create '" + in_missing + "': No such file or directory");
  CHECK(error_of([&] { SafetensorsWriter().write(in_missing); }) ==
        "cannot create '" + in_missing + "': No such file or directory");
  CHECK(error_of([&] { io::write_file_atomic(dir.path.string() + "/", "x"); }) ==
        "cannot create '" + dir.path.string() + "/': not a file name");

  SECTION("a write that fails (file size limit) leaves the old file and no temp") {
    const std::string target = dir / "big.bin";
    put_file(target, "old");
    // RLIMIT_FSIZE makes write() fail with EFBIG, standing in for a full disk.
    // SIGXFSZ would kill the process, so it is ignored for the duration.
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    const std::string msg = error_of([&] {
      io::AtomicFile f(target);
      const std::vector<char> block(10000, 'x');
      f.write(block.data(), block.size());
      f.commit();
    });
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::signal(SIGXFSZ, old_handler);
    CHECK(msg == "cannot write '" + target + "': File too large");
    CHECK(slurp(target) == "old");
    CHECK(dir.entries() == std::vector<std::string>{"big.bin"});
  }
}
