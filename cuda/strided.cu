// Launchers of cuda/kernels/strided.cuh (declared in include/vit/cuda/strided.hpp):
// layout checks, coalescing, the flat kernels of elementwise.cuh when the
// operands turn out contiguous, one stream, no host sync. A size-0 dim
// launches nothing; 0 dims is one (scalar) element. float and bf16 share each
// template (bf16: fp32 math, one rounding per output; permutes and unscaled
// copies move the elements as they are).
#include "common.cuh"
#include "kernels/strided.cuh"
#include "vit/cuda/strided.hpp"

namespace vit::cuda {
namespace {

void check_sizes(const char* op, int ndim, const int64_t* size) {
  VIT_CHECK(ndim >= 0 && ndim <= kMaxDims, "cuda::", op, ": ", ndim, " dims (at most ", kMaxDims,
            ")");
  for (int d = 0; d < ndim; ++d)
    VIT_CHECK(size[d] >= 0, "cuda::", op, ": negative size ", size[d], " of dim ", d);
}

void check_strides(const char* op, const StridedLayout& l, bool b_used) {
  for (int d = 0; d < l.ndim; ++d)
    VIT_CHECK(l.stride_a[d] >= 0 && (!b_used || l.stride_b[d] >= 0), "cuda::", op,
              ": negative stride in dim ", d);
}

template <class Op, class T>
void binary(const T* a, const T* b, T* out, const StridedLayout& layout, Op op) {
  const StridedLayout c = kernels::strided_coalesce(layout);
  const int64_t n = kernels::strided_numel(c);
  if (kernels::strided_is_flat(c, true)) {
    const auto g = kernels::map_launch<T>(n);
    detail::launch(kernels::ew_binary_kernel<Op, T, T, T>, g.grid, g.block, g.smem, a, b, out, n,
                   op);
  } else {
    const auto g = kernels::strided_launch(n);
    detail::launch(kernels::strided_binary_kernel<Op, T>, g.grid, g.block, g.smem, a, b, out, c, n,
                   op);
  }
  VIT_CUDA_LAUNCH_CHECK();
}

/// out = scale · a through the layout (stride_b ignored); scale 1 copies the
/// elements as they are (a device memcpy when the layout is flat).
template <class T>
void copy(const T* a, T* out, StridedLayout layout, float scale) {
  for (int d = 0; d < layout.ndim; ++d) layout.stride_b[d] = 0;
  const StridedLayout c = kernels::strided_coalesce(layout);
  const int64_t n = kernels::strided_numel(c);
  if (kernels::strided_is_flat(c, false)) {
    if (scale == 1.f) {
      if (out != a) copy_on_device(out, a, static_cast<size_t>(n) * sizeof(T));
      return;
    }
    const auto g = kernels::map_launch<T>(n);
    detail::launch(kernels::ew_unary_kernel<kernels::EwScale, T, T>, g.grid, g.block, g.smem, a,
                   out, n, kernels::EwScale{scale});
  } else {
    const auto g = kernels::strided_launch(n);
    if (scale == 1.f)
      detail::launch(kernels::strided_copy_kernel_t<T, false>, g.grid, g.block, g.smem, a, out, c,
                     n, scale);
    else
      detail::launch(kernels::strided_copy_kernel_t<T, true>, g.grid, g.block, g.smem, a, out, c, n,
                     scale);
  }
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void broadcast_binary_impl(BinaryKind op, const T* a, const T* b, T* out,
                           const StridedLayout& layout) {
  check_sizes("broadcast_binary", layout.ndim, layout.size);
  check_strides("broadcast_binary", layout, true);
  if (kernels::strided_numel(layout) == 0) return;
  VIT_CHECK(a && b && out, "cuda::broadcast_binary: null pointer");
  switch (op) {
    case BinaryKind::Add:
      return binary(a, b, out, layout, kernels::EwAdd{});
    case BinaryKind::Sub:
      return binary(a, b, out, layout, kernels::EwSub{});
    case BinaryKind::Mul:
      return binary(a, b, out, layout, kernels::EwMul{});
  }
  VIT_CHECK(false, "cuda::broadcast_binary: unknown op ", static_cast<int>(op));
}

template <class T>
void broadcast_copy_impl(const T* a, T* out, const StridedLayout& layout, float scale) {
  check_sizes("broadcast_copy", layout.ndim, layout.size);
  check_strides("broadcast_copy", layout, false);
  if (kernels::strided_numel(layout) == 0) return;
  VIT_CHECK(a && out, "cuda::broadcast_copy: null pointer");
  copy(a, out, layout, scale);
}

template <class T>
void reduce_sum_impl(const T* x, T* out, int ndim, const int64_t* x_size, const bool* keep,
                     float scale) {
  check_sizes("reduce_sum", ndim, x_size);
  VIT_CHECK(ndim == 0 || (x_size && keep), "cuda::reduce_sum: null sizes or keep flags");
  const kernels::ReducePlan p = kernels::reduce_plan(ndim, x_size, keep);
  if (p.n_out == 0) return;
  VIT_CHECK(out && (x || p.n_reduced == 0), "cuda::reduce_sum: null pointer");
  detail::launch(kernels::reduce_sum_kernel_t<T>, p.grid, p.block, 0, x, out, p.kept, p.n_out,
                 p.reduced, p.n_reduced, scale);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void permute_impl(const T* x, T* out, int ndim, const int64_t* x_size, const int* perm) {
  check_sizes("permute", ndim, x_size);
  VIT_CHECK(ndim == 0 || (x_size && perm), "cuda::permute: null sizes or perm");
  StridedLayout l;
  VIT_CHECK(kernels::permute_layout(ndim, x_size, perm, l),
            "cuda::permute: perm is not a permutation of ", ndim, " dims");
  if (kernels::strided_numel(l) == 0) return;
  VIT_CHECK(x && out, "cuda::permute: null pointer");
  copy(x, out, l, 1.f);
}

}  // namespace

void broadcast_binary(BinaryKind op, const float* a, const float* b, float* out,
                      const StridedLayout& layout) {
  broadcast_binary_impl(op, a, b, out, layout);
}
void broadcast_binary(BinaryKind op, const bf16* a, const bf16* b, bf16* out,
                      const StridedLayout& layout) {
  broadcast_binary_impl(op, a, b, out, layout);
}

void broadcast_copy(const float* a, float* out, const StridedLayout& layout, float scale) {
  broadcast_copy_impl(a, out, layout, scale);
}
void broadcast_copy(const bf16* a, bf16* out, const StridedLayout& layout, float scale) {
  broadcast_copy_impl(a, out, layout, scale);
}

void reduce_sum(const float* x, float* out, int ndim, const int64_t* x_size, const bool* keep,
                float scale) {
  reduce_sum_impl(x, out, ndim, x_size, keep, scale);
}
void reduce_sum(const bf16* x, bf16* out, int ndim, const int64_t* x_size, const bool* keep,
                float scale) {
  reduce_sum_impl(x, out, ndim, x_size, keep, scale);
}

void permute(const float* x, float* out, int ndim, const int64_t* x_size, const int* perm) {
  permute_impl(x, out, ndim, x_size, perm);
}
void permute(const bf16* x, bf16* out, int ndim, const int64_t* x_size, const int* perm) {
  permute_impl(x, out, ndim, x_size, perm);
}

}  // namespace vit::cuda
