// Optimizer<T>: parameters in groups (each with its weight decay), a learning
// rate the schedule sets each step, and per-parameter state reachable by name
// ("blocks.0.attn.qkv.weight.exp_avg") so a checkpoint can save and restore it.
// What changes from step to step (the learning rate, the clip scale, the skip
// flag of a non-finite step, the count of updates applied) lives beside the
// parameters, on their device, where the update kernels read it: a step on
// the GPU never waits for the host and can be captured as a CUDA graph.
// Mixed precision: set_low_precision_copies gives each parameter a bf16 copy
// (the weights a bf16 forward reads), which step() refreshes in the update
// itself (the same kernel launch on CUDA, the same loop on the CPU).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vit/core/bf16.hpp"
#include "vit/core/tensor.hpp"
#include "vit/cuda/runtime.hpp"
#include "vit/ops/common.hpp"

namespace vit::optim {

template <class T>
struct ParamGroup {
  std::vector<std::pair<std::string, Tensor<T>>> params;
  double weight_decay = 0.0;
};

/// timm's default grouping: decay on weights of rank >= 2, none on biases, norms,
/// pos_embed and cls_token.
template <class T>
std::vector<ParamGroup<T>> default_param_groups(
    const std::vector<std::pair<std::string, Tensor<T>>>& named, double weight_decay) {
  ParamGroup<T> decay{{}, weight_decay}, no_decay{{}, 0.0};
  auto ends_with = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (const auto& [name, p] : named) {
    const bool skip = p.dim() < 2 || ends_with(name, "pos_embed") || ends_with(name, "cls_token");
    (skip ? no_decay : decay).params.emplace_back(name, p);
  }
  std::vector<ParamGroup<T>> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

/// One step's inputs as the update kernels read them, on the parameters'
/// device: lr (double), grad_scale (one T, or null), skip (one float: nonzero
/// leaves everything untouched, or null), step (updates applied, incremented
/// by each update that is not skipped).
template <class T>
struct StepState {
  const double* lr;
  const T* grad_scale;
  const float* skip;
  int64_t* step;
};

template <class T>
class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup<T>> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
    VIT_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got ", lr);
    for (auto& g : groups_) {
      VIT_CHECK(g.weight_decay >= 0, "optimizer: weight_decay must be >= 0, got ", g.weight_decay);
      for (auto& [name, p] : g.params)
        VIT_CHECK(p.requires_grad(), "optimizer: parameter '", name, "' does not require grad");
    }
  }
  virtual ~Optimizer() = default;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// The per-parameter state this optimizer keeps ("exp_avg", ...).
  virtual std::vector<std::string> state_names() const = 0;
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& [n, p] : g.params) p.zero_grad();
  }
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  /// One element on the parameters' device that every gradient is multiplied
  /// by in step() (clip_grad_norm_'s coefficient: clipping without a pass over
  /// the gradients and without a host round trip); undefined for none.
  void set_grad_scale(const Tensor<T>& s) { grad_scale_ = s; }
  /// One float on the parameters' device: while it is nonzero, step() leaves
  /// parameters, state and the update count as they are (StepGuard's flag
  /// for a non-finite loss or gradient); undefined for never.
  void set_skip_flag(const Tensor<float>& f) { skip_ = f; }
  /// Queues this step's learning rate to the parameters' device, where the
  /// update reads it. step() does it itself, except inside a CUDA graph
  /// capture: a replayed step's owner calls it before each replay.
  void stage_lr() {
    const Device dev = params_device();
    if (!lr_buffer_.defined() || lr_buffer_.device() != dev) lr_buffer_ = Tensor<double>::empty({1}, dev);
    if (dev == Device::CPU) {
      lr_buffer_.data()[0] = lr_;
      return;
    }
    lr_host_.data()[0] = lr_;
    lr_buffer_.copy_from(lr_host_);
  }
  /// Updates applied so far (Adam's t). On CUDA this reads the device count: it waits.
  int64_t steps() const { return step_count_.defined() ? step_count_.item() : 0; }
  void set_steps(int64_t s) {
    step_count_ = Tensor<int64_t>::full({1}, s).to(params_device());
  }
  const std::vector<ParamGroup<T>>& groups() const { return groups_; }

  /// bf16 copies of the parameters, one per parameter in the groups' order
  /// (group by group), each of its parameter's shape and device. From then on
  /// every step() writes copy = bf16(new parameter) (round to nearest even,
  /// bit for bit what to_dtype<bf16> gives) for each parameter it updates, in
  /// the update itself; a skipped step (the skip flag) leaves them as they
  /// are, like the parameters. It does not write them now: the caller fills
  /// them first (to_dtype), and again after changing parameters outside
  /// step() (loading a checkpoint). An empty vector turns the copies off.
  void set_low_precision_copies(std::vector<Tensor<bf16>> copies) {
    if (!copies.empty()) {
      size_t k = 0;
      for (const auto& g : groups_)
        for (const auto& [name, p] : g.params) {
          VIT_CHECK(k < copies.size(), "optimizer: ", copies.size(),
                    " low-precision copies for more parameters (first without one: '", name, "')");
          const Tensor<bf16>& c = copies[k++];
          VIT_CHECK(c.defined() && c.shape() == p.shape(), "optimizer: the low-precision copy of '", name,
                    "' has shape ", c.defined() ? c.shape() : Shape{}, ", the parameter ", p.shape());
          VIT_CHECK(c.device() == p.device(), "optimizer: the low-precision copy of '", name, "' is on ",
                    device_name(c.device()), ", the parameter on ", device_name(p.device()));
        }
      VIT_CHECK(k == copies.size(), "optimizer: ", copies.size(), " low-precision copies for ", k,
                " parameters");
    }
    low_copies_ = std::move(copies);
  }
  const std::vector<Tensor<bf16>>& low_precision_copies() const { return low_copies_; }

  /// Every state tensor as "<param name>.<state name>" (shares storage).
  std::vector<std::pair<std::string, Tensor<T>>> named_state() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    for (const auto& [key, t] : state_) out.emplace_back(key, t);
    return out;
  }
  /// Restores state saved by named_state(); shapes are checked, unknown keys rejected.
  void load_named_state(const std::vector<std::pair<std::string, Tensor<T>>>& saved) {
    for (const auto& [key, t] : saved) {
      const Tensor<T>* param = find_param_for_state(key);
      VIT_CHECK(param, "optimizer state: '", key, "' does not belong to any parameter");
      const std::string what = key.substr(key.rfind('.') + 1);
      bool known = false;
      for (const auto& n : state_names()) known = known || n == what;
      VIT_CHECK(known, "optimizer state: '", key, "': this optimizer keeps no state named '", what, "'");
      VIT_CHECK(t.shape() == param->shape(), "optimizer state: '", key, "' has shape ", t.shape(),
                ", parameter has ", param->shape());
      Tensor<T>& dst = state_[key];
      if (!dst.defined()) dst = Tensor<T>::empty(t.shape(), param->device());
      dst.copy_from(t);
    }
  }

 protected:
  /// The named state tensor of a parameter, zero-filled the first time.
  Tensor<T>& state(const std::string& param_name, const char* what, const Shape& shape,
                   Device device = Device::CPU) {
    Tensor<T>& t = state_[param_name + "." + what];
    if (!t.defined()) t = Tensor<T>::zeros(shape, device);
    VIT_CHECK(t.device() == device, "optimizer: state '", param_name, ".", what, "' is on ",
              device_name(t.device()), " but its parameter is on ", device_name(device),
              " (make the optimizer after moving the model with Module::to)");
    return t;
  }
  /// The device of the parameters; all must share it (a model moved with Module::to).
  Device params_device() const {
    Device d = Device::CPU;
    bool first = true;
    for (const auto& g : groups_)
      for (const auto& [name, p] : g.params) {
        VIT_CHECK(first || p.device() == d, "optimizer: parameter '", name, "' is on ",
                  device_name(p.device()), " but others are on ", device_name(d));
        d = p.device();
        first = false;
      }
    return d;
  }

  static bool capturing() {
#if VIT_WITH_CUDA
    return cuda::capturing();
#else
    return false;
#endif
  }
  /// The low-precision copy of parameter `index` (in the groups' order), or
  /// null without copies; it must still be on `dev` (the parameters' device).
  bf16* low_copy(size_t index, Device dev) const {
    if (low_copies_.empty()) return nullptr;
    const Tensor<bf16>& c = low_copies_[index];
    VIT_CHECK(c.device() == dev, "optimizer: a low-precision copy is on ", device_name(c.device()),
              " but the parameters are on ", device_name(dev), " (set the copies again after Module::to)");
    return c.data();
  }

  /// The step's inputs, on `dev`: the learning rate is queued there (no wait).
  StepState<T> step_state(Device dev) {
    if (!step_count_.defined() || step_count_.device() != dev)
      step_count_ = Tensor<int64_t>::zeros({1}, dev);
    if (!capturing()) stage_lr();  // a captured step's owner stages it before each replay
    VIT_CHECK(!grad_scale_.defined() || grad_scale_.device() == dev, "optimizer: grad scale on ",
              device_name(grad_scale_.device()), ", parameters on ", device_name(dev));
    VIT_CHECK(!skip_.defined() || skip_.device() == dev, "optimizer: skip flag on ",
              device_name(skip_.device()), ", parameters on ", device_name(dev));
    return {lr_buffer_.data(), grad_scale_.defined() ? grad_scale_.data() : nullptr,
            skip_.defined() ? skip_.data() : nullptr, step_count_.data()};
  }

  std::vector<ParamGroup<T>> groups_;
  double lr_;
  Tensor<T> grad_scale_;
  Tensor<float> skip_;
  Tensor<int64_t> step_count_;  // on the parameters' device
  Tensor<double> lr_buffer_;    // this step's lr, on the parameters' device
  Tensor<double> lr_host_ = Tensor<double>::empty({1});
  std::vector<Tensor<bf16>> low_copies_;  // empty, or one per parameter

 private:
  const Tensor<T>* find_param_for_state(const std::string& key) const {
    for (const auto& g : groups_)
      for (const auto& [name, p] : g.params)
        if (key.size() > name.size() + 1 && key.compare(0, name.size(), name) == 0 &&
            key[name.size()] == '.' && key.find('.', name.size() + 1) == std::string::npos)
          return &p;
    return nullptr;
  }
  std::map<std::string, Tensor<T>> state_;
};

}  // namespace vit::optim
