// Multi-tensor optimizer steps and the global gradient norm on the GPU
// (cuda/optimizer.cu): the exact update rules of optim::Adam/AdamW, optim::SGD
// and optim::clip_grad_norm, over many parameters in one launch. Device
// pointers, work queued on vit::cuda::stream(), nothing read back to the host.
// Declarations only: no CUDA header (the kernels include this for ParamSlot).
#pragma once

#include <cstdint>

namespace vit::cuda {

/// One parameter tensor: n floats of param, grad and state.
/// state0 = exp_avg (m), state1 = exp_avg_sq (v) for Adam; state0 = momentum
/// buffer for SGD (state1 unused, state0 unused without momentum).
struct ParamSlot {
  float* param;
  const float* grad;
  float* state0;
  float* state1;
  int64_t n;
  float weight_decay;
};

struct AdamHyper {
  float lr, beta1, beta2, eps;
  float step_size;              // lr/(1-beta1^t)
  float bias_correction2_sqrt;  // sqrt(1-beta2^t)
  bool decoupled;               // AdamW
  // 1 - beta computed in double from the user's double betas, as the CPU does
  // (1 - 0.999f in float is 1.3e-5 relative away from float(1 - 0.999)).
  float one_minus_beta1, one_minus_beta2;
};

/// Updates every slot: one launch per up to kernels::kOptimSlotsPerLaunch slots,
/// the slot table passed by value as a kernel parameter (nothing uploaded).
/// grad_scale: device pointer to one float multiplying every gradient (the
/// clip coefficient), or nullptr.
void adam_step(const ParamSlot* slots, int count, const AdamHyper& h, const float* grad_scale);

struct SgdHyper {
  float lr, momentum, dampening;
  bool nesterov;
  bool first_step;  // buffer = d on the first step
  float one_minus_dampening;  // from the double option, as the CPU
};
void sgd_step(const ParamSlot* slots, int count, const SgdHyper& h, const float* grad_scale);

/// Global L2 norm over the gradients of `count` slots into norm_out[0], and the
/// clip coefficient coef_out[0] = min(1, max_norm / (norm + 1e-6)) (1 when
/// max_norm <= 0 or the norm is NaN). Deterministic: per-block partial sums of
/// squares, then one block sums them in a fixed order.
void grad_norm(const ParamSlot* slots, int count, float max_norm, float* norm_out, float* coef_out);

}  // namespace vit::cuda
