// The kernels of cuda/kernels/{patchify,elementwise,optimizer}.cuh under the
// CPU stand-in, against the CPU library on fresh random inputs with poisoned
// (NaN) outputs: patchify/unpatchify against ops::patchify/unpatchify
// (exactly), the maps and the row broadcast exactly, column sums and sum_all
// against double sums, Adam/AdamW/SGD against vit::optim run on CPU tensors,
// and the gradient norm and clip coefficient against optim::clip_grad_norm.
// Geometry comes from the same inline host functions the launchers use, except
// where a smaller grid or block deliberately exercises the grid-stride loops or
// keeps the emulated thread count low (one std::thread per CUDA thread).
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
using vit::cuda::AdamHyper;
using vit::cuda::ParamSlot;
using vit::cuda::SgdHyper;
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
      slots.push_back({w[i].data(), g[i].data(), s0[i].data(), s1[i].data(), sizes[i],
                       static_cast<float>(wds[i])});
  }

  /// Fresh gradients: the CPU tensors get g·scale (as clip_grad_norm leaves
  /// them), the device arrays g itself and the kernels multiply by scale.
  void new_gradients(uint64_t seed, float scale) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t n = slots[i].n;
      const std::vector<float> gv = random_vector(n, seed + 1000 * i, 0.5);
      std::vector<float> scaled(n);
      for (int64_t j = 0; j < n; ++j) scaled[j] = gv[j] * scale;
      params[i].set_grad(TensorF::from_data({n}, scaled));
      std::copy(gv.begin(), gv.end(), g[i].data());
    }
  }

  template <class Opt>
  void compare(const Opt& opt, const std::vector<const char*>& state_names, double rtol) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t n = slots[i].n;
      INFO("slot " << i << " of size " << n);
      require_close(w[i].values(n), params[i].to_vector(), 1e-7, rtol, "param");
      for (size_t s = 0; s < state_names.size(); ++s) {
        const std::string key = param_name(i) + "." + state_names[s];
        std::vector<float> ref;
        for (const auto& [name, t] : opt.named_state())
          if (name == key) ref = t.to_vector();
        REQUIRE(ref.size() == size_t(n));
        // atol: a state element near 0 after cancellation (g + wd·w, then the
        // momentum sum) carries the absolute rounding of its O(1) inputs (~1e-7),
        // which FMA contraction moves between builds (seen in the ASan build).
        require_close((s == 0 ? s0 : s1)[i].values(n), ref, 1e-6, rtol, key.c_str());
      }
    }
  }
};

/// What cuda::adam_step / sgd_step queue, in the stand-in. block_threads
/// overrides the launchers' block size (any multiple of 32 is valid) to keep
/// many-slot cases cheap to emulate.
template <int kStates, class Update>
int emu_update(const std::vector<ParamSlot>& slots, const Update& up, const float* grad_scale,
               unsigned block_threads = 0) {
  int launches = 0;
  k::for_each_slot_table(slots.data(), static_cast<int>(slots.size()), [&](const k::OptimSlotTable& t) {
    const auto g = k::optim_launch(t);
    vit_emu::launch(g.grid, block_threads ? dim3(block_threads) : g.block, g.smem,
                    k::multi_tensor_update_kernel<kStates, Update>, t, up, grad_scale);
    ++launches;
  });
  return launches;
}

void run_adam(bool decoupled, const std::vector<int64_t>& sizes, const std::vector<double>& wds,
              const std::vector<int>& misaligned, unsigned block_threads, int expect_launches) {
  OptimFixture f(sizes, wds, misaligned, 100);
  const optim::AdamOptions o{0.01, 0.9, 0.999, 1e-8};
  optim::Adam<float> opt(f.groups, o, decoupled);
  const float scales[] = {1.0f, 0.7f, 0.35f};
  for (int t = 1; t <= 3; ++t) {
    INFO("step " << t);
    const float scale = scales[t - 1];
    f.new_gradients(200 + t, scale);
    opt.step();
    // The hyperparameters as the dispatch derives them from the double options.
    const double lr = opt.lr();
    const AdamHyper h{static_cast<float>(lr),
                      static_cast<float>(o.beta1),
                      static_cast<float>(o.beta2),
                      static_cast<float>(o.eps),
                      static_cast<float>(lr / (1.0 - std::pow(o.beta1, t))),
                      static_cast<float>(std::sqrt(1.0 - std::pow(o.beta2, t))),
                      decoupled,
                      static_cast<float>(1.0 - o.beta1),
                      static_cast<float>(1.0 - o.beta2)};
    // grad_scale null when there is nothing to scale, as without clipping.
    const int launches = emu_update<2>(f.slots, k::adam_update(h), scale == 1.f ? nullptr : &scale,
                                       block_threads);
    CHECK(launches == expect_launches);
    f.compare(opt, {"exp_avg", "exp_avg_sq"}, 2e-6);
  }
}

}  // namespace

TEST_CASE("emu AdamW matches optim AdamW over three steps", "[cuda-emu][optim]") {
  // Sizes: two chunks, a size not a multiple of 4 (misaligned: scalar path), two chunks plus 3.
  run_adam(true, {5000, 1027, 4099}, {0.05, 0.0, 0.1}, {0, 1, 0}, 0, 1);
}

TEST_CASE("emu Adam with L2 weight decay matches optim Adam over three steps", "[cuda-emu][optim]") {
  run_adam(false, {5000, 1027, 4099}, {0.05, 0.0, 0.1}, {0, 1, 0}, 0, 1);
}

TEST_CASE("emu AdamW over more slots than one launch holds", "[cuda-emu][optim]") {
  const int count = k::kOptimSlotsPerLaunch + 74;
  std::vector<int64_t> sizes(count);
  std::vector<double> wds(count);
  std::vector<int> misaligned(count);
  for (int i = 0; i < count; ++i) sizes[i] = i % 5 == 3 ? 0 : 1 + i % 7, wds[i] = (i % 3) * 0.05;
  sizes[7] = 4100;  // a slot with two chunks in the middle of the first table
  // 330 slots, 66 of them empty (left out of the tables): 264 need two launches.
  int nonempty = 0;
  for (int64_t n : sizes) nonempty += n > 0;
  REQUIRE(nonempty == 264);
  run_adam(true, sizes, wds, misaligned, 32, 2);
}

namespace {
void run_sgd(const optim::SgdOptions& o, double wd) {
  const std::vector<int64_t> sizes = {5000, 1027, 4099};
  OptimFixture f(sizes, {wd, 0.0, wd}, {0, 1, 0}, 300);
  optim::SGD<float> opt(f.groups, o);
  for (int t = 1; t <= 3; ++t) {
    INFO("step " << t);
    const float scale = t == 2 ? 0.6f : 1.f;
    f.new_gradients(400 + t, scale);
    opt.step();
    const SgdHyper h{static_cast<float>(opt.lr()), static_cast<float>(o.momentum),
                     static_cast<float>(o.dampening), o.nesterov, t == 1,
                     static_cast<float>(1.0 - o.dampening)};
    if (o.momentum != 0) emu_update<1>(f.slots, k::sgd_update(h), &scale);
    else emu_update<0>(f.slots, k::sgd_update(h), &scale);
    if (o.momentum != 0) f.compare(opt, {"momentum_buffer"}, 2e-6);
    else f.compare(opt, {}, 2e-6);
  }
}
}  // namespace

TEST_CASE("emu SGD matches optim SGD with every option", "[cuda-emu][optim]") {
  SECTION("plain with weight decay") { run_sgd({0.1, 0.0, 0.0, false}, 0.01); }
  SECTION("momentum, first step buffer = gradient") { run_sgd({0.1, 0.9, 0.0, false}, 0.0); }
  SECTION("momentum with dampening and weight decay") { run_sgd({0.05, 0.8, 0.1, false}, 0.02); }
  SECTION("nesterov") { run_sgd({0.1, 0.9, 0.0, true}, 0.01); }
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
    slots[i] = {nullptr, grads[i].data(), nullptr, nullptr, int64_t(grads[i].size()), 0.f};
  }
  const auto [norm, coef] = emu_grad_norm(slots, 1.f, 32);
  CHECK(std::abs(norm - std::sqrt(total_sq)) <= 1e-5 * std::sqrt(total_sq));
  CHECK(std::abs(coef - 1.0 / (std::sqrt(total_sq) + 1e-6)) <= 1e-5 * coef);

  // No slots (or only empty ones): norm 0, coefficient 1, both written.
  const std::vector<ParamSlot> empty = {{nullptr, nullptr, nullptr, nullptr, 0, 0.f}};
  const auto [zero_norm, one_coef] = emu_grad_norm(empty, 1.f);
  CHECK(zero_norm == 0.f);
  CHECK(one_coef == 1.f);
}
