// GradientReducer: averages parameter gradients over the ranks of a job
// during backward, as PyTorch DDP's Reducer does. Parameters are grouped, in
// reverse order (the order backward finishes them), into buckets of about
// 25 MB, the first of about 1 MB so that the sums start early (DDP's
// bucket_cap_mb and first-bucket size); a post-accumulate hook copies each finished gradient into its
// bucket's flat buffer, and a bucket whose gradients are all in is handed to
// the communicator at once (buckets start strictly in order, the same on every
// rank, as collectives require), so the sums run while backward goes on.
// finish() starts what is left, waits, and writes sum/size back into every
// gradient: each rank then holds the same bits, so clipping, the finite check
// and the update take the same decision everywhere.
//
// With gradient accumulation, set_sync(false) for the micro-steps whose
// gradients only add up locally (DDP's no_sync) and set_sync(true) for the
// last. The buffers are allocated once; a step allocates nothing.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "vit/core/device_copy.hpp"
#include "vit/core/tensor.hpp"
#include "vit/dist/communicator.hpp"
#include "vit/ops/elementwise.hpp"

namespace vit::dist {

template <class T>
class GradientReducer {
 public:
  /// `params`: the parameters whose gradients are averaged, in model order,
  /// all on one device. bucket_bytes: PyTorch DDP's bucket_cap_mb (25 MB);
  /// first_bucket_bytes: the cap of the first bucket (DDP's 1 MB).
  GradientReducer(Communicator& comm, std::vector<Tensor<T>> params,
                  size_t bucket_bytes = size_t{25} << 20, size_t first_bucket_bytes = size_t{1} << 20)
      : comm_(comm), params_(std::move(params)) {
    VIT_CHECK(!params_.empty(), "GradientReducer: no parameters");
    device_ = params_.front().device();
    slots_.resize(params_.size());
    // Reverse model order; a bucket closes once it holds bucket_bytes.
    for (size_t k = params_.size(); k-- > 0;) {
      const Tensor<T>& p = params_[k];
      VIT_CHECK(p.device() == device_ && p.requires_grad(), "GradientReducer: parameter ", k, " ",
                p.shape(), " is on ", device_name(p.device()), " or needs no gradient");
      const size_t cap = buckets_.size() == 1 ? std::min(first_bucket_bytes, bucket_bytes)
                                              : bucket_bytes;
      if (buckets_.empty() || buckets_.back().numel * sizeof(T) >= cap) buckets_.emplace_back();
      Bucket& b = buckets_.back();
      slots_[k] = {buckets_.size() - 1, b.numel};
      b.params.push_back(k);
      b.numel += p.numel();
    }
    for (Bucket& b : buckets_) b.flat = Tensor<T>::empty({b.numel}, device_);
    for (size_t k = 0; k < params_.size(); ++k)
      hook_ids_.push_back(params_[k].register_post_accumulate_grad_hook(
          [this, k](const Tensor<T>&) { ready(k); }));
    reset();
  }
  ~GradientReducer() {
    for (size_t k = 0; k < params_.size(); ++k)
      params_[k].remove_post_accumulate_grad_hook(hook_ids_[k]);
  }
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Whether the next backward's gradients are reduced (DDP's no_sync is false).
  void set_sync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }

  /// After a synced backward: starts the buckets still waiting (a parameter
  /// that got no gradient counts as zero and gets one), waits for all, and
  /// makes every gradient the mean over ranks. Without sync, does nothing.
  void finish() {
    if (!sync_) return;
    for (size_t k = 0; k < params_.size(); ++k)
      if (!slots_[k].ready) ready(k);
    const auto t0 = std::chrono::steady_clock::now();
    comm_.wait_all();
    last_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const T inv = T(1) / static_cast<T>(comm_.size());
    for (size_t k = 0; k < params_.size(); ++k) {
      const Tensor<T>& p = params_[k];
      Tensor<T> g = p.grad();
      if (!g.defined()) {
        g = Tensor<T>::empty(p.shape(), device_);
        p.set_grad(g);
      }
      const Bucket& b = buckets_[slots_[k].bucket];
      ops::scale_forward(device_, b.flat.data() + slots_[k].offset, inv, g.data(), g.numel());
    }
    reset();
  }

  /// Seconds the last finish() waited for sums still running: the share of
  /// communication that backward did not hide.
  double last_wait_seconds() const { return last_wait_s_; }
  size_t bucket_count() const { return buckets_.size(); }
  /// Parameter indices (model order) of bucket i, in the order they fill it.
  const std::vector<size_t>& bucket_params(size_t i) const { return buckets_.at(i).params; }

 private:
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer
    bool ready = false;
  };
  struct Bucket {
    std::vector<size_t> params;
    int64_t numel = 0;
    size_t filled = 0;  // parameters in so far this step
    Tensor<T> flat;
  };

  void reset() {
    for (Slot& s : slots_) s.ready = false;
    for (Bucket& b : buckets_) b.filled = 0;
    next_to_start_ = 0;
  }

  // Parameter k's gradient is complete: into its bucket, and start every
  // bucket that is full, in order.
  void ready(size_t k) {
    if (!sync_) return;
    Slot& s = slots_[k];
    VIT_CHECK(!s.ready, "GradientReducer: parameter ", k, " ", params_[k].shape(),
              " got its gradient twice before finish(); call finish() after each synced "
              "backward, and set_sync(false) for accumulation steps");
    s.ready = true;
    Bucket& b = buckets_[s.bucket];
    T* dst = b.flat.data() + s.offset;
    const Tensor<T> g = params_[k].grad();
    const size_t bytes = static_cast<size_t>(params_[k].numel()) * sizeof(T);  // 0: null is fine
    if (g.defined()) detail::copy_bytes(dst, device_, g.data(), device_, bytes);
    else detail::fill_values(dst, device_, T(0), params_[k].numel());
    ++b.filled;
    while (next_to_start_ < buckets_.size() &&
           buckets_[next_to_start_].filled == buckets_[next_to_start_].params.size()) {
      Bucket& full = buckets_[next_to_start_++];
      comm_.start_allreduce_sum(full.flat.data(), full.numel, dtype_of<T>(), device_);
    }
    comm_.progress();
  }

  Communicator& comm_;
  std::vector<Tensor<T>> params_;
  Device device_ = Device::CPU;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<uint64_t> hook_ids_;
  size_t next_to_start_ = 0;
  bool sync_ = true;
  double last_wait_s_ = 0;
};

}  // namespace vit::dist
