// Node<T>: one recorded op in the define-by-run graph. It holds the inputs that
// need gradients and whatever the forward saved; backward(dout) turns the
// output's gradient into input gradients.
//
// Gradient plumbing, so backward code stays short and allocation-free:
//  - accumulate(i, g): input i's gradient becomes g (no copy) or gets += g.
//    A gradient buffer shared with another tensor is never written in place.
//  - grad_buffer(i): input i's gradient tensor for kernels that accumulate
//    straight into it (weight GEMMs with beta = 1); zero-filled when new.
#pragma once

#include <memory>
#include <vector>

#include "vit/core/tensor.hpp"

namespace vit {

/// Whether ops record graph nodes on this thread (see NoGradGuard).
struct GradMode {
  static bool& enabled_flag() {
    thread_local bool enabled = true;
    return enabled;
  }
  static bool is_enabled() { return enabled_flag(); }
  static void set_enabled(bool e) { enabled_flag() = e; }
};

/// Turns graph recording off for its lifetime (evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

template <class T>
struct Node {
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;  // null where no gradient is needed

  virtual ~Node() = default;
  virtual const char* name() const = 0;
  virtual void backward(const Tensor<T>& dout) = 0;

  bool needs_grad(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  const Shape& input_shape(size_t i) const { return inputs[i]->shape; }

  void accumulate(size_t i, const Tensor<T>& g) {
    if (!needs_grad(i)) return;
    TensorImpl<T>& in = *inputs[i];
    VIT_CHECK(g.shape() == in.shape, name(), " backward: gradient ", g.shape(), " for input ", i,
              " of shape ", in.shape);
    if (!in.grad) {
      // Our own handle, so storage_use_count() sees every sharer; a leaf keeps its
      // gradient past backward and must own the buffer (as PyTorch's AccumulateGrad).
      const bool sole = g.impl_ptr().use_count() == 1 && g.storage_use_count() == 1;
      in.grad = (!in.grad_fn && !sole) ? g.clone().impl_ptr() : g.detach().impl_ptr();
      return;
    }
    Tensor<T> cur(in.grad);
    VIT_CHECK(g.device() == cur.device(), name(), " backward: gradient on ", device_name(g.device()),
              " for an input whose gradient is on ", device_name(cur.device()));
    if (cur.storage_use_count() > 1) {  // shared: add out of place
      Tensor<T> sum = Tensor<T>::empty(in.shape, cur.device());
      detail::add_values(cur.data(), g.data(), sum.data(), cur.device(), cur.numel());
      in.grad = sum.impl_ptr();
    } else {
      detail::add_values(cur.data(), g.data(), cur.data(), cur.device(), cur.numel());
    }
  }
  Tensor<T> grad_buffer(size_t i) {
    TensorImpl<T>& in = *inputs[i];
    if (!in.grad) {
      in.grad = Tensor<T>::zeros(in.shape, in.storage->device()).impl_ptr();
    } else if (Tensor<T>(in.grad).storage_use_count() > 1) {
      in.grad = Tensor<T>(in.grad).clone().impl_ptr();
    }
    return Tensor<T>(in.grad);
  }
};

namespace autograd {

/// True when an op on these tensors must record a node.
template <class T, class... Ts>
bool needs_grad(const Tensor<T>& first, const Ts&... rest) {
  if (!GradMode::is_enabled()) return false;
  bool any = first.defined() && first.requires_grad();
  ((any = any || (rest.defined() && rest.requires_grad())), ...);
  return any;
}

/// Makes `node` the grad_fn of `out`, wiring the inputs that require grad
/// (a range of const Tensor<T>*: a brace list, or a vector for variadic ops).
template <class T, class NodeT, class Inputs>
void attach_range(Tensor<T>& out, std::shared_ptr<NodeT> node, const Inputs& inputs) {
  for (const Tensor<T>* t : inputs)
    node->inputs.push_back(t && t->defined() && t->requires_grad() ? t->impl_ptr() : nullptr);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}
template <class T, class NodeT>
void attach(Tensor<T>& out, std::shared_ptr<NodeT> node,
            std::initializer_list<const Tensor<T>*> inputs) {
  attach_range(out, std::move(node), inputs);
}

}  // namespace autograd
}  // namespace vit
