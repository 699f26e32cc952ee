// The multi-tensor optimizer kernels' bf16 weight copies (ParamSlot::param_bf16)
// under the CPU stand-in: after each step every copy equals bf16(new fp32
// param) bit for bit (the 8-byte packed store, the 2-byte stores of a copy
// that is not 8-byte aligned, and the scalar path of misaligned floats), a
// skipped step (skip flag 1 or NaN) leaves the copies untouched, the fp32
// params and state are bitwise those of the same launches without copies, and
// the copies equal the CPU optimizer's (optim::AdamW with
// set_low_precision_copies, itself bitwise the kernel's fp32 update).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "emu_check.hpp"
#include "kernels/optimizer.cuh"

using namespace vit;
namespace k = vit::cuda::kernels;
using vit::cuda::ParamSlot;
using vit::cuda::StepInputs;
using vit::test::poisoned;
using vit::test::random_vector;

namespace {

/// T values whose first one sits `offset` elements past a 16-byte boundary.
template <class T>
struct Buffer {
  std::vector<T> storage;
  int offset;
  Buffer(const std::vector<T>& v, int off) : storage(v.size() + 8), offset(off) {
    std::copy(v.begin(), v.end(), storage.begin() + off);
  }
  T* data() { return storage.data() + offset; }
  const T* data() const { return storage.data() + offset; }
};

/// One model's device arrays: params, grads, two states and (optionally) copies.
struct Model {
  std::vector<Buffer<float>> w, g, s0, s1;
  std::vector<Buffer<bf16>> copy;
  std::vector<ParamSlot> slots;
  Model(const std::vector<int64_t>& sizes, const std::vector<double>& wds, const std::vector<int>& float_off,
        const std::vector<int>& copy_off, bool copies) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t n = sizes[i];
      w.emplace_back(random_vector(n, 100 + i), float_off[i]);
      g.emplace_back(std::vector<float>(n, 0.f), float_off[i]);
      s0.emplace_back(std::vector<float>(n, 0.f), float_off[i]);
      s1.emplace_back(std::vector<float>(n, 0.f), float_off[i]);
      copy.emplace_back(std::vector<bf16>(n, bf16::from_bits(0x7fa5)), copy_off[i]);  // poisoned
    }
    for (size_t i = 0; i < sizes.size(); ++i)
      slots.push_back({w[i].data(), g[i].data(), s0[i].data(), s1[i].data(), sizes[i], wds[i],
                       copies ? copy[i].data() : nullptr});
  }
};

struct DeviceStep {
  double lr = 0;
  float skip = 0.f;
  int64_t step = 0;
  k::OptimStepScalars scalars{};
};

/// What cuda::adam_step / sgd_step queue: the prologue, then each table's update.
template <int kStates, class Update>
void emu_step(const std::vector<ParamSlot>& slots, const Update& up, const k::OptimPrologue& rule,
              DeviceStep& dev, unsigned block_threads) {
  const StepInputs in{&dev.lr, nullptr, &dev.skip, &dev.step};
  const auto p = k::optim_prologue_launch();
  vit_emu::launch(p.grid, p.block, p.smem, k::optim_prologue_kernel, in, rule, &dev.scalars);
  const k::OptimStepScalars* sc = &dev.scalars;
  k::for_each_slot_table(slots.data(), static_cast<int>(slots.size()), [&](const k::OptimSlotTable& t) {
    const auto lg = k::optim_launch(t);
    vit_emu::launch(lg.grid, dim3(block_threads), lg.smem, k::multi_tensor_update_kernel<kStates, Update>, t,
                    up, sc);
  });
}

void require_floats_equal(const float* a, const float* b, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0)
      FAIL(what << ": element " << i << ": " << a[i] << " vs " << b[i]);
}

void require_copy_of(const bf16* copy, const float* w, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (copy[i].bits != bf16(w[i]).bits)
      FAIL(what << ": element " << i << " has bits " << copy[i].bits << ", bf16(" << w[i] << ") is "
                << bf16(w[i]).bits);
}

// Sizes: two chunks; 1027 with misaligned floats (scalar path); copies 1, 2
// and 4 elements past 16 bytes (2-byte stores, 2-byte stores, 8-byte store);
// tails of 3 and sizes below one float4 step.
const std::vector<int64_t> kSlotSizes = {5000, 1027, 4099, 13, 1, 4101};
const std::vector<double> kWds = {0.05, 0.0, 0.1, 0.05, 0.0, 0.02};
const std::vector<int> kFloatOff = {0, 1, 0, 0, 0, 0};
const std::vector<int> kCopyOff = {0, 0, 1, 2, 0, 4};

template <int kStates, class Update>
void run(const Update& up, const k::OptimPrologue& rule, const char* name) {
  INFO(name);
  Model with(kSlotSizes, kWds, kFloatOff, kCopyOff, true), without(kSlotSizes, kWds, kFloatOff, kCopyOff, false);
  DeviceStep dw, dwo;
  for (int t = 1; t <= 5; ++t) {
    INFO("step " << t);
    const bool skipped = t == 2 || t == 4;
    const float flag = t == 2 ? 1.f : t == 4 ? std::numeric_limits<float>::quiet_NaN() : 0.f;
    dw.lr = dwo.lr = 0.01 / t + 1e-3 / 3.0;
    dw.skip = dwo.skip = flag;
    std::vector<std::vector<bf16>> before;
    for (size_t i = 0; i < kSlotSizes.size(); ++i) {
      const std::vector<float> gv = skipped ? poisoned(kSlotSizes[i]) : random_vector(kSlotSizes[i], 1000 * t + i, 0.5);
      std::copy(gv.begin(), gv.end(), with.g[i].data());
      std::copy(gv.begin(), gv.end(), without.g[i].data());
      before.emplace_back(with.copy[i].data(), with.copy[i].data() + kSlotSizes[i]);
    }
    emu_step<kStates>(with.slots, up, rule, dw, 64);
    emu_step<kStates>(without.slots, up, rule, dwo, 64);
    CHECK(dw.step == dwo.step);
    for (size_t i = 0; i < kSlotSizes.size(); ++i) {
      INFO("slot " << i << " of size " << kSlotSizes[i]);
      const int64_t n = kSlotSizes[i];
      require_floats_equal(with.w[i].data(), without.w[i].data(), n, "param");
      require_floats_equal(with.s0[i].data(), without.s0[i].data(), n, "state0");
      require_floats_equal(with.s1[i].data(), without.s1[i].data(), n, "state1");
      if (skipped) {
        for (int64_t j = 0; j < n; ++j) REQUIRE(with.copy[i].data()[j].bits == before[i][j].bits);
      } else {
        require_copy_of(with.copy[i].data(), with.w[i].data(), n, "copy");
      }
      // Nothing outside the copy is written.
      const Buffer<bf16>& c = with.copy[i];
      for (int j = 0; j < c.offset; ++j) REQUIRE(c.storage[j].bits == 0);
      for (size_t j = c.offset + n; j < c.storage.size(); ++j) REQUIRE(c.storage[j].bits == 0);
    }
  }
}

}  // namespace

TEST_CASE("emu optimizer kernels write bf16 copies bit for bit, none on skipped steps", "[cuda-emu][optim][bf16]") {
  SECTION("AdamW") {
    const cuda::AdamHyper h{0.9, 0.999, 1e-8, true};
    run<2>(k::adam_update(h), k::adam_prologue(h), "AdamW");
  }
  SECTION("Adam") {
    const cuda::AdamHyper h{0.9, 0.999, 1e-8, false};
    run<2>(k::adam_update(h), k::adam_prologue(h), "Adam");
  }
  SECTION("SGD with momentum") {
    const cuda::SgdHyper h{0.9, 0.1, false};
    run<1>(k::sgd_update(h), k::sgd_prologue(), "SGD momentum");
  }
  SECTION("SGD without momentum") {
    const cuda::SgdHyper h{0.0, 0.0, false};
    run<0>(k::sgd_update(h), k::sgd_prologue(), "SGD");
  }
}

TEST_CASE("emu AdamW copies equal the CPU optimizer's copies", "[cuda-emu][optim][bf16]") {
  Model dev(kSlotSizes, kWds, kFloatOff, kCopyOff, true);
  std::vector<TensorF> params;
  std::vector<TensorBF16> copies;
  std::vector<optim::ParamGroup<float>> groups;
  for (size_t i = 0; i < kSlotSizes.size(); ++i) {
    TensorF p = TensorF::from_data({kSlotSizes[i]}, std::vector<float>(dev.w[i].data(), dev.w[i].data() + kSlotSizes[i]));
    p.set_requires_grad(true);
    params.push_back(p);
    copies.push_back(TensorBF16::full({kSlotSizes[i]}, bf16::from_bits(0x7fa5)));
    std::string name("p");
    name += std::to_string(i);
    groups.push_back({{{name, p}}, kWds[i]});
  }
  const optim::AdamOptions o{0.01, 0.9, 0.999, 1e-8};
  optim::AdamW<float> opt(groups, o);
  opt.set_low_precision_copies(copies);
  const cuda::AdamHyper h{o.beta1, o.beta2, o.eps, true};
  DeviceStep d;
  for (int t = 1; t <= 3; ++t) {
    d.lr = 0.01 / t + 1e-3 / 3.0;
    for (size_t i = 0; i < kSlotSizes.size(); ++i) {
      const std::vector<float> gv = random_vector(kSlotSizes[i], 1000 * t + i, 0.5);
      std::copy(gv.begin(), gv.end(), dev.g[i].data());
      params[i].set_grad(TensorF::from_data({kSlotSizes[i]}, gv));
    }
    opt.set_lr(d.lr);
    opt.step();
    emu_step<2>(dev.slots, k::adam_update(h), k::adam_prologue(h), d, 64);
    for (size_t i = 0; i < kSlotSizes.size(); ++i) {
      INFO("step " << t << " slot " << i);
      require_floats_equal(dev.w[i].data(), params[i].data(), kSlotSizes[i], "param vs CPU");
      for (int64_t j = 0; j < kSlotSizes[i]; ++j) REQUIRE(dev.copy[i].data()[j].bits == copies[i].data()[j].bits);
    }
  }
}
