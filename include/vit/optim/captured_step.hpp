// CapturedStep: a training step run as one CUDA graph. The first run()
// executes the step as it is (it allocates the gradients and the optimizer
// state, which then stay put), the second captures it, and every run from
// then on replays it: one launch instead of hundreds, and no host work per
// kernel. On the CPU, on the emulated backend, or with use_graph false, run()
// just calls the step.
//
// What the step must honour (the trainer's step does): it reads its inputs
// from tensors whose storage stays put (the caller copies each batch into them
// before run()), it never waits for the host, and its shapes never change.
// Dropout masks stay those of the eager step: the graph's mask counters are
// shifted on each replay by how far the generator has moved since the
// capture, and the generator advances as the eager step would advance it.
#pragma once

#include <functional>
#include <utility>

#include "vit/core/rng.hpp"
#include "vit/core/tensor.hpp"
#include "vit/cuda/runtime.hpp"
#include "vit/ops/dropout.hpp"

namespace vit::optim {

class CapturedStep {
 public:
  CapturedStep(Generator& dropout_gen, std::function<void()> step, bool use_graph)
      : gen_(dropout_gen), step_(std::move(step)), use_graph_(use_graph && graphs_available()) {}
  ~CapturedStep() {
#if VIT_WITH_CUDA
    if (graph_) cuda::destroy_graph(graph_);
#endif
  }
  CapturedStep(const CapturedStep&) = delete;
  CapturedStep& operator=(const CapturedStep&) = delete;

  /// Whether run() replays a graph (after its first two calls).
  bool uses_graph() const { return use_graph_; }

  void run() {
    if (!use_graph_ || runs_++ == 0) {
      step_();
      return;
    }
#if VIT_WITH_CUDA
    if (!graph_) capture();
    shift_host_.data()[0] = gen_.offset() - offset_at_capture_;
    shift_.copy_from(shift_host_);  // queued ahead of the replay that reads it
    cuda::replay_graph(graph_);
    gen_.reserve(counters_per_step_);
#endif
  }

 private:
  static bool graphs_available() {
#if VIT_WITH_CUDA
    return cuda::available() && cuda::graphs_supported();
#else
    return false;
#endif
  }

#if VIT_WITH_CUDA
  void capture() {
    shift_ = Tensor<uint64_t>::zeros({1}, Device::CUDA);
    offset_at_capture_ = gen_.offset();
    ops::dropout_counter_shift() = shift_.data();
    cuda::begin_capture();
    try {
      step_();
    } catch (...) {
      ops::dropout_counter_shift() = nullptr;
      cuda::destroy_graph(cuda::end_capture());
      throw;
    }
    graph_ = cuda::end_capture();
    ops::dropout_counter_shift() = nullptr;
    counters_per_step_ = gen_.offset() - offset_at_capture_;
    gen_.set_state(gen_.seed(), offset_at_capture_);  // the capture ran nothing
  }
#endif

  Generator& gen_;
  std::function<void()> step_;
  bool use_graph_;
  int64_t runs_ = 0;
  void* graph_ = nullptr;
  uint64_t offset_at_capture_ = 0, counters_per_step_ = 0;
  Tensor<uint64_t> shift_;
  Tensor<uint64_t> shift_host_ = Tensor<uint64_t>::zeros({1});
};

}  // namespace vit::optim
