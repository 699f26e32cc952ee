// TensorBoard event files (see tensorboard.hpp).
#include "tensorboard.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vit/io/crc32c.hpp>
#include <vit/vit.hpp>

#include "tensorboard_event.pb.h"

namespace vitcli {

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

/// protobuf's globals freed at exit, so that a leak checker sees none.
void shutdown_protobuf_at_exit() {
  static const bool registered = [] {
    std::atexit([] { google::protobuf::ShutdownProtobufLibrary(); });
    return true;
  }();
  (void)registered;
}

}  // namespace

std::string tfrecord_frame(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, vit::io::mask_crc32c(vit::io::crc32c(out.data(), 8)), 4);
  out += data;
  put_le(out, vit::io::mask_crc32c(vit::io::crc32c(data)), 4);
  return out;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t purge_step) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;
  shutdown_protobuf_at_exit();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VIT_CHECK(!ec && std::filesystem::is_directory(dir), "--tensorboard: cannot create directory '",
            dir, "': ", ec.message());
  const double now = unix_seconds();
  char stem[64];
  std::snprintf(stem, sizeof stem, "events.out.tfevents.%010lld.",
                static_cast<long long>(std::floor(now)));
  // A run resumed within the second it was killed: a file of its own all the same.
  path_ = dir + "/" + stem + host_name();
  for (int n = 1; std::filesystem::exists(path_); ++n)
    path_ = dir + "/" + stem + host_name() + "." + std::to_string(n);
  file_ = std::fopen(path_.c_str(), "ab");
  VIT_CHECK(file_, "--tensorboard: cannot create '", path_, "': ", std::strerror(errno));
  tensorboard::Event version;
  version.set_wall_time(now);
  version.set_file_version("brain.Event:2");
  write_record(version.SerializeAsString());
  if (purge_step > 0) {
    tensorboard::Event start;
    start.set_wall_time(now);
    start.set_step(purge_step);
    start.mutable_session_log()->set_status(tensorboard::SessionLog::START);
    write_record(start.SerializeAsString());
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalars(int64_t step,
                                const std::vector<std::pair<std::string, double>>& values) {
  tensorboard::Event e;
  e.set_wall_time(unix_seconds());
  e.set_step(step);
  tensorboard::Summary* summary = e.mutable_summary();
  for (const auto& [tag, v] : values) {
    if (!std::isfinite(v)) continue;
    tensorboard::Summary::Value* value = summary->add_value();
    value->set_tag(tag);
    value->set_simple_value(static_cast<float>(v));
  }
  if (summary->value_size() > 0) write_record(e.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& data) {
  const std::string rec = tfrecord_frame(data);
  const bool ok = std::fwrite(rec.data(), 1, rec.size(), file_) == rec.size() &&
                  std::fflush(file_) == 0;
  VIT_CHECK(ok, "cannot write '", path_, "': ", std::strerror(errno));
}

}  // namespace vitcli
