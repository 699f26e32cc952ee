// TensorBoard event files for `vit train --tensorboard`: TensorFlow's Event
// protocol buffers (tensorboard_event.proto, encoded by Debian's protobuf) in
// TFRecord framing, one file per process start under <out>/tensorboard/,
// named as TensorFlow names them (events.out.tfevents.<seconds>.<host>) so
// that `tensorboard --logdir <out>/tensorboard` finds them. Every record is
// appended and flushed as it comes: a killed run keeps what it logged. A
// resumed run starts its new file with a SessionLog START at the step it
// resumes from, which tells TensorBoard to drop what the killed run had
// logged from there on (PyTorch's SummaryWriter purge_step).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace vitcli {

/// A TFRecord: uint64 length, uint32 masked CRC-32C of those 8 bytes, the
/// data, uint32 masked CRC-32C of the data (all little-endian).
std::string tfrecord_frame(const std::string& data);

class TensorBoardWriter {
 public:
  /// Creates `dir` if need be and a new event file in it, whose first record
  /// is the file version. purge_step > 0 (a resumed run) adds a SessionLog
  /// START there: readers discard events of that step and later from older files.
  explicit TensorBoardWriter(const std::string& dir, int64_t purge_step = 0);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// One event at `step` holding a scalar summary per (tag, value); values
  /// that are not finite are left out (an empty window has no accuracy).
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace vitcli
