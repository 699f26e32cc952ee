// Launchers of cuda/kernels/optimizer.cuh (declared in include/vit/cuda/optimizer.hpp):
// argument checks, then the one-thread prologue (StepInputs -> the step's
// scalars, step count advanced unless skipped) and one update launch per
// table of up to kOptimSlotsPerLaunch slots. Nothing is uploaded (the table
// is a kernel parameter) and nothing is read back; the step's scalars and
// grad_norm's per-chunk partials come from the caching allocator.
#include "common.cuh"
#include "kernels/optimizer.cuh"
#include "vit/cuda/optimizer.hpp"

namespace vit::cuda {

namespace {

/// states: how many state arrays each non-empty slot needs (0, 1 or 2).
/// needs_param: false for grad_norm, which reads gradients only.
void check_slots(const char* op, const ParamSlot* slots, int count, int states, bool needs_param) {
  VIT_CHECK(count >= 0 && (count == 0 || slots != nullptr), "cuda::", op, ": bad slot table (count ",
            count, ")");
  for (int i = 0; i < count; ++i) {
    const ParamSlot& s = slots[i];
    VIT_CHECK(s.n >= 0 && s.n <= int64_t(INT32_MAX) * kernels::kOptimChunk, "cuda::", op, ": slot ", i,
              " has bad size ", s.n);
    if (s.n == 0) continue;
    VIT_CHECK(s.grad && (!needs_param || s.param) && (states < 1 || s.state0) && (states < 2 || s.state1),
              "cuda::", op, ": slot ", i, " has a null pointer");
    VIT_CHECK(s.weight_decay >= 0, "cuda::", op, ": slot ", i, " has weight_decay ", s.weight_decay);
  }
}

void check_inputs(const char* op, const StepInputs& in) {
  VIT_CHECK(in.lr != nullptr && in.step != nullptr, "cuda::", op,
            ": StepInputs needs device pointers lr and step (grad_scale and skip may be null)");
}

/// The prologue, then every table's update: the step count advances even when
/// no slot has a gradient, as the CPU optimizer's steps() does.
template <int kStates, class Update>
void update_all(const ParamSlot* slots, int count, const Update& up, const kernels::OptimPrologue& rule,
                const StepInputs& in) {
  constexpr size_t kWords = (sizeof(kernels::OptimStepScalars) + sizeof(float) - 1) / sizeof(float);
  detail::Scratch scratch(kWords);  // 512-byte aligned block: fine for the double inside
  auto* scalars = reinterpret_cast<kernels::OptimStepScalars*>(scratch.p);
  const auto p = kernels::optim_prologue_launch();
  detail::launch(kernels::optim_prologue_kernel, p.grid, p.block, p.smem, in, rule, scalars);
  VIT_CUDA_LAUNCH_CHECK();
  const kernels::OptimStepScalars* read = scalars;
  kernels::for_each_slot_table(slots, count, [&](const kernels::OptimSlotTable& t) {
    const auto g = kernels::optim_launch(t);
    detail::launch(kernels::multi_tensor_update_kernel<kStates, Update>, g.grid, g.block, g.smem, t, up, read);
    VIT_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void adam_step(const ParamSlot* slots, int count, const AdamHyper& h, const StepInputs& in) {
  check_slots("adam_step", slots, count, 2, true);
  check_inputs("adam_step", in);
  VIT_CHECK(h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1 && h.eps >= 0,
            "cuda::adam_step: need 0 <= betas < 1 and eps >= 0, got beta1=", h.beta1, " beta2=", h.beta2,
            " eps=", h.eps);
  update_all<2>(slots, count, kernels::adam_update(h), kernels::adam_prologue(h), in);
}

void sgd_step(const ParamSlot* slots, int count, const SgdHyper& h, const StepInputs& in) {
  const bool momentum = h.momentum != 0;
  check_slots("sgd_step", slots, count, momentum ? 1 : 0, true);
  check_inputs("sgd_step", in);
  VIT_CHECK(h.momentum >= 0, "cuda::sgd_step: momentum must be >= 0, got ", h.momentum);
  VIT_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0),
            "cuda::sgd_step: nesterov needs momentum > 0 and dampening 0");
  if (momentum) update_all<1>(slots, count, kernels::sgd_update(h), kernels::sgd_prologue(), in);
  else update_all<0>(slots, count, kernels::sgd_update(h), kernels::sgd_prologue(), in);
}

void grad_norm(const ParamSlot* slots, int count, float max_norm, float* norm_out, float* coef_out) {
  check_slots("grad_norm", slots, count, 0, false);
  VIT_CHECK(norm_out && coef_out, "cuda::grad_norm: null output pointer");
  int64_t chunks = 0;
  kernels::for_each_slot_table(slots, count, [&](const kernels::OptimSlotTable& t) {
    chunks = t.first_chunk + t.chunk_start[t.count];
  });
  // No gradients at all still writes norm 0 and its coefficient.
  detail::Scratch scratch(static_cast<size_t>(chunks));  // none when chunks == 0
  float* partials = scratch.p;
  kernels::for_each_slot_table(slots, count, [&](const kernels::OptimSlotTable& t) {
    const auto g = kernels::optim_launch(t);
    detail::launch(kernels::grad_sumsq_kernel, g.grid, g.block, g.smem, t, partials);
    VIT_CUDA_LAUNCH_CHECK();
  });
  const auto f = kernels::grad_norm_finish_launch();
  detail::launch(kernels::grad_norm_finish_kernel, f.grid, f.block, f.smem, partials, chunks, max_norm,
                 norm_out, coef_out);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace vit::cuda
