// The kernels of cuda/kernels/{patchify,elementwise,optimizer}.cuh under the
// CPU stand-in, against the CPU library on fresh random inputs with poisoned
// (NaN) outputs: patchify/unpatchify against ops::patchify/unpatchify
// (exactly), the maps and the row broadcast exactly, column sums and sum_all
// against double sums, Adam/AdamW/SGD (prologue + multi-tensor update, every
// per-step value read from "device" memory) against vit::optim run on CPU
// tensors on the finite steps only of a sequence with skipped steps (bitwise
// for Adam/AdamW where both sides do the same float operations), and the
// gradient norm and clip coefficient against optim::clip_grad_norm.
// Geometry comes from the same inline host functions the launchers use, except
// where a smaller grid or block deliberately exercises the grid-stride loops or
// keeps the emulated thread count low (one std::thread per CUDA thread).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "emu_check.hpp"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/patchify.cuh"

using namespace vit;
namespace k = vit::cuda::kernels;
using vit::cuda::ParamSlot;
using vit::cuda::StepInputs;
using vit::test::poisoned;
using vit::test::random_vector;
using vit::test::require_close;

namespace {

void require_equal(const std::vector<float>& got, const std::vector<float>& ref, const char* what) {
  require_close(got, ref, 0.0, 0.0, what);
}

/// "p<i>", built by appending (GCC 12 warns falsely on "p" + std::string at -O3).
std::string param_name(size_t i) {
  std::string s("p");
  s += std::to_string(i);
  return s;
}

/// A host array whose first element sits `offset` floats past a 16-byte
/// boundary (std::vector's storage is 16-byte aligned on x86-64): offset 1
/// sends the kernels down their scalar path.
struct Shifted {
  std::vector<float> storage;
  int offset;
  Shifted(const std::vector<float>& v, int off) : storage(v.size() + 4, 0.f), offset(off) {
    std::copy(v.begin(), v.end(), storage.begin() + off);
  }
  float* data() { return storage.data() + offset; }
  std::vector<float> values(size_t n) const {
    return {storage.begin() + offset, storage.begin() + offset + static_cast<int64_t>(n)};
  }
};

}  // namespace

// ---- patchify ----------------------------------------------------------------------

TEST_CASE("emu patchify and unpatchify match the CPU layouts exactly", "[cuda-emu][patchify]") {
  const int64_t B = 2, ch = 3, H = 8, W = 12, P = 4, total = B * ch * H * W;
  const std::vector<float> x = random_vector(total, 11);
  std::vector<float> ref_cols(total), ref_dx(total);
  ops::patchify(x.data(), ref_cols.data(), B, ch, H, W, P);
  const std::vector<float> dcols = random_vector(total, 12);
  ops::unpatchify(dcols.data(), ref_dx.data(), B, ch, H, W, P);

  const k::PatchifyLaunch full = k::patchify_launch(total);
  REQUIRE(full.index32);
  // The launchers' grid, and one small block that must stride over everything.
  for (const auto& [grid, block] : {std::pair{full.grid, full.block}, std::pair{dim3(1), dim3(64)}}) {
    std::vector<float> cols = poisoned(total), dx = poisoned(total);
    vit_emu::launch(grid, block, 0, k::patchify_kernel<int32_t>, x.data(), cols.data(),
                    int32_t(total), int32_t(ch), int32_t(H), int32_t(W), int32_t(P));
    require_equal(cols, ref_cols, "patchify int32");
    vit_emu::launch(grid, block, 0, k::unpatchify_kernel<int32_t>, dcols.data(), dx.data(),
                    int32_t(total), int32_t(ch), int32_t(H), int32_t(W), int32_t(P));
    require_equal(dx, ref_dx, "unpatchify int32");
    cols = poisoned(total), dx = poisoned(total);
    vit_emu::launch(grid, block, 0, k::patchify_kernel<int64_t>, x.data(), cols.data(), total, ch, H, W, P);
    require_equal(cols, ref_cols, "patchify int64");
    vit_emu::launch(grid, block, 0, k::unpatchify_kernel<int64_t>, dcols.data(), dx.data(), total, ch, H,
                    W, P);
    require_equal(dx, ref_dx, "unpatchify int64");
  }
}

// ---- elementwise -------------------------------------------------------------------

TEST_CASE("emu elementwise maps match the CPU exactly, aligned or not", "[cuda-emu][elementwise]") {
  const int64_t n = 1003;  // not a multiple of 4: the tail path runs too
  const std::vector<float> a = random_vector(n, 21), b = random_vector(n, 22);
  std::vector<float> ref_add(n), ref_mul(n), ref_scale(n);
  for (int64_t i = 0; i < n; ++i)
    ref_add[i] = a[i] + b[i], ref_mul[i] = a[i] * b[i], ref_scale[i] = a[i] * -1.75f;
  for (int off : {0, 1}) {
    for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
      INFO("offset " << off << ", max_blocks " << max_blocks);
      const auto g = k::elementwise_launch(n, max_blocks);
      Shifted sa(a, off), sb(b, off), out(poisoned(n), off);
      vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<k::EwAdd>, sa.data(), sb.data(),
                      out.data(), n, k::EwAdd{});
      require_equal(out.values(n), ref_add, "add");
      out = Shifted(poisoned(n), off);
      vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<k::EwMul>, sa.data(), sb.data(),
                      out.data(), n, k::EwMul{});
      require_equal(out.values(n), ref_mul, "mul");
      // accumulate: dst += src, out aliasing the first input.
      Shifted dst(a, off);
      vit_emu::launch(g.grid, g.block, g.smem, k::ew_binary_kernel<k::EwAdd>, dst.data(), sb.data(),
                      dst.data(), n, k::EwAdd{});
      require_equal(dst.values(n), ref_add, "accumulate");
      Shifted x(a, off);
      vit_emu::launch(g.grid, g.block, g.smem, k::ew_unary_kernel<k::EwScale>, x.data(), x.data(), n,
                      k::EwScale{-1.75f});
      require_equal(x.values(n), ref_scale, "scale");
      Shifted f(poisoned(n), off);
      vit_emu::launch(g.grid, g.block, g.smem, k::ew_fill_kernel, f.data(), 0.25f, n);
      require_equal(f.values(n), std::vector<float>(n, 0.25f), "fill");
    }
  }
}

TEST_CASE("emu add_row_broadcast adds the bias to every row", "[cuda-emu][elementwise]") {
  for (int64_t C : {20, 19}) {  // float4 path (C % 4 == 0) and the scalar path
    for (int off : {0, 1}) {
      for (int64_t max_blocks : {k::kElementwiseMaxBlocks, int64_t(1)}) {
        const int64_t R = 37;
        INFO("C " << C << ", offset " << off << ", max_blocks " << max_blocks);
        const std::vector<float> x = random_vector(R * C, 31), bias = random_vector(C, 32);
        std::vector<float> ref(R * C);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t c = 0; c < C; ++c) ref[r * C + c] = x[r * C + c] + bias[c];
        const auto g = k::elementwise_launch(R * C, max_blocks);
        Shifted sx(x, 0), sb(bias, off), out(poisoned(R * C), 0);
        vit_emu::launch(g.grid, g.block, g.smem, k::add_row_broadcast_kernel, sx.data(), sb.data(),
                        out.data(), R, C);
        require_equal(out.values(R * C), ref, "add_row_broadcast");
        // In place (out aliasing x).
        vit_emu::launch(g.grid, g.block, g.smem, k::add_row_broadcast_kernel, sx.data(), sb.data(),
                        sx.data(), R, C);
        require_equal(sx.values(R * C), ref, "add_row_broadcast in place");
      }
    }
  }
}

namespace {
/// What cuda::column_sums_accumulate queues, in the stand-in.
void emu_column_sums(const std::vector<float>& x, std::vector<float>& acc, int64_t R, int64_t C) {
  const auto g = k::column_sums_launch(R, C);
  if (g.chunks == 1) {
    vit_emu::launch(g.grid, g.block, g.smem, k::column_sums_partial_kernel, x.data(), acc.data(), R, C,
                    g.rows_per_chunk, 1);
    return;
  }
  std::vector<float> partials = poisoned(g.chunks * C);
  vit_emu::launch(g.grid, g.block, g.smem, k::column_sums_partial_kernel, x.data(), partials.data(), R,
                  C, g.rows_per_chunk, 0);
  vit_emu::launch(g.finish_grid, g.finish_block, 0, k::column_sums_finish_kernel, partials.data(),
                  acc.data(), g.chunks, C);
}
}  // namespace

TEST_CASE("emu column sums accumulate against double sums", "[cuda-emu][elementwise]") {
  // (300,70): several row chunks and a partial column tile; (40,33): one chunk.
  for (const auto& [R, C] : {std::pair<int64_t, int64_t>{300, 70}, {40, 33}}) {
    INFO("R " << R << ", C " << C);
    const auto g = k::column_sums_launch(R, C);
    CHECK((g.chunks > 1) == (R == 300));
    const std::vector<float> x = random_vector(R * C, 41), acc0 = random_vector(C, 42);
    std::vector<float> ref(C);
    for (int64_t c = 0; c < C; ++c) {
      double s = acc0[c];
      for (int64_t r = 0; r < R; ++r) s += x[r * C + c];
      ref[c] = static_cast<float>(s);
    }
    std::vector<float> acc = acc0;
    emu_column_sums(x, acc, R, C);
    require_close(acc, ref, 1e-5 * std::sqrt(double(R)), 1e-5, "column sums");
  }
}

TEST_CASE("emu sum_all against a double sum", "[cuda-emu][elementwise]") {
  for (int64_t n : {int64_t(5000), int64_t(100), int64_t(0)}) {
    INFO("n " << n);
    const std::vector<float> x = random_vector(n > 0 ? n : 1, 51);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += x[i];
    const auto g = k::sum_all_launch(n);
    CHECK((g.grid.x > 1) == (n == 5000));
    std::vector<float> out = poisoned(1);
    if (g.grid.x == 1) {
      vit_emu::launch(g.grid, g.block, g.smem, k::sum_all_partial_kernel, x.data(), n, out.data());
    } else {
      std::vector<float> partials = poisoned(g.grid.x);
      vit_emu::launch(g.grid, g.block, g.smem, k::sum_all_partial_kernel, x.data(), n, partials.data());
      vit_emu::launch(dim3(1), g.block, 0, k::sum_all_partial_kernel, partials.data(),
                      int64_t(g.grid.x), out.data());
    }
    require_close(out, {static_cast<float>(ref)}, 1e-5 * std::sqrt(double(n) + 1), 1e-5, "sum_all");
  }
}

// ---- optimizers --------------------------------------------------------------------

namespace {

/// Parameters as both CPU tensors (for vit::optim) and "device" arrays with
/// their slots; `misaligned` slots have every array one float off 16 bytes.
struct OptimFixture {
  std::vector<TensorF> params;
  std::vector<Shifted> w, g, s0, s1;
  std::vector<ParamSlot> slots;
  std::vector<optim::ParamGroup<float>> groups;

  OptimFixture(const std::vector<int64_t>& sizes, const std::vector<double>& wds,
               const std::vector<int>& misaligned, uint64_t seed) {
    const size_t count = sizes.size();
    for (size_t i = 0; i < count; ++i) {
      const int64_t n = sizes[i];
      const std::vector<float> init = random_vector(n, seed + i);
      TensorF p = TensorF::from_data({n}, init);
      p.set_requires_grad(true);
      params.push_back(p);
      const int off = misaligned[i];
      w.emplace_back(init, off);
      g.emplace_back(poisoned(n), off);  // each step uploads a gradient
      s0.emplace_back(std::vector<float>(n, 0.f), off);
      s1.emplace_back(std::vector<float>(n, 0.f), off);
      groups.push_back({{{param_name(i), p}}, wds[i]});
    }
    for (size_t i = 0; i < count; ++i)
      slots.push_back({w[i].data(), g[i].data(), s0[i].data(), s1[i].data(), sizes[i], wds[i]});
  }

  /// Fresh gradients: the device arrays get g, the CPU tensors g·cpu_scale
  /// (as clip_grad_norm leaves them).
  void new_gradients(uint64_t seed, float cpu_scale = 1.f) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t n = slots[i].n;
      const std::vector<float> gv = random_vector(n, seed + 1000 * i, 0.5);
      std::vector<float> scaled(n);
      for (int64_t j = 0; j < n; ++j) scaled[j] = gv[j] * cpu_scale;
      params[i].set_grad(TensorF::from_data({n}, scaled));
      std::copy(gv.begin(), gv.end(), g[i].data());
    }
  }
  /// A non-finite step's gradients: NaN on the device (the kernels must not
  /// read them), the CPU optimizer is not stepped at all.
  void poison_gradients() {
    for (size_t i = 0; i < params.size(); ++i) {
      const std::vector<float> nan = poisoned(slots[i].n);
      std::copy(nan.begin(), nan.end(), g[i].data());
    }
  }

  /// Device params and state against the CPU optimizer's, |a − b| <= atol + rtol·|b|
  /// (0, 0: bitwise). State the CPU has not made yet (no update applied) must
  /// still be the device's zeros.
  template <class Opt>
  void compare(const Opt& opt, const std::vector<const char*>& state_names, double atol, double rtol) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t n = slots[i].n;
      INFO("slot " << i << " of size " << n);
      require_close(w[i].values(n), params[i].to_vector(), atol, rtol, "param");
      for (size_t s = 0; s < state_names.size(); ++s) {
        const std::string key = param_name(i) + "." + state_names[s];
        std::vector<float> ref(n, 0.f);
        for (const auto& [name, t] : opt.named_state())
          if (name == key) ref = t.to_vector();
        REQUIRE(ref.size() == size_t(n));
        require_close((s == 0 ? s0 : s1)[i].values(n), ref, atol, rtol, key.c_str());
      }
    }
  }
};

/// The per-step device values StepInputs points at, and the scratch the
/// launchers take from the allocator.
struct EmuStep {
  double lr = 0;
  float grad_scale = 1.f, skip = 0.f;
  int64_t step = 0;
  k::OptimStepScalars scalars{};
  /// with_scale / with_skip false: those pointers null, as without clipping or finite check.
  StepInputs inputs(bool with_scale, bool with_skip) {
    return {&lr, with_scale ? &grad_scale : nullptr, with_skip ? &skip : nullptr, &step};
  }
};

/// The CPU optimizer's gradient scale: the same value as the device's
/// (multiplied in the update, as the kernels do), or none.
template <class Opt>
void set_cpu_scale(Opt& opt, bool with_scale, float scale) {
  opt.set_grad_scale(with_scale ? TensorF::from_data({1}, std::vector<float>{scale}) : TensorF());
}

/// What cuda::adam_step / sgd_step queue, in the stand-in: the prologue, then
/// one update per slot table; returns the number of update launches.
/// block_threads overrides the launchers' block size (any multiple of 32 is
/// valid) to keep many-slot cases cheap to emulate.
template <int kStates, class Update>
int emu_update(const std::vector<ParamSlot>& slots, const Update& up, const k::OptimPrologue& rule,
               const StepInputs& in, EmuStep& dev, unsigned block_threads = 0) {
  std::memset(&dev.scalars, 0xff, sizeof dev.scalars);  // poisoned: the prologue writes it all
  const auto p = k::optim_prologue_launch();
  vit_emu::launch(p.grid, p.block, p.smem, k::optim_prologue_kernel, in, rule, &dev.scalars);
  const k::OptimStepScalars* scalars = &dev.scalars;
  int launches = 0;
  k::for_each_slot_table(slots.data(), static_cast<int>(slots.size()), [&](const k::OptimSlotTable& t) {
    const auto g = k::optim_launch(t);
    vit_emu::launch(g.grid, block_threads ? dim3(block_threads) : g.block, g.smem,
                    k::multi_tensor_update_kernel<kStates, Update>, t, up, scalars);
    ++launches;
  });
  return launches;
}

/// A schedule's learning rate: a different, non-round value every step.
double lr_at(int t) { return 0.01 * (1.0 - 0.11 * t) + 1e-3 / 3.0; }

/// Steps 1..6 of Adam/AdamW; the steps in `skipped` are non-finite: the
/// device gets NaN gradients, a NaN clip coefficient and a skip flag (1 or
/// NaN), the CPU optimizer is not stepped. Every other step is compared with
/// optim::Adam run on the finite steps only, bitwise: the same float
/// operations on the same double-derived scalars. With `clip`, even steps
/// scale the gradients by a coefficient that both sides multiply in; Adam's
/// L2 term then makes g·s + wd·w, which g++ may contract into an FMA either
/// way round (seen: the CPU loop and the kernel differ by an ulp), so that
/// case is compared to a rounding (atol for m near 0 after cancellation).
void run_adam(bool decoupled, const std::vector<int64_t>& sizes, const std::vector<double>& wds,
              const std::vector<int>& misaligned, unsigned block_threads, int expect_launches,
              const std::vector<int>& skipped, bool clip) {
  OptimFixture f(sizes, wds, misaligned, 100);
  const optim::AdamOptions o{0.01, 0.9, 0.999, 1e-8};
  optim::Adam<float> opt(f.groups, o, decoupled);
  const cuda::AdamHyper h{o.beta1, o.beta2, o.eps, decoupled};
  EmuStep dev;
  for (int t = 1; t <= 6; ++t) {
    INFO("step " << t);
    const bool skip = std::find(skipped.begin(), skipped.end(), t) != skipped.end();
    const bool with_scale = skip || (clip && t % 2 == 0);
    dev.lr = lr_at(t);
    const int64_t before = dev.step;
    if (skip) {
      f.poison_gradients();
      dev.grad_scale = std::numeric_limits<float>::quiet_NaN();
      dev.skip = t % 2 ? 1.f : std::numeric_limits<float>::quiet_NaN();  // NaN is nonzero: skipped too
    } else {
      f.new_gradients(200 + t);
      dev.grad_scale = 0.7f - 0.05f * static_cast<float>(t), dev.skip = 0.f;
      set_cpu_scale(opt, with_scale, dev.grad_scale);
      opt.set_lr(lr_at(t));
      opt.step();
    }
    // The skip flag null on some finite steps (never skip).
    const StepInputs in = dev.inputs(with_scale, skip || t % 3 != 0);
    const int launches = emu_update<2>(f.slots, k::adam_update(h), k::adam_prologue(h), in, dev, block_threads);
    CHECK(launches == expect_launches);
    CHECK(dev.step == (skip ? before : before + 1));
    CHECK(dev.step == opt.steps());
    CHECK(dev.scalars.skip == (skip ? 1 : 0));
    if (!skip) {
      // The prologue's scalars are what optim::Adam computes on the host for this t.
      const double lr = lr_at(t), tt = static_cast<double>(opt.steps());
      CHECK(dev.scalars.step_size == static_cast<float>(lr / (1.0 - std::pow(o.beta1, tt))));
      CHECK(dev.scalars.bc2_sqrt == static_cast<float>(std::sqrt(1.0 - std::pow(o.beta2, tt))));
      CHECK(dev.scalars.lr == lr);
      CHECK(dev.scalars.scaled == (with_scale ? 1 : 0));
    }
    const bool exact = !(clip && !decoupled);
    f.compare(opt, {"exp_avg", "exp_avg_sq"}, exact ? 0.0 : 1e-7, exact ? 0.0 : 1e-6);
  }
}

}  // namespace

TEST_CASE("emu AdamW matches optim AdamW bitwise over steps with one skipped", "[cuda-emu][optim]") {
  // Sizes: two chunks, a size not a multiple of 4 (misaligned: scalar path), two chunks plus 3.
  // Weight decays whose float(1 − lr·wd) needs the double lr.
  run_adam(true, {5000, 1027, 4099}, {0.05, 0.0, 0.1}, {0, 1, 0}, 0, 1, {3}, false);
}

TEST_CASE("emu Adam with L2 weight decay matches optim Adam bitwise, steps skipped", "[cuda-emu][optim]") {
  run_adam(false, {5000, 1027, 4099}, {0.05, 0.0, 0.1}, {0, 1, 0}, 0, 1, {1, 4}, false);
}

TEST_CASE("emu AdamW (bitwise) and Adam with a clip coefficient", "[cuda-emu][optim]") {
  SECTION("AdamW") { run_adam(true, {5000, 1027}, {0.05, 0.1}, {0, 1}, 0, 1, {3}, true); }
  SECTION("Adam") { run_adam(false, {5000, 1027}, {0.05, 0.1}, {0, 1}, 0, 1, {3}, true); }
}

TEST_CASE("emu AdamW over more slots than one launch holds", "[cuda-emu][optim]") {
  const int count = k::kOptimSlotsPerLaunch + 74;
  std::vector<int64_t> sizes(count);
  std::vector<double> wds(count);
  std::vector<int> misaligned(count);
  for (int i = 0; i < count; ++i) sizes[i] = i % 5 == 3 ? 0 : 1 + i % 7, wds[i] = (i % 3) * 0.05;
  sizes[7] = 4100;  // a slot with two chunks in the middle of the first table
  // 330 slots, 66 of them empty (left out of the tables): 264 need two launches,
  // which share one prologue: the skipped step leaves both tables alone and the
  // count advances once per finite step.
  int nonempty = 0;
  for (int64_t n : sizes) nonempty += n > 0;
  REQUIRE(nonempty == 264);
  run_adam(true, sizes, wds, misaligned, 32, 2, {2}, false);
}

TEST_CASE("emu optimizer prologue: the step advances with no slots, skip null or zero", "[cuda-emu][optim]") {
  EmuStep dev;
  dev.lr = 0.5;
  const cuda::AdamHyper h{};
  CHECK(emu_update<2>({}, k::adam_update(h), k::adam_prologue(h), dev.inputs(false, false), dev) == 0);
  CHECK(dev.step == 1);
  CHECK(dev.scalars.grad_scale == 1.f);
  CHECK(dev.scalars.step_size == static_cast<float>(0.5 / (1.0 - std::pow(0.9, 1.0))));
  dev.skip = -0.f;  // zero: not skipped
  emu_update<2>({}, k::adam_update(h), k::adam_prologue(h), dev.inputs(false, true), dev);
  CHECK(dev.step == 2);
  dev.skip = std::numeric_limits<float>::infinity();
  emu_update<2>({}, k::adam_update(h), k::adam_prologue(h), dev.inputs(false, true), dev);
  CHECK(dev.step == 2);
  CHECK(dev.scalars.skip == 1);
}

namespace {
/// SGD over four steps, `skipped` ones non-finite as in run_adam. Skipping
/// step 1 moves the momentum buffer's first update (buffer = d) to step 2:
/// the device count, not the call count, decides it, as the CPU's buffer
/// exists only after a real update.
void run_sgd(const optim::SgdOptions& o, double wd, const std::vector<int>& skipped) {
  const std::vector<int64_t> sizes = {5000, 1027, 4099};
  OptimFixture f(sizes, {wd, 0.0, wd}, {0, 1, 0}, 300);
  optim::SGD<float> opt(f.groups, o);
  const cuda::SgdHyper h{o.momentum, o.dampening, o.nesterov};
  EmuStep dev;
  for (int t = 1; t <= 4; ++t) {
    INFO("step " << t);
    const bool skip = std::find(skipped.begin(), skipped.end(), t) != skipped.end();
    dev.lr = lr_at(t) * 10;
    const bool with_scale = t % 2 == 0;
    if (skip) {
      f.poison_gradients();
      dev.skip = 1.f, dev.grad_scale = std::numeric_limits<float>::quiet_NaN();
    } else {
      f.new_gradients(400 + t);
      dev.skip = 0.f, dev.grad_scale = 0.6f;
      set_cpu_scale(opt, with_scale, dev.grad_scale);
      opt.set_lr(dev.lr);
      opt.step();
    }
    const StepInputs in = dev.inputs(with_scale, true);
    if (o.momentum != 0) emu_update<1>(f.slots, k::sgd_update(h), k::sgd_prologue(), in, dev);
    else emu_update<0>(f.slots, k::sgd_update(h), k::sgd_prologue(), in, dev);
    CHECK(dev.step == opt.steps());
    // Same float expressions, but g++ contracts them into FMAs differently in
    // the CPU loop and the kernel (seen: 1-ulp differences in the parameter):
    // a rounding's worth, and atol for state near 0 after cancellation.
    if (o.momentum != 0) f.compare(opt, {"momentum_buffer"}, 1e-7, 1e-6);
    else f.compare(opt, {}, 1e-7, 1e-6);
  }
}
}  // namespace

TEST_CASE("emu SGD matches optim SGD with every option, steps skipped", "[cuda-emu][optim]") {
  SECTION("plain with weight decay") { run_sgd({0.1, 0.0, 0.0, false}, 0.01, {2}); }
  SECTION("momentum, first step buffer = gradient") { run_sgd({0.1, 0.9, 0.0, false}, 0.0, {3}); }
  SECTION("momentum with dampening, the first step skipped") { run_sgd({0.05, 0.8, 0.1, false}, 0.02, {1, 3}); }
  SECTION("nesterov") { run_sgd({0.1, 0.9, 0.0, true}, 0.01, {1}); }
}

namespace {
/// What cuda::grad_norm queues, in the stand-in; returns {norm, coef}.
std::pair<float, float> emu_grad_norm(const std::vector<ParamSlot>& slots, float max_norm,
                                      unsigned block_threads = 0) {
  int64_t chunks = 0;
  k::for_each_slot_table(slots.data(), static_cast<int>(slots.size()),
                         [&](const k::OptimSlotTable& t) { chunks = t.first_chunk + t.chunk_start[t.count]; });
  std::vector<float> partials = poisoned(chunks > 0 ? chunks : 1);
  k::for_each_slot_table(slots.data(), static_cast<int>(slots.size()), [&](const k::OptimSlotTable& t) {
    const auto g = k::optim_launch(t);
    vit_emu::launch(g.grid, block_threads ? dim3(block_threads) : g.block, g.smem, k::grad_sumsq_kernel, t,
                    partials.data());
  });
  std::vector<float> norm = poisoned(1), coef = poisoned(1);
  const auto f = k::grad_norm_finish_launch();
  vit_emu::launch(f.grid, f.block, f.smem, k::grad_norm_finish_kernel, partials.data(), chunks, max_norm,
                  norm.data(), coef.data());
  return {norm[0], coef[0]};
}
}  // namespace

TEST_CASE("emu grad_norm and the clip coefficient match clip_grad_norm", "[cuda-emu][optim]") {
  const std::vector<int64_t> sizes = {5000, 1027, 4099};
  OptimFixture f(sizes, {0, 0, 0}, {0, 1, 0}, 500);
  f.new_gradients(600, 1.f);
  const std::vector<TensorF> grads_before = [&] {
    std::vector<TensorF> g;
    for (auto& p : f.params) g.push_back(p.grad().clone());
    return g;
  }();
  double total_sq = 0;
  for (auto& p : f.params)
    for (float v : p.grad().to_vector()) total_sq += double(v) * v;
  const double total = std::sqrt(total_sq);

  SECTION("clipping: coefficient below 1 scales the gradients as the CPU does") {
    const float max_norm = static_cast<float>(total / 2);
    const auto [norm, coef] = emu_grad_norm(f.slots, max_norm);
    const double cpu_total = optim::clip_grad_norm(f.params, max_norm);
    CHECK(std::abs(norm - cpu_total) <= 1e-5 * cpu_total);
    const double ref_coef = max_norm / (cpu_total + 1e-6);
    CHECK(std::abs(coef - ref_coef) <= 1e-5 * ref_coef);
    for (size_t i = 0; i < f.params.size(); ++i) {
      std::vector<float> scaled = grads_before[i].to_vector();
      for (float& v : scaled) v *= coef;  // what the optimizer kernels do with grad_scale
      require_close(scaled, f.params[i].grad().to_vector(), 1e-7, 1e-5, "clipped gradient");
    }
  }
  SECTION("no clipping: coefficient 1") {
    const auto [norm, coef] = emu_grad_norm(f.slots, static_cast<float>(10 * total));
    CHECK(std::abs(norm - total) <= 1e-5 * total);
    CHECK(coef == 1.f);
  }
  SECTION("max_norm <= 0: coefficient 1") {
    CHECK(emu_grad_norm(f.slots, 0.f).second == 1.f);
    CHECK(emu_grad_norm(f.slots, -1.f).second == 1.f);
  }
  SECTION("a non-finite gradient: NaN norm leaves the gradients alone, inf zeroes them") {
    f.g[1].data()[5] = std::numeric_limits<float>::quiet_NaN();
    const auto [nan_norm, nan_coef] = emu_grad_norm(f.slots, 1.f);
    CHECK(std::isnan(nan_norm));
    CHECK(nan_coef == 1.f);
    f.g[1].data()[5] = std::numeric_limits<float>::infinity();
    const auto [inf_norm, inf_coef] = emu_grad_norm(f.slots, 1.f);
    CHECK(std::isinf(inf_norm));
    CHECK(inf_coef == 0.f);
  }
}

TEST_CASE("emu grad_norm over many slots and none", "[cuda-emu][optim]") {
  // More slots than one launch holds: partials of the second table must land
  // after the first's. Block of 32 threads keeps the emulation cheap.
  const int count = k::kOptimSlotsPerLaunch + 9;
  std::vector<ParamSlot> slots(count);
  std::vector<std::vector<float>> grads(count);
  double total_sq = 0;
  for (int i = 0; i < count; ++i) {
    grads[i] = random_vector(1 + i % 7, 700 + i);
    for (float v : grads[i]) total_sq += double(v) * v;
    slots[i] = {nullptr, grads[i].data(), nullptr, nullptr, int64_t(grads[i].size()), 0.0};
  }
  const auto [norm, coef] = emu_grad_norm(slots, 1.f, 32);
  CHECK(std::abs(norm - std::sqrt(total_sq)) <= 1e-5 * std::sqrt(total_sq));
  CHECK(std::abs(coef - 1.0 / (std::sqrt(total_sq) + 1e-6)) <= 1e-5 * coef);

  // No slots (or only empty ones): norm 0, coefficient 1, both written.
  const std::vector<ParamSlot> empty = {{nullptr, nullptr, nullptr, nullptr, 0, 0.0}};
  const auto [zero_norm, one_coef] = emu_grad_norm(empty, 1.f);
  CHECK(zero_norm == 0.f);
  CHECK(one_coef == 1.f);
}
