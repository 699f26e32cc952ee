// read_tfevents FILE...: reads TensorBoard event files as TensorBoard does,
// checking what it would only skip: every record's framing (the length and
// both masked CRC-32C checksums) and every Event parsing with the protocol
// buffers the trainer writes with. Prints one line per item:
//   file_version brain.Event:2
//   session_log START <step>
//   scalar <tag> <step> <value>     (%.9g, as float)
// and ends with "records <n>". Any damage: a line on stderr, exit status 1.
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vit/io/crc32c.hpp>

#include "tensorboard_event.pb.h"

namespace {

uint64_t get_le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

bool read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "read_tfevents: cannot open '%s'\n", path);
    return false;
  }
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0, records = 0;
  while (at < s.size()) {
    auto bad = [&](const char* what) {
      std::fprintf(stderr, "read_tfevents: %s: record %zu at byte %zu: %s\n", path, records, at, what);
      return false;
    };
    if (s.size() - at < 12) return bad("truncated length");
    const uint64_t len = get_le(s, at, 8);
    if (get_le(s, at + 8, 4) != vit::io::mask_crc32c(vit::io::crc32c(s.data() + at, 8)))
      return bad("length checksum mismatch");
    if (s.size() - at - 12 < len + 4) return bad("truncated data");
    const std::string data = s.substr(at + 12, len);
    if (get_le(s, at + 12 + len, 4) != vit::io::mask_crc32c(vit::io::crc32c(data)))
      return bad("data checksum mismatch");
    tensorboard::Event e;
    if (!e.ParseFromString(data)) return bad("not an Event");
    if (records == 0 && e.file_version() != "brain.Event:2") return bad("first record is not the file version");
    if (!e.file_version().empty()) std::printf("file_version %s\n", e.file_version().c_str());
    if (e.has_session_log())
      std::printf("session_log %s %" PRId64 "\n",
                  e.session_log().status() == tensorboard::SessionLog::START ? "START" : "OTHER",
                  static_cast<int64_t>(e.step()));
    if (e.has_summary())
      for (const auto& v : e.summary().value())
        std::printf("scalar %s %" PRId64 " %.9g\n", v.tag().c_str(), static_cast<int64_t>(e.step()),
                    static_cast<double>(v.simple_value()));
    if (e.wall_time() <= 0) return bad("no wall time");
    at += 12 + len + 4;
    ++records;
  }
  std::printf("records %zu\n", records);
  return records > 0;
}

}  // namespace

int main(int argc, char** argv) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;
  if (argc < 2) {
    std::fprintf(stderr, "usage: read_tfevents EVENT_FILE...\n");
    return 2;
  }
  bool ok = true;
  for (int i = 1; i < argc && ok; ++i) ok = read_file(argv[i]);
  google::protobuf::ShutdownProtobufLibrary();
  return ok ? 0 : 1;
}
