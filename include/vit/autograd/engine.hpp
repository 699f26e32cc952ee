// The backward pass: order the graph behind a tensor topologically, feed each
// node its output's gradient in reverse order, then free the graph (PyTorch's
// default retain_graph=False). Leaves keep and accumulate their gradients;
// a leaf with post-accumulate hooks has them run as soon as the last node
// feeding it has run, not at the end, so that work on finished gradients
// (a data-parallel allreduce) overlaps the rest of the backward pass.
#pragma once

#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "vit/autograd/node.hpp"

namespace vit::autograd {

template <class T>
void run_backward(const Tensor<T>& root, const Tensor<T>* grad_output) {
  VIT_CHECK(!root.impl()->graph_freed,
            "backward: the graph behind this tensor was already freed by an earlier backward()");
  VIT_CHECK(root.requires_grad(), "backward: tensor of shape ", root.shape(),
            " does not require grad and has no grad_fn");
  Tensor<T> seed;
  if (grad_output) {
    VIT_CHECK(grad_output->shape() == root.shape(), "backward: output gradient ",
              grad_output->shape(), " does not match output ", root.shape());
    VIT_CHECK(grad_output->device() == root.device(), "backward: output gradient on ",
              device_name(grad_output->device()), " for an output on ", device_name(root.device()));
    seed = grad_output->clone();
  } else {
    VIT_CHECK(root.numel() == 1, "backward: output of shape ", root.shape(),
              " is not a scalar; pass an output gradient of the same shape");
    seed = Tensor<T>::ones(root.shape(), root.device());
  }

  // Iterative post-order DFS: `order` ends with the root; shared_ptrs keep every
  // tensor alive while nodes are released one by one below.
  std::vector<std::shared_ptr<TensorImpl<T>>> order;
  std::unordered_set<TensorImpl<T>*> seen;
  std::vector<std::pair<std::shared_ptr<TensorImpl<T>>, size_t>> stack;
  stack.emplace_back(root.impl_ptr(), 0);
  seen.insert(root.impl());
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    Node<T>* fn = impl->grad_fn.get();
    if (fn && next < fn->inputs.size()) {
      auto child = fn->inputs[next++];
      VIT_CHECK(!child || !child->graph_freed, "backward: the graph behind an input of ", fn->name(),
                " was already freed by an earlier backward()");
      if (child && seen.insert(child.get()).second) stack.emplace_back(child, 0);
      continue;
    }
    order.push_back(impl);
    stack.pop_back();
  }

  // Leaves with hooks: how many graph edges still have to deliver their part.
  std::unordered_map<TensorImpl<T>*, int64_t> pending;
  for (const auto& impl : order)
    if (impl->grad_fn)
      for (const auto& in : impl->grad_fn->inputs)
        if (in && !in->grad_fn && !in->grad_hooks.empty()) ++pending[in.get()];
  auto delivered = [&](const std::vector<std::shared_ptr<TensorImpl<T>>>& inputs) {
    for (const auto& in : inputs) {
      if (!in) continue;
      auto it = pending.find(in.get());
      if (it == pending.end() || --it->second > 0) continue;
      const Tensor<T> leaf(in);  // copies: a hook may remove hooks
      const auto hooks = in->grad_hooks;
      for (const auto& [id, hook] : hooks) hook(leaf);
    }
  };

  {  // the root's gradient: a leaf accumulates, an op output starts fresh
    TensorImpl<T>& r = *root.impl();
    if (r.grad && !r.grad_fn) {
      Tensor<T> g(r.grad);
      detail::add_values(g.data(), seed.data(), g.data(), g.device(), g.numel());
    } else {
      r.grad = seed.impl_ptr();
    }
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl<T>& impl = **it;
    if (!impl.grad_fn) continue;  // a leaf: its gradient stays
    if (impl.grad) impl.grad_fn->backward(Tensor<T>(impl.grad));
    delivered(impl.grad_fn->inputs);
    impl.grad.reset();
    impl.grad_fn.reset();  // frees saved state as soon as it is used
    impl.graph_freed = true;
  }
}

}  // namespace vit::autograd

namespace vit {

template <class T>
void Tensor<T>::backward() const {
  autograd::run_backward<T>(*this, nullptr);
}

template <class T>
void Tensor<T>::backward(const Tensor<T>& grad_output) const {
  autograd::run_backward(*this, &grad_output);
}

}  // namespace vit
