// Multi-tensor optimizer steps and the global gradient norm on the GPU
// (cuda/optimizer.cu): the exact update rules of optim::Adam/AdamW, optim::SGD
// and optim::clip_grad_norm, over many parameters in one launch. Device
// pointers, work queued on vit::cuda::stream(), nothing read back to the host.
// Every per-step value (learning rate, clip coefficient, skip flag, step
// count) is read from the device, so a step never waits for the host and can
// be captured once as a CUDA graph and replayed.
// Declarations only: no CUDA header (the kernels include this for ParamSlot).
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// One parameter tensor: n floats of param, grad and state.
/// state0 = exp_avg (m), state1 = exp_avg_sq (v) for Adam; state0 = momentum
/// buffer for SGD (state1 unused, state0 unused without momentum).
/// weight_decay: the group's value as the user gave it (double, as the CPU
/// computes AdamW's decay 1 − lr·wd in double).
/// param_bf16: n bf16 values, or null: the parameter's low-precision copy
/// (the bf16 weights a mixed-precision forward reads), which the update kernel
/// sets to bf16(new param) (round to nearest even) in the same launch, right
/// after the fp32 update; a skipped step leaves it alone, as the parameter.
struct ParamSlot {
  float* param;
  const float* grad;
  float* state0;
  float* state1;
  int64_t n;
  double weight_decay;
  vit::bf16* param_bf16 = nullptr;
};

/// What changes from step to step, as DEVICE pointers.
struct StepInputs {
  /// This step's learning rate (the schedule's value, in double as the CPU uses it). Required.
  const double* lr;
  /// One float multiplying every gradient (grad_norm's clip coefficient), or nullptr.
  const float* grad_scale;
  /// One float; nonzero (NaN included) leaves params, state and step untouched
  /// (check_step_finite's flag). nullptr: never skip.
  const float* skip;
  /// Updates applied so far (the CPU optimizer's steps()); incremented by every
  /// step that is not skipped. Adam's bias corrections use the incremented t;
  /// SGD's first update (buffer = d) is the one that finds 0 here. Required.
  int64_t* step;
};

/// Adam / AdamW constants, in double as the user gives them; the launcher
/// rounds them to float as optim::Adam does (1 − β from the double β).
struct AdamHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool decoupled = false;  ///< AdamW: p *= 1 − lr·wd instead of g += wd·p
};

/// Updates every slot: a one-thread prologue reads in.skip and in.step,
/// increments the step and computes in double, exactly as optim::Adam on the
/// host, t = step, step_size = float(lr/(1 − β1ᵗ)), bc2_sqrt = float(√(1 − β2ᵗ)),
/// then one launch per up to kernels::kOptimSlotsPerLaunch slots (the slot
/// table a kernel parameter, nothing uploaded) applies the per-element rule,
/// each slot's AdamW decay being float(1 − lr·double(wd)).
void adam_step(const ParamSlot* slots, int count, const AdamHyper& h, const StepInputs& in);

/// SGD constants (torch.optim.SGD), in double as the user gives them.
struct SgdHyper {
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};

/// As adam_step with optim::SGD's rule: lr = float(*in.lr), the momentum buffer
/// set to d on the first update (*in.step == 0 before it), μ·buf + (1 − dampening)·d after.
void sgd_step(const ParamSlot* slots, int count, const SgdHyper& h, const StepInputs& in);

/// Global L2 norm over the gradients of `count` slots into norm_out[0], and the
/// clip coefficient coef_out[0] = min(1, max_norm / (norm + 1e-6)) (1 when
/// max_norm <= 0 or the norm is NaN). Deterministic: per-block partial sums of
/// squares, then one block sums them in a fixed order.
void grad_norm(const ParamSlot* slots, int count, float max_norm, float* norm_out, float* coef_out);

}  // namespace vit::cuda
