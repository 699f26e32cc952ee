// Learning-rate schedules as one value type, a function of the optimizer step:
// linear warmup from warmup_start_lr, then cosine to min_lr (timm's
// CosineLRScheduler), step decay (×gamma every step_size steps), or constant.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "vit/core/error.hpp"

namespace vit::optim {

struct LrSchedule {
  enum class Kind { Cosine, Step, Constant };
  Kind kind = Kind::Cosine;
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  double warmup_start_lr = 0.0;
  int64_t total_steps = 1;  // cosine: the step at which min_lr is reached
  double min_lr = 0.0;
  int64_t step_size = 1;    // step decay: steps between decays
  double gamma = 0.1;

  /// The learning rate for optimizer step `step` (0-based).
  double at(int64_t step) const {
    if (step < warmup_steps)
      return warmup_start_lr + (base_lr - warmup_start_lr) * static_cast<double>(step) / warmup_steps;
    const int64_t t = step - warmup_steps;
    switch (kind) {
      case Kind::Cosine: {
        const int64_t span = std::max<int64_t>(total_steps - warmup_steps, 1);
        const double frac = std::min(1.0, static_cast<double>(t) / span);
        return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * frac));
      }
      case Kind::Step:
        return base_lr * std::pow(gamma, static_cast<double>(t / std::max<int64_t>(step_size, 1)));
      case Kind::Constant:
        return base_lr;
    }
    return base_lr;
  }
};

inline LrSchedule::Kind schedule_kind(const std::string& name) {
  if (name == "cosine") return LrSchedule::Kind::Cosine;
  if (name == "step") return LrSchedule::Kind::Step;
  if (name == "constant") return LrSchedule::Kind::Constant;
  VIT_CHECK(false, "unknown schedule '", name, "' (known: cosine, step, constant)");
  return LrSchedule::Kind::Constant;
}

}  // namespace vit::optim
