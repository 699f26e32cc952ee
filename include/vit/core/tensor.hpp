// Tensor<T>: a handle to shape + storage + autograd state.
// Storage is contiguous row-major; a view (reshape, narrow on dim 0) shares it
// with an offset. Copies are explicit (clone, contiguous results of permute).
// Autograd fields live here because every op needs them; the graph logic is in
// autograd/node.hpp and autograd/engine.hpp.
#pragma once

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "vit/core/bf16.hpp"
#include "vit/core/device.hpp"
#include "vit/core/device_copy.hpp"
#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/core/shape.hpp"
#include "vit/core/storage.hpp"

namespace vit {

template <class T>
struct Node;
template <class T>
class Tensor;

template <class T>
struct TensorImpl {
  std::shared_ptr<Storage<T>> storage;
  int64_t offset = 0;
  Shape shape;
  bool requires_grad = false;
  bool graph_freed = false;          // set when backward released this tensor's graph
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (same shape)
  std::shared_ptr<Node<T>> grad_fn;  // the op that produced this tensor, if recorded
  // Leaves only: run by backward() once this leaf's gradient is complete (see
  // Tensor::register_post_accumulate_grad_hook), with the id that removes each.
  std::vector<std::pair<uint64_t, std::function<void(const Tensor<T>&)>>> grad_hooks;
};

template <class T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (is_bf16_v<T>) return "bfloat16";
  else return "unknown";
}

/// A dense, row-major tensor of T with reverse-mode autograd. Ops and autograd
/// are for float, double and bf16 (bfloat16 storage, float math: the mixed
/// precision trainer's activations); integer tensors carry labels to the device
/// and double tensors metric sums, and only move, fill and copy.
template <class T>
class Tensor {
  static_assert(std::is_arithmetic_v<T> || is_bf16_v<T>,
                "Tensor<T>: T must be an arithmetic type or vit::bf16");

 public:
  using value_type = T;

  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  // ---- factories ---------------------------------------------------------
  /// Uninitialised tensor (from the caching allocator).
  static Tensor empty(const Shape& shape, Device device = Device::CPU) {
    for (int64_t d : shape) VIT_CHECK(d >= 0, "Tensor: negative dimension in shape ", shape);
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = std::make_shared<Storage<T>>(vit::numel(shape), device);
    impl->shape = shape;
    return Tensor(std::move(impl));
  }
  static Tensor full(const Shape& shape, T value, Device device = Device::CPU) {
    Tensor t = empty(shape, device);
    detail::fill_values(t.data(), device, value, t.numel());
    return t;
  }
  static Tensor zeros(const Shape& shape, Device device = Device::CPU) {
    return full(shape, T(0), device);
  }
  static Tensor ones(const Shape& shape, Device device = Device::CPU) {
    return full(shape, T(1), device);
  }
  /// [start, start+step, ...) up to end (exclusive), as torch.arange.
  static Tensor arange(double start, double end, double step = 1.0) {
    VIT_CHECK(step != 0.0, "arange: step must be non-zero");
    const auto n = static_cast<int64_t>(std::ceil((end - start) / step));
    Tensor t = empty({n > 0 ? n : 0});
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(start + step * i);
    return t;
  }
  static Tensor arange(int64_t n) { return arange(0.0, static_cast<double>(n)); }
  /// Copies numel(shape) values from a buffer.
  static Tensor from_data(const Shape& shape, const T* values) {
    Tensor t = empty(shape);
    if (t.numel() > 0) std::memcpy(t.data(), values, sizeof(T) * t.numel());  // values may be null when empty
    return t;
  }
  static Tensor from_data(const Shape& shape, const std::vector<T>& values) {
    VIT_CHECK(static_cast<int64_t>(values.size()) == vit::numel(shape), "from_data: ",
              values.size(), " values for shape ", shape);
    return from_data(shape, values.data());
  }
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen) {
    Tensor t = empty(shape);
    const uint64_t c0 = gen.reserve(t.numel());
    T* d = t.data();
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(lo + (hi - lo) * gen.uniform(c0 + i));
    return t;
  }
  static Tensor normal(const Shape& shape, double mean, double std, Generator& gen) {
    Tensor t = empty(shape);
    const uint64_t c0 = gen.reserve(t.numel());
    T* d = t.data();
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(mean + std * gen.normal(c0 + i));
    return t;
  }
  /// Normal(mean, std) redrawn until inside [a, b] (absolute bounds, as
  /// torch.nn.init.trunc_normal_ and timm use them). Redraw k of element i uses
  /// counter c0 + k·n + i, so the result does not depend on the thread count.
  static Tensor trunc_normal(const Shape& shape, double mean, double std, double a, double b,
                             Generator& gen) {
    VIT_CHECK(a < b && std > 0, "trunc_normal: need a < b and std > 0, got a=", a, " b=", b,
              " std=", std);
    constexpr uint64_t kMaxDraws = 64;
    Tensor t = empty(shape);
    const int64_t n = t.numel();
    const uint64_t c0 = gen.reserve(static_cast<uint64_t>(n) * kMaxDraws);
    T* d = t.data();
    bool exhausted = false;
#pragma omp parallel for schedule(static) if (n > 65536) reduction(|| : exhausted)
    for (int64_t i = 0; i < n; ++i) {
      uint64_t k = 0;
      double v = mean + std * gen.normal(c0 + i);
      while ((v < a || v > b) && ++k < kMaxDraws) v = mean + std * gen.normal(c0 + k * n + i);
      exhausted = exhausted || k == kMaxDraws;
      d[i] = static_cast<T>(v);
    }
    VIT_CHECK(!exhausted, "trunc_normal: bounds [", a, ",", b, "] hold too little of N(", mean,
              ",", std, ")");
    return t;
  }

  // ---- shape and data ------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const { return shape()[normalize_dim(d, shape().size(), "size")]; }
  int64_t numel() const { return vit::numel(shape()); }
  Device device() const { return checked().storage->device(); }
  T* data() const { return checked().storage->data() + impl_->offset; }
  TensorImpl<T>* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl<T>>& impl_ptr() const { return impl_; }
  /// True when both handles view the same bytes.
  bool shares_storage(const Tensor& o) const { return checked().storage == o.checked().storage; }
  long storage_use_count() const { return checked().storage.use_count(); }

  /// Element access by full index (bounds-checked; for tests and small code).
  T& at(std::initializer_list<int64_t> idx) const {
    require_cpu("at");
    VIT_CHECK(idx.size() == shape().size(), "at: ", idx.size(), " indices for shape ", shape());
    int64_t flat = 0, d = 0;
    for (int64_t i : idx) {
      VIT_CHECK(i >= 0 && i < shape()[d], "at: index ", i, " out of range for dim ", d,
                " of shape ", shape());
      flat = flat * shape()[d++] + i;
    }
    return data()[flat];
  }
  template <class... I>
  T& operator()(I... idx) const { return at({static_cast<int64_t>(idx)...}); }
  /// The single value of a one-element tensor.
  /// On a CUDA tensor this copies one value back, waiting for the GPU.
  T item() const {
    VIT_CHECK(numel() == 1, "item: tensor of shape ", shape(), " has ", numel(), " elements");
    T v;
    detail::copy_bytes(&v, Device::CPU, data(), device(), sizeof(T));
    return v;
  }
  /// The values in a host vector (copied back from the GPU for a CUDA tensor).
  std::vector<T> to_vector() const {
    std::vector<T> v(static_cast<size_t>(numel()));
    detail::copy_bytes(v.data(), Device::CPU, data(), device(), sizeof(T) * v.size());
    return v;
  }

  /// A deep copy on the same device, without autograd history.
  Tensor clone() const {
    Tensor t = empty(shape(), device());
    detail::copy_bytes(t.data(), device(), data(), device(), sizeof(T) * numel());
    return t;
  }
  /// A copy with elements converted to U (PyTorch's .float() / .double() /
  /// .bfloat16(): to bf16 rounds to nearest even); no autograd. On the CPU
  /// only; vit::to_dtype (ops/cast.hpp) is the op, on every device.
  template <class U>
  Tensor<U> to_dtype() const {
    require_cpu("to_dtype");
    Tensor<U> r = Tensor<U>::empty(shape());
    const T* s = data();
    U* d = r.data();
    const int64_t n = numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (is_bf16_v<U> || is_bf16_v<T>) d[i] = static_cast<U>(static_cast<float>(s[i]));
      else d[i] = static_cast<U>(s[i]);
    }
    return r;
  }
  /// Same data, new shape (a view; no autograd, see vit::reshape for the op).
  Tensor view_as_shape(const Shape& s) const {
    VIT_CHECK(vit::numel(s) == numel(), "view: cannot view ", shape(), " as ", s);
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = impl_->storage;
    impl->offset = impl_->offset;
    impl->shape = s;
    return Tensor(std::move(impl));
  }
  /// Rows [start, start+length) of dim 0 as a view sharing storage (no autograd).
  Tensor narrow0(int64_t start, int64_t length) const {
    VIT_CHECK(dim() >= 1 && start >= 0 && length >= 0 && start + length <= shape()[0],
              "narrow0: rows [", start, ",", start + length, ") of shape ", shape());
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = impl_->storage;
    impl->offset = impl_->offset + start * (numel() / std::max<int64_t>(shape()[0], 1));
    impl->shape = shape();
    impl->shape[0] = length;
    return Tensor(std::move(impl));
  }
  void fill_(T v) const { detail::fill_values(data(), device(), v, numel()); }
  /// Copies values from src, which may live on another device.
  void copy_from(const Tensor& src) const {
    VIT_CHECK(src.shape() == shape(), "copy_from: source ", src.shape(), " vs destination ",
              shape());
    detail::copy_bytes(data(), device(), src.data(), src.device(), sizeof(T) * numel());
  }
  /// This tensor on device d: itself if already there, else a copy without
  /// autograd history (parameters move with nn::Module::to, which keeps them leaves).
  Tensor to(Device d) const {
    if (d == device()) return *this;
    Tensor t = empty(shape(), d);
    t.copy_from(*this);
    return t;
  }
  /// Moves this tensor's values, and its gradient, to device d in place: every
  /// handle (a module's field, an optimizer's list) sees the new storage.
  /// Views of the old storage keep the old values.
  void move_to_(Device d) const {
    if (d == device()) return;
    Tensor moved = to(d);
    impl_->storage = moved.impl_->storage;
    impl_->offset = 0;
    if (impl_->grad) impl_->grad = Tensor(impl_->grad).to(d).impl_ptr();
  }

  // ---- autograd ------------------------------------------------------------
  bool requires_grad() const { return checked().requires_grad; }
  /// Marks a leaf as a parameter whose gradient backward() accumulates.
  Tensor& set_requires_grad(bool r) {
    VIT_CHECK(!checked().grad_fn, "set_requires_grad: only leaf tensors (no grad_fn) can change it");
    impl_->requires_grad = r;
    return *this;
  }
  bool is_leaf() const { return !checked().grad_fn && !impl_->graph_freed; }
  const std::shared_ptr<Node<T>>& grad_fn() const { return checked().grad_fn; }
  /// The accumulated gradient (undefined tensor before any backward).
  Tensor grad() const { return checked().grad ? Tensor(checked().grad) : Tensor(); }
  void set_grad(const Tensor& g) const { checked().grad = g.impl_; }
  /// PyTorch's register_post_accumulate_grad_hook, for a leaf that requires
  /// grad: `hook(leaf)` runs inside backward() as soon as the leaf's gradient
  /// is complete (every node that feeds it has run), while the rest of the
  /// graph is still being differentiated; data-parallel training starts
  /// reducing gradients there. Returns the id remove_post_accumulate_grad_hook takes.
  uint64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
    VIT_CHECK(is_leaf() && requires_grad(),
              "register_post_accumulate_grad_hook: only a leaf that requires grad has one");
    static std::atomic<uint64_t> next_id{0};
    const uint64_t id = ++next_id;
    impl_->grad_hooks.emplace_back(id, std::move(hook));
    return id;
  }
  void remove_post_accumulate_grad_hook(uint64_t id) const {
    auto& hooks = checked().grad_hooks;
    std::erase_if(hooks, [id](const auto& h) { return h.first == id; });
  }
  /// Zeroes the gradient in place (keeps the buffer, so steady state allocates nothing).
  void zero_grad() const {
    if (checked().grad) Tensor(impl_->grad).fill_(T(0));
  }
  /// Same storage, no history, requires_grad false.
  Tensor detach() const {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = checked().storage;
    impl->offset = impl_->offset;
    impl->shape = impl_->shape;
    return Tensor(std::move(impl));
  }
  /// Reverse-mode differentiation from this tensor; see autograd/engine.hpp.
  void backward() const;
  void backward(const Tensor& grad_output) const;

 private:
  TensorImpl<T>& checked() const {
    VIT_CHECK(impl_ != nullptr, "Tensor: use of an undefined tensor");
    return *impl_;
  }
  void require_cpu(const char* what) const {
    VIT_CHECK(device() == Device::CPU, what, ": tensor of shape ", shape(),
              " is on cuda; copy it with .to(Device::CPU) first");
  }
  std::shared_ptr<TensorImpl<T>> impl_;
};

/// Prints "Tensor(shape=(2,3), dtype=float32)" and up to 6 values per row.
template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  if (t.device() != Device::CPU) {
    os << "Tensor(device=" << device_name(t.device()) << ") ";
    return os << t.to(Device::CPU);
  }
  os << "Tensor(shape=" << t.shape() << ", dtype=" << dtype_name<T>();
  if (t.requires_grad()) os << ", requires_grad";
  os << ")\n";
  const int64_t cols = t.dim() == 0 ? 1 : t.shape().back();
  const int64_t rows = cols == 0 ? 0 : t.numel() / cols;
  std::ios_base::fmtflags f = os.flags();
  os << std::setprecision(6);
  for (int64_t r = 0; r < rows && r < 8; ++r) {
    os << "  [";
    for (int64_t c = 0; c < cols && c < 6; ++c) os << (c ? ", " : "") << t.data()[r * cols + c];
    os << (cols > 6 ? ", ...]\n" : "]\n");
  }
  if (rows > 8) os << "  ...\n";
  os.flags(f);
  return os;
}

template <class T>
std::string to_string(const Tensor<T>& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

using TensorF = Tensor<float>;
using TensorD = Tensor<double>;
using TensorBF16 = Tensor<bf16>;

}  // namespace vit
