// The launchers of cuda/{gemm,patchify,elementwise,optimizer}.cu on the GPU
// against the CPU library, outputs poisoned (NaN) before every launch:
// cuBLAS GEMM (all transpose pairs, odd sizes, padded leading dimensions,
// alpha/beta; TF32 off tight, on loose) and its strided-batched form against
// ops::gemm in double; patchify/unpatchify and the maps exactly; column sums
// and sum_all against double sums and bitwise repeatable; Adam/AdamW/SGD and
// grad_norm against vit::optim on CPU tensors, the clip coefficient, skip flag,
// learning rate and step count feeding the update from the device as a
// training step does (one step skipped); the step guard's finite check and
// metric sums against the host rules.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>
#include <vit/cuda/elementwise.hpp>
#include <vit/cuda/gemm.hpp>
#include <vit/cuda/optimizer.hpp>
#include <vit/cuda/patchify.hpp>
#include <vit/cuda/step_guard.hpp>

#include "cuda/device_buffer.hpp"

using namespace vit;
using vit::test::DeviceBuffer;
using vit::test::random_vector;
using vit::test::require_close;

namespace {

/// "p<i>", built by appending (GCC 12 warns falsely on "p" + std::string at -O3).
std::string param_name(size_t i) {
  std::string s("p");
  s += std::to_string(i);
  return s;
}

/// A device array starting `off` floats into its buffer: off 1 breaks 16-byte
/// alignment, sending kernels down their scalar paths.
struct DevArray {
  std::unique_ptr<DeviceBuffer> buf;
  int off;
  DevArray(const std::vector<float>& v, int offset)
      : buf(std::make_unique<DeviceBuffer>(padded(v, offset))), off(offset) {}
  static std::vector<float> padded(const std::vector<float>& v, int off) {
    std::vector<float> p(v.size() + off, 0.f);
    std::copy(v.begin(), v.end(), p.begin() + off);
    return p;
  }
  float* get() const { return buf->get() + off; }
  void upload(const std::vector<float>& v) { buf->upload(padded(v, off)); }
  std::vector<float> download() const {
    const std::vector<float> h = buf->download();
    return {h.begin() + off, h.end()};
  }
};

void require_equal(const std::vector<float>& got, const std::vector<float>& ref, const char* what) {
  require_close(got, ref, 0.0, 0.0, what);
}

struct Tf32Guard {
  bool saved = cuda::allow_tf32();
  explicit Tf32Guard(bool on) { cuda::set_allow_tf32(on); }
  ~Tf32Guard() { cuda::set_allow_tf32(saved); }
};

/// Rows and columns of a row-major operand as stored.
int64_t stored_rows(bool t, int64_t r, int64_t c) { return t ? c : r; }
int64_t stored_cols(bool t, int64_t r, int64_t c) { return t ? r : c; }

/// One gemm on the GPU against ops::gemm in double. pad: extra leading-dimension elements.
void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad,
                bool tf32, double atol, double rtol, uint64_t seed) {
  INFO("ta " << ta << " tb " << tb << " M " << M << " N " << N << " K " << K << " beta " << beta
             << " tf32 " << tf32);
  const int64_t lda = stored_cols(ta, M, K) + pad, ldb = stored_cols(tb, K, N) + pad, ldc = N + pad;
  const std::vector<float> a = random_vector(stored_rows(ta, M, K) * lda, seed);
  const std::vector<float> b = random_vector(stored_rows(tb, K, N) * ldb, seed + 1);
  const std::vector<float> c0 = random_vector(M * ldc, seed + 2);
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c0.begin(), c0.end());
  ops::gemm<double>(ta, tb, M, N, K, alpha, ad.data(), lda, bd.data(), ldb, beta, cd.data(), ldc);
  DeviceBuffer da(a), db(b), dc(M * ldc);  // C poisoned
  if (beta != 0.f) dc.upload(c0);
  {
    Tf32Guard tf(tf32);
    cuda::gemm(ta, tb, M, N, K, alpha, da.get(), lda, db.get(), ldb, beta, dc.get(), ldc);
  }
  const std::vector<float> c = dc.download();
  std::vector<float> got, ref;  // the M x N part; padding is not C's
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) got.push_back(c[i * ldc + j]), ref.push_back(float(cd[i * ldc + j]));
  require_close(got, ref, atol, rtol, "gemm");
}

}  // namespace

TEST_CASE("cuda gemm matches ops gemm for every transpose pair", "[cuda]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Odd sizes, padded leading dimensions, C overwritten (beta 0, C poisoned) or scaled.
      check_gemm(ta, tb, 37, 29, 53, 1.5f, 0.f, 3, false, 1e-5 * std::sqrt(53.0), 1e-4, 1);
      check_gemm(ta, tb, 37, 29, 53, 1.f, 0.5f, 0, false, 1e-5 * std::sqrt(53.0), 1e-4, 2);
      check_gemm(ta, tb, 1, 7, 1, -2.f, 1.f, 0, false, 1e-6, 1e-5, 3);
    }
}

TEST_CASE("cuda gemm at ViT sizes with TF32 off and on", "[cuda]") {
  // A ViT-Ti/16 block's fc1 on a 64-image batch: (64·65, 192) x (192, 576)... and its backward pairs.
  const int64_t M = 65 * 64, N = 192, K = 576;
  check_gemm(false, true, M, N, K, 1.f, 0.f, 0, false, 1e-4 * std::sqrt(double(K)), 1e-4, 10);
  check_gemm(false, true, M, N, K, 1.f, 0.f, 0, true, 1e-2 * std::sqrt(double(K)), 1e-2, 10);
  check_gemm(true, false, K, N, M, 1.f, 1.f, 0, true, 1e-2 * std::sqrt(double(M)), 1e-2, 11);
  check_gemm(false, false, M, K, N, 1.f, 0.f, 0, true, 1e-2 * std::sqrt(double(N)), 1e-2, 12);
}

TEST_CASE("cuda gemm with K = 0 scales C by beta", "[cuda]") {
  const std::vector<float> c0 = random_vector(6, 20);
  DeviceBuffer a(std::vector<float>(1, 1.f)), b(std::vector<float>(3, 1.f)), c(c0);
  cuda::gemm(false, false, 2, 3, 0, 1.f, a.get(), 1, b.get(), 3, 0.5f, c.get(), 3);
  std::vector<float> ref = c0;
  for (float& v : ref) v *= 0.5f;
  require_close(c.download(), ref, 0.0, 1e-7, "gemm K=0");
}

TEST_CASE("cuda gemm_strided_batched matches a loop of ops gemm", "[cuda]") {
  const int64_t M = 17, N = 23, K = 31, batch = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("ta " << ta << " tb " << tb);
      const int64_t lda = stored_cols(ta, M, K) + 1, ldb = stored_cols(tb, K, N) + 2, ldc = N + 1;
      // Strides with slack past each matrix.
      const int64_t sa = stored_rows(ta, M, K) * lda + 5, sb = stored_rows(tb, K, N) * ldb + 3,
                    sc = M * ldc + 7;
      const std::vector<float> a = random_vector(sa * batch, 30), b = random_vector(sb * batch, 31),
                               c0 = random_vector(sc * batch, 32);
      std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), cd(c0.begin(), c0.end());
      for (int64_t i = 0; i < batch; ++i)
        ops::gemm<double>(ta, tb, M, N, K, 0.75, ad.data() + i * sa, lda, bd.data() + i * sb, ldb, 0.25,
                          cd.data() + i * sc, ldc);
      DeviceBuffer da(a), db(b), dc(c0);
      Tf32Guard tf(false);
      cuda::gemm_strided_batched(ta, tb, M, N, K, 0.75f, da.get(), lda, sa, db.get(), ldb, sb, 0.25f,
                                 dc.get(), ldc, sc, batch);
      const std::vector<float> c = dc.download();
      std::vector<float> got, ref;
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t r = 0; r < M; ++r)
          for (int64_t j = 0; j < N; ++j) {
            got.push_back(c[i * sc + r * ldc + j]);
            ref.push_back(float(cd[i * sc + r * ldc + j]));
          }
      require_close(got, ref, 1e-5 * std::sqrt(double(K)), 1e-4, "gemm_strided_batched");
      // The slack between matrices is not touched.
      CHECK(c[M * ldc + 3] == c0[M * ldc + 3]);
    }
}

TEST_CASE("cuda patchify and unpatchify match the CPU exactly", "[cuda][patchify]") {
  const int64_t B = 4, ch = 3, H = 32, W = 48, P = 8, total = B * ch * H * W;
  const std::vector<float> x = random_vector(total, 40), dcols = random_vector(total, 41);
  std::vector<float> ref_cols(total), ref_dx(total);
  ops::patchify(x.data(), ref_cols.data(), B, ch, H, W, P);
  ops::unpatchify(dcols.data(), ref_dx.data(), B, ch, H, W, P);
  DeviceBuffer dx_in(x), cols(total), dc(dcols), dx(total);
  cuda::patchify(dx_in.get(), cols.get(), B, ch, H, W, P);
  cuda::unpatchify(dc.get(), dx.get(), B, ch, H, W, P);
  require_equal(cols.download(), ref_cols, "patchify");
  require_equal(dx.download(), ref_dx, "unpatchify");
  CHECK_THROWS_AS(cuda::patchify(dx_in.get(), cols.get(), B, ch, H, W, 7), Error);
}

TEST_CASE("cuda elementwise maps match the CPU exactly", "[cuda][elementwise]") {
  const int64_t n = 100003;
  const std::vector<float> a = random_vector(n, 50), b = random_vector(n, 51);
  std::vector<float> ref_add(n), ref_mul(n), ref_scale(n);
  for (int64_t i = 0; i < n; ++i)
    ref_add[i] = a[i] + b[i], ref_mul[i] = a[i] * b[i], ref_scale[i] = a[i] * 0.3f;
  for (int off : {0, 1}) {
    INFO("offset " << off);
    DevArray da(a, off), db(b, off), out(std::vector<float>(n, std::nanf("")), off);
    cuda::add(da.get(), db.get(), out.get(), n);
    require_equal(out.download(), ref_add, "add");
    cuda::mul(da.get(), db.get(), out.get(), n);
    require_equal(out.download(), ref_mul, "mul");
    cuda::fill(out.get(), -4.5f, n);
    require_equal(out.download(), std::vector<float>(n, -4.5f), "fill");
    cuda::accumulate(da.get(), db.get(), n);
    require_equal(da.download(), ref_add, "accumulate");
    DevArray dx(a, off);
    cuda::scale(dx.get(), 0.3f, dx.get(), n);  // in place
    require_equal(dx.download(), ref_scale, "scale");
  }
  cuda::fill(static_cast<float*>(nullptr), 1.f, 0);  // n == 0: nothing launched, nothing checked beyond the size
}

TEST_CASE("cuda add_row_broadcast and column sums", "[cuda][elementwise]") {
  for (const auto& [R, C] : {std::pair<int64_t, int64_t>{256 * 65, 192}, {1000, 37}, {3, 5}}) {
    INFO("R " << R << " C " << C);
    const std::vector<float> x = random_vector(R * C, 60), bias = random_vector(C, 61),
                             acc0 = random_vector(C, 62);
    std::vector<float> ref_bcast(R * C), ref_sums(C);
    for (int64_t c = 0; c < C; ++c) {
      double s = acc0[c];
      for (int64_t r = 0; r < R; ++r) s += x[r * C + c], ref_bcast[r * C + c] = x[r * C + c] + bias[c];
      ref_sums[c] = float(s);
    }
    DeviceBuffer dx(x), dbias(bias), out(R * C), acc(acc0);
    cuda::add_row_broadcast(dx.get(), dbias.get(), out.get(), R, C);
    require_equal(out.download(), ref_bcast, "add_row_broadcast");
    cuda::column_sums_accumulate(dx.get(), acc.get(), R, C);
    const std::vector<float> first = acc.download();
    require_close(first, ref_sums, 1e-5 * std::sqrt(double(R)), 1e-5, "column sums");
    acc.upload(acc0);
    cuda::column_sums_accumulate(dx.get(), acc.get(), R, C);
    require_equal(acc.download(), first, "column sums repeated bitwise");
  }
}

TEST_CASE("cuda sum_all is a deterministic sum", "[cuda][elementwise]") {
  for (int64_t n : {int64_t(3) << 20, int64_t(1000), int64_t(0)}) {
    INFO("n " << n);
    const std::vector<float> x = random_vector(n > 0 ? n : 1, 70);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += x[i];
    DeviceBuffer dx(x), out(1), again(1);
    cuda::sum_all(dx.get(), out.get(), n);
    cuda::sum_all(dx.get(), again.get(), n);
    const std::vector<float> got = out.download();
    require_close(got, {float(ref)}, 1e-5 * std::sqrt(double(n) + 1), 1e-5, "sum_all");
    require_equal(again.download(), got, "sum_all repeated bitwise");
  }
}

// ---- optimizers and the step guard ------------------------------------------------

namespace {

/// One value of type V on the device (the per-step scalars of StepInputs,
/// the step guard's counters and sums).
template <class V>
class DevValues {
 public:
  explicit DevValues(const std::vector<V>& init)
      : n_(init.size()), p_(static_cast<V*>(cuda::allocate(n_ * sizeof(V)))) {
    upload(init);
  }
  ~DevValues() { cuda::deallocate(p_, n_ * sizeof(V)); }
  DevValues(const DevValues&) = delete;
  DevValues& operator=(const DevValues&) = delete;
  V* get() const { return p_; }
  void upload(const std::vector<V>& host) {
    REQUIRE(host.size() == n_);
    cuda::copy_to_device(p_, host.data(), n_ * sizeof(V));
  }
  std::vector<V> download() const {
    std::vector<V> h(n_);
    cuda::copy_to_host(h.data(), p_, n_ * sizeof(V));
    cuda::synchronize();
    return h;
  }

 private:
  size_t n_;
  V* p_;
};

/// CPU parameter tensors for vit::optim and their device copies with slots.
struct GpuParams {
  std::vector<TensorF> params;
  std::vector<DevArray> w, g, s0, s1;
  std::vector<cuda::ParamSlot> slots;
  std::vector<optim::ParamGroup<float>> groups;

  GpuParams(const std::vector<int64_t>& sizes, const std::vector<double>& wds, int misaligned_every,
            uint64_t seed) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t n = sizes[i];
      const std::vector<float> init = random_vector(n, seed + i);
      TensorF p = TensorF::from_data({n}, init);
      p.set_requires_grad(true);
      params.push_back(p);
      const int off = misaligned_every > 0 && i % misaligned_every == 1 ? 1 : 0;
      w.emplace_back(init, off);
      g.emplace_back(std::vector<float>(n, 0.f), off);
      s0.emplace_back(std::vector<float>(n, 0.f), off);
      s1.emplace_back(std::vector<float>(n, 0.f), off);
      groups.push_back({{{param_name(i), p}}, wds[i]});
      slots.push_back({w[i].get(), g[i].get(), s0[i].get(), s1[i].get(), n, wds[i]});
    }
  }
  /// The same fresh gradients on both sides; nan: NaN on the device (a
  /// non-finite step whose update must not read them), none on the CPU.
  void new_gradients(uint64_t seed, bool nan = false) {
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> gv = random_vector(slots[i].n, seed + 1000 * i, 0.5);
      if (nan) std::fill(gv.begin(), gv.end(), std::nanf(""));
      else params[i].set_grad(TensorF::from_data({slots[i].n}, gv));
      g[i].upload(gv);
    }
  }
  /// State the CPU has not made yet must be the device's zeros.
  template <class Opt>
  void compare(const Opt& opt, const std::vector<const char*>& state_names) const {
    for (size_t i = 0; i < params.size(); ++i) {
      INFO("slot " << i << " of size " << slots[i].n);
      require_close(w[i].download(), params[i].to_vector(), 1e-6, 1e-5, "param");
      for (size_t s = 0; s < state_names.size(); ++s) {
        const std::string key = param_name(i) + "." + state_names[s];
        std::vector<float> ref(slots[i].n, 0.f);
        for (const auto& [name, t] : opt.named_state())
          if (name == key) ref = t.to_vector();
        require_close((s == 0 ? s0 : s1)[i].download(), ref, 1e-7, 1e-5, key.c_str());
      }
    }
  }
};

/// A schedule's learning rate: a different, non-round value every step.
double lr_at(int t) { return 3e-3 * (1.0 - 0.1 * t) + 1e-4 / 3.0; }

/// Steps of Adam/AdamW as a training step queues them, nothing read back in
/// between: check_step_finite on the loss and grad_norm's norm sets the skip
/// flag, grad_norm's coefficient scales the gradients inside adam_step, the
/// learning rate and step count live on the device. Step 3 has a NaN loss
/// (and NaN gradients): skipped. The CPU runs clip_grad_norm and optim::Adam
/// on the finite steps only.
void run_adam(bool decoupled, const std::vector<int64_t>& sizes, const std::vector<double>& wds) {
  GpuParams gp(sizes, wds, 3, 100);
  const optim::AdamOptions o{3e-3, 0.9, 0.999, 1e-8};
  optim::Adam<float> opt(gp.groups, o, decoupled);
  const cuda::AdamHyper h{o.beta1, o.beta2, o.eps, decoupled};
  DeviceBuffer norm(1), coef(1), loss(1), skip(1);
  DevValues<double> lr({0.0});
  DevValues<int64_t> step({0}), counters({0, 0, 0});
  for (int t = 1; t <= 5; ++t) {
    INFO("step " << t);
    const bool bad = t == 3;
    gp.new_gradients(200 + t, bad);
    double total = 0;
    for (auto& p : gp.params)
      for (float v : p.grad().to_vector()) total += double(v) * v;
    // Steps 2 and 4 clip (max_norm below the norm), 1 and 5 do not.
    const double max_norm = t % 2 == 0 ? 0.5 * std::sqrt(total) : 2 * std::sqrt(total);
    loss.upload({bad ? std::nanf("") : 1.5f});
    lr.upload({lr_at(t)});
    cuda::grad_norm(gp.slots.data(), int(gp.slots.size()), float(max_norm), norm.get(), coef.get());
    cuda::check_step_finite(loss.get(), norm.get(), skip.get(), counters.get());
    cuda::adam_step(gp.slots.data(), int(gp.slots.size()), h, {lr.get(), coef.get(), skip.get(), step.get()});
    if (!bad) {
      const double cpu_norm = optim::clip_grad_norm(gp.params, max_norm);
      opt.set_lr(lr_at(t));
      opt.step();
      require_close(norm.download(), {float(cpu_norm)}, 0.0, 1e-5, "grad norm");
    }
    require_equal(skip.download(), {bad ? 1.f : 0.f}, "skip flag");
    CHECK(step.download()[0] == opt.steps());
    gp.compare(opt, {"exp_avg", "exp_avg_sq"});
  }
  CHECK(counters.download() == std::vector<int64_t>{1, 0, 4});
}

}  // namespace

TEST_CASE("cuda AdamW and Adam with clipping and a skipped step match vit optim", "[cuda][optim]") {
  const std::vector<int64_t> sizes = {70000, 1027, 4099, 0, 192};
  const std::vector<double> wds = {0.05, 0.0, 0.1, 0.1, 0.0};
  SECTION("AdamW") { run_adam(true, sizes, wds); }
  SECTION("Adam, L2 weight decay") { run_adam(false, sizes, wds); }
}

TEST_CASE("cuda AdamW over more slots than one launch holds", "[cuda][optim]") {
  std::vector<int64_t> sizes(600);
  std::vector<double> wds(600);
  for (size_t i = 0; i < sizes.size(); ++i) sizes[i] = 1 + (i * 37) % 9000, wds[i] = (i % 2) * 0.05;
  run_adam(true, sizes, wds);
}

TEST_CASE("cuda SGD matches vit optim with every option, the first step skipped", "[cuda][optim]") {
  const auto run = [](const optim::SgdOptions& o, double wd) {
    GpuParams gp({70000, 1027, 4099}, {wd, 0.0, wd}, 3, 300);
    optim::SGD<float> opt(gp.groups, o);
    const cuda::SgdHyper h{o.momentum, o.dampening, o.nesterov};
    DevValues<double> lr({0.0});
    DevValues<int64_t> step({0});
    DeviceBuffer skip(1);
    for (int t = 1; t <= 4; ++t) {
      INFO("step " << t);
      const bool bad = t == 1;  // the buffer's first update (buffer = d) moves to step 2
      gp.new_gradients(400 + t, bad);
      skip.upload({bad ? 1.f : 0.f});
      lr.upload({lr_at(t) * 30});
      cuda::sgd_step(gp.slots.data(), int(gp.slots.size()), h, {lr.get(), nullptr, skip.get(), step.get()});
      if (!bad) {
        opt.set_lr(lr_at(t) * 30);
        opt.step();
      }
      CHECK(step.download()[0] == opt.steps());
      if (o.momentum != 0) gp.compare(opt, {"momentum_buffer"});
      else gp.compare(opt, {});
    }
  };
  SECTION("plain with weight decay") { run({0.1, 0.0, 0.0, false}, 0.01); }
  SECTION("momentum") { run({0.1, 0.9, 0.0, false}, 0.0); }
  SECTION("momentum with dampening and weight decay") { run({0.05, 0.8, 0.1, false}, 0.02); }
  SECTION("nesterov") { run({0.1, 0.9, 0.0, true}, 0.01); }
}

TEST_CASE("cuda grad_norm is repeatable and handles no gradients", "[cuda][optim]") {
  GpuParams gp({70000, 1027, 4099}, {0, 0, 0}, 3, 500);
  gp.new_gradients(600);
  DeviceBuffer n1(1), c1(1), n2(1), c2(1);
  cuda::grad_norm(gp.slots.data(), 3, 1.f, n1.get(), c1.get());
  cuda::grad_norm(gp.slots.data(), 3, 1.f, n2.get(), c2.get());
  require_equal(n2.download(), n1.download(), "norm repeated bitwise");
  require_equal(c2.download(), c1.download(), "coef repeated bitwise");
  cuda::grad_norm(nullptr, 0, 1.f, n1.get(), c1.get());
  require_equal(n1.download(), {0.f}, "norm of nothing");
  require_equal(c1.download(), {1.f}, "coef of nothing");
  cuda::grad_norm(gp.slots.data(), 3, 0.f, n1.get(), c1.get());
  require_equal(c1.download(), {1.f}, "coef with max_norm 0");
}

TEST_CASE("cuda optimizer launchers reject bad step inputs", "[cuda][optim]") {
  GpuParams gp({10}, {0.0}, 0, 700);
  DevValues<double> lr({0.1});
  DevValues<int64_t> step({0});
  CHECK_THROWS_AS(cuda::adam_step(gp.slots.data(), 1, {}, {nullptr, nullptr, nullptr, step.get()}), Error);
  CHECK_THROWS_AS(cuda::sgd_step(gp.slots.data(), 1, {}, {lr.get(), nullptr, nullptr, nullptr}), Error);
  CHECK_THROWS_AS(cuda::adam_step(gp.slots.data(), 1, {1.5, 0.999, 1e-8, false},
                                  {lr.get(), nullptr, nullptr, step.get()}),
                  Error);
}

TEST_CASE("cuda check_step_finite and accumulate_metrics against the host rules", "[cuda][step_guard]") {
  DevValues<int64_t> counters({0, 0, 0});
  DeviceBuffer loss(1), norm(1), skip(1);
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<float, float>> steps = {{1.f, 2.f}, {nan, 2.f}, {1.f, inf}, {1.f, -inf},
                                                      {2.f, 1.f}, {inf, 1.f}};
  int64_t nonfinite = 0, run = 0, applied = 0;
  for (const auto& [l, n] : steps) {
    const bool bad = !std::isfinite(l) || !std::isfinite(n);
    nonfinite += bad, run = bad ? run + 1 : 0, applied += !bad;
    loss.upload({l});
    norm.upload({n});
    cuda::check_step_finite(loss.get(), norm.get(), skip.get(), counters.get());
    require_equal(skip.download(), {bad ? 1.f : 0.f}, "skip");
    CHECK(counters.download() == std::vector<int64_t>{nonfinite, run, applied});
  }

  for (const auto& [B, K] : {std::pair<int64_t, int64_t>{1000, 10}, {3, 1000}, {257, 1}}) {
    INFO("B " << B << " K " << K);
    std::vector<float> logits = random_vector(B * K, 800 + K);
    for (float& v : logits) v = std::round(std::clamp(v, -2.4f, 2.4f));  // many ties
    std::vector<int32_t> labels(B);
    int64_t correct = 0;
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data() + b * K;
      const int64_t top = std::max_element(row, row + K) - row;
      labels[b] = static_cast<int32_t>(b % 2 ? top : (top + b) % K);
      correct += top == labels[b];
    }
    DeviceBuffer dlogits(logits), dloss(std::vector<float>{0.75f}), dskip(std::vector<float>{1.f});
    DevValues<int32_t> dlabels(labels);
    DevValues<double> acc({0.0, 0.0, 0.0});
    cuda::accumulate_metrics(dlogits.get(), dlabels.get(), dloss.get(), nullptr, B, K, acc.get());
    cuda::accumulate_metrics(dlogits.get(), dlabels.get(), dloss.get(), dskip.get(), B, K, acc.get());
    CHECK(acc.download() == std::vector<double>{0.75 * B, double(correct), double(B)});
  }
}
