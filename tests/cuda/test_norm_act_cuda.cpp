// The launchers of cuda/{layernorm,gelu,softmax,cross_entropy}.cu on the GPU
// against the CPU ops in double, outputs poisoned (NaN) before every launch:
// ViT shapes (R = 65·64 tokens, C = 192/384/768; attention rows of 65 and 197)
// and odd ones (C = 7, 200; rows of 1100 for the block-per-row kernels;
// pointers off 16-byte alignment for the scalar path), both GELU forms,
// in-place calls, and bitwise repeatable parameter gradients and loss (no
// atomics).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>
#include <vit/cuda/cross_entropy.hpp>
#include <vit/cuda/gelu.hpp>
#include <vit/cuda/layernorm.hpp>
#include <vit/cuda/runtime.hpp>
#include <vit/cuda/softmax.hpp>
#include <vit/vit.hpp>

#include "device_buffer.hpp"

namespace {

namespace cuda = vit::cuda;
using vit::test::DeviceBuffer;
using vit::test::random_affine;
using vit::test::random_vector;
using vit::test::require_close;
using vit::test::to_double;
using vit::test::to_float;

constexpr double kAtol = 1e-5, kRtol = 1e-4;

/// Device int32 labels (DeviceBuffer holds floats).
class DeviceLabels {
 public:
  explicit DeviceLabels(const std::vector<int32_t>& host)
      : bytes_(host.size() * sizeof(int32_t)),
        p_(static_cast<int32_t*>(vit::cuda::allocate(bytes_))) {
    vit::cuda::copy_to_device(p_, host.data(), bytes_);
  }
  ~DeviceLabels() { vit::cuda::deallocate(p_, bytes_); }
  DeviceLabels(const DeviceLabels&) = delete;
  DeviceLabels& operator=(const DeviceLabels&) = delete;
  const int32_t* get() const { return p_; }

 private:
  size_t bytes_;
  int32_t* p_;
};

/// A device copy of `host` starting `offset` floats into its buffer: offset 1
/// breaks 16-byte alignment and sends the launchers down the scalar path.
struct Placed {
  Placed(const std::vector<float>& host, size_t offset)
      : buf(host.size() + offset), offset(offset) {
    std::vector<float> padded(offset, 0.f);
    padded.insert(padded.end(), host.begin(), host.end());
    buf.upload(padded);
  }
  explicit Placed(size_t n, size_t offset) : buf(n + offset), offset(offset) {}
  float* get() const { return buf.get() + offset; }
  std::vector<float> download() const {
    const std::vector<float> all = buf.download();
    return {all.begin() + static_cast<std::ptrdiff_t>(offset), all.end()};
  }
  DeviceBuffer buf;
  size_t offset;
};

// ---- LayerNorm -----------------------------------------------------------------------

void check_layer_norm(int64_t R, int64_t C, size_t offset, uint64_t seed) {
  INFO("R " << R << ", C " << C << ", offset " << offset);
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<float> x = random_affine(n, seed, 2.f, 0.5f);
  const std::vector<float> w = random_affine(C, seed + 2, 0.5f, 1.f),
                           b = random_vector(C, seed + 3);
  const std::vector<float> dout = random_vector(n, seed + 4);
  const std::vector<float> dw_init = random_vector(C, seed + 5),
                           db_init = random_vector(C, seed + 6);
  const float eps = 1e-6f;

  const size_t rows = static_cast<size_t>(R);
  Placed d_x(x, offset), d_out(n, offset), d_mean(rows, 0), d_rstd(rows, 0), d_w(w, offset),
      d_b(b, offset);
  cuda::layer_norm_forward(d_x.get(), d_w.get(), d_b.get(), d_out.get(), d_mean.get(), d_rstd.get(),
                           R, C, eps);

  const std::vector<double> sd = to_double(x), wd = to_double(w), bd = to_double(b);
  std::vector<double> out_ref(n), mean_ref(R), rstd_ref(R);
  vit::ops::layer_norm_forward<double>(sd.data(), wd.data(), bd.data(), out_ref.data(),
                                       mean_ref.data(), rstd_ref.data(), R, C, eps);
  require_close(d_out.download(), to_float(out_ref), kAtol, kRtol, "layer_norm out");
  require_close(d_mean.download(), to_float(mean_ref), kAtol, kRtol, "layer_norm mean");
  require_close(d_rstd.download(), to_float(rstd_ref), kAtol, kRtol, "layer_norm rstd");

  // backward on the forward's own mean/rstd
  const std::vector<float> mean = d_mean.download(), rstd = d_rstd.download();
  Placed d_dout(dout, offset), d_dx(n, offset), d_dw(dw_init, 0), d_db(db_init, 0);
  cuda::layer_norm_backward(d_dout.get(), d_x.get(), d_w.get(), d_mean.get(), d_rstd.get(),
                            d_dx.get(), d_dw.get(), d_db.get(), R, C);
  std::vector<double> dx_ref(n), dw_ref = to_double(dw_init), db_ref = to_double(db_init);
  const std::vector<double> gd = to_double(dout), md = to_double(mean), rd = to_double(rstd);
  vit::ops::layer_norm_backward<double>(gd.data(), sd.data(), wd.data(), md.data(), rd.data(),
                                        dx_ref.data(), dw_ref.data(), db_ref.data(), R, C);
  require_close(d_dx.download(), to_float(dx_ref), kAtol, kRtol, "layer_norm dx");
  // Sums over R rows: a looser atol where terms cancel to a small total.
  require_close(d_dw.download(), to_float(dw_ref), 1e-4, kRtol, "layer_norm dweight");
  require_close(d_db.download(), to_float(db_ref), 1e-4, kRtol, "layer_norm dbias");
}

// ---- GELU -------------------------------------------------------------------------------

void check_gelu(int64_t n, bool tanh_approx, size_t offset, uint64_t seed) {
  INFO("n " << n << ", tanh " << tanh_approx << ", offset " << offset);
  const size_t total = static_cast<size_t>(n);
  const std::vector<float> x = random_affine(total, seed, 2.5f, 0.f),
                           dout = random_vector(total, seed + 1);
  const vit::GeluApprox approx = tanh_approx ? vit::GeluApprox::Tanh : vit::GeluApprox::None;
  const std::vector<double> xd = to_double(x), gd = to_double(dout);
  std::vector<double> out_ref(total), dx_ref(total);
  vit::ops::gelu_forward<double>(xd.data(), out_ref.data(), n, approx);
  vit::ops::gelu_backward<double>(gd.data(), xd.data(), dx_ref.data(), n, approx);

  Placed d_x(x, offset), d_out(total, offset), d_dout(dout, offset), d_dx(total, offset);
  cuda::gelu_forward(d_x.get(), d_out.get(), n, tanh_approx);
  require_close(d_out.download(), to_float(out_ref), kAtol, kRtol, "gelu out");
  cuda::gelu_backward(d_dout.get(), d_x.get(), d_dx.get(), n, tanh_approx);
  require_close(d_dx.download(), to_float(dx_ref), kAtol, kRtol, "gelu dx");
}

// ---- softmax ----------------------------------------------------------------------------

void check_softmax(int64_t R, int64_t n, size_t offset, uint64_t seed) {
  INFO("R " << R << ", n " << n << ", offset " << offset);
  const size_t total = static_cast<size_t>(R * n);
  const std::vector<float> x = random_affine(total, seed, 3.f, 1.f),
                           dy = random_vector(total, seed + 1);
  const std::vector<double> xd = to_double(x);
  std::vector<double> y_ref(total), dx_ref(total);
  vit::ops::softmax_forward<double>(xd.data(), y_ref.data(), R, n);
  const std::vector<float> y = to_float(y_ref);
  const std::vector<double> yd = to_double(y), dyd = to_double(dy);
  vit::ops::softmax_backward<double>(yd.data(), dyd.data(), dx_ref.data(), R, n);

  Placed d_x(x, offset), d_out(total, offset), d_y(y, offset), d_dy(dy, offset),
      d_dx(total, offset);
  cuda::softmax_forward(d_x.get(), d_out.get(), R, n);
  require_close(d_out.download(), y, kAtol, kRtol, "softmax out");
  cuda::softmax_backward(d_y.get(), d_dy.get(), d_dx.get(), R, n);
  require_close(d_dx.download(), to_float(dx_ref), kAtol, kRtol, "softmax dx");
}

// ---- cross-entropy ----------------------------------------------------------------------

void check_cross_entropy(int64_t B, int64_t K, bool soft, float smoothing, uint64_t seed) {
  INFO("B " << B << ", K " << K << ", soft " << soft << ", smoothing " << smoothing);
  const size_t n = static_cast<size_t>(B * K);
  const std::vector<float> logits = random_affine(n, seed, 2.f, 0.3f);
  std::vector<int32_t> labels(B);
  for (int64_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>((b * 7 + seed) % K);
  std::vector<float> q(n);
  if (!soft) {
    for (size_t i = 0; i < n; ++i) q[i] = static_cast<float>(static_cast<double>(smoothing) / K);
    for (int64_t b = 0; b < B; ++b) q[b * K + labels[b]] += static_cast<float>(1.0 - smoothing);
  } else {
    const std::vector<float> r = random_vector(n, seed + 1);
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t c = 0; c < K; ++c) s += std::exp(r[b * K + c]);
      for (int64_t c = 0; c < K; ++c) q[b * K + c] = static_cast<float>(std::exp(r[b * K + c]) / s);
    }
  }
  const std::vector<double> zd = to_double(logits), qd = to_double(q);
  std::vector<double> probs_ref(n), dlogits_ref(n);
  const double loss_ref =
      vit::ops::cross_entropy_forward<double>(zd.data(), qd.data(), probs_ref.data(), B, K);

  DeviceBuffer dz(logits), dq(q), dprobs(n), dloss(1), dloss2(1), dgrad(std::vector<float>{0.37f}),
      ddz(n);
  DeviceLabels dlabels(labels);
  const int32_t* lp = soft ? nullptr : dlabels.get();
  const float* tp = soft ? dq.get() : nullptr;
  cuda::cross_entropy_forward(dz.get(), lp, tp, smoothing, dprobs.get(), dloss.get(), B, K);
  const std::vector<float> probs = dprobs.download(), loss = dloss.download();
  require_close(probs, to_float(probs_ref), kAtol, kRtol, "cross_entropy probs");
  require_close(loss, {static_cast<float>(loss_ref)}, kAtol, kRtol, "cross_entropy loss");
  cuda::cross_entropy_forward(dz.get(), lp, tp, smoothing, dprobs.get(), dloss2.get(), B, K);
  REQUIRE(dloss2.download() == loss);  // fixed-order sum: bitwise repeatable

  cuda::cross_entropy_backward(dgrad.get(), dprobs.get(), lp, tp, smoothing, ddz.get(), B, K);
  const std::vector<double> pd = to_double(probs);
  vit::ops::cross_entropy_backward<double>(0.37, pd.data(), qd.data(), dlogits_ref.data(), B, K);
  require_close(ddz.download(), to_float(dlogits_ref), kAtol, kRtol, "cross_entropy dlogits");
}

}  // namespace

TEST_CASE("cuda layer_norm matches the CPU op at ViT shapes and odd ones", "[cuda]") {
  uint64_t seed = 1000;
  for (int64_t C : {192, 384, 768}) check_layer_norm(65 * 64, C, 0, seed += 10);
  for (int64_t C : {1, 7, 200, 1100})
    for (int64_t R : {1, 37, 1000}) check_layer_norm(R, C, 0, seed += 10);
  check_layer_norm(257, 192, 1, seed += 10);  // misaligned: scalar loads
  check_layer_norm(65, 1024, 0, seed += 10);  // the longest register row
}

TEST_CASE("cuda layer_norm runs in place and its parameter gradients are bitwise repeatable",
          "[cuda]") {
  const int64_t R = 65 * 64, C = 384;
  const size_t n = static_cast<size_t>(R * C);
  const std::vector<float> x = random_vector(n, 1), w = random_vector(C, 3),
                           b = random_vector(C, 4), g = random_vector(n, 5);
  DeviceBuffer dx(x), dw(w), db(b), dout(n), dmean(R), drstd(R), dg(g), dgx(n);
  cuda::layer_norm_forward(dx.get(), dw.get(), db.get(), dout.get(), dmean.get(), drstd.get(), R, C,
                           1e-6f);
  const std::vector<float> out = dout.download();
  // out == x: in place, bitwise the same as out of place; also for the long-row kernel
  DeviceBuffer inplace(x);
  cuda::layer_norm_forward(inplace.get(), dw.get(), db.get(), inplace.get(), dmean.get(),
                           drstd.get(), R, C, 1e-6f);
  REQUIRE(inplace.download() == out);
  {
    const int64_t RL = 7, CL = 5000;
    const std::vector<float> xl = random_vector(RL * CL, 6), wl = random_vector(CL, 7),
                             bl = random_vector(CL, 8);
    DeviceBuffer dxl(xl), dwl(wl), dbl(bl), doutl(RL * CL), inplace_l(xl);
    cuda::layer_norm_forward(dxl.get(), dwl.get(), dbl.get(), doutl.get(), nullptr, nullptr, RL, CL,
                             1e-6f);
    cuda::layer_norm_forward(inplace_l.get(), dwl.get(), dbl.get(), inplace_l.get(), nullptr,
                             nullptr, RL, CL, 1e-6f);
    REQUIRE(inplace_l.download() == doutl.download());
  }

  std::vector<std::vector<float>> dws, dbs;
  for (int rep = 0; rep < 2; ++rep) {
    DeviceBuffer gw(std::vector<float>(C, 0.f)), gb(std::vector<float>(C, 0.f));
    cuda::layer_norm_backward(dg.get(), dx.get(), dw.get(), dmean.get(), drstd.get(), dgx.get(),
                              gw.get(), gb.get(), R, C);
    dws.push_back(gw.download());
    dbs.push_back(gb.download());
  }
  REQUIRE(dws[0] == dws[1]);
  REQUIRE(dbs[0] == dbs[1]);
}

TEST_CASE("cuda gelu matches the CPU gelu at ViT MLP shapes and odd ones, both forms", "[cuda]") {
  uint64_t seed = 2000;
  for (int64_t C : {192, 384, 768, 1536})
    for (bool tanh_approx : {false, true}) check_gelu(65 * 64 * C, tanh_approx, 0, seed += 10);
  for (int64_t n : {1, 7, 200, 4161, 111003})
    for (bool tanh_approx : {false, true}) check_gelu(n, tanh_approx, 0, seed += 10);
  check_gelu(301 * 192, false, 1, seed += 10);  // misaligned: scalar loads
}

TEST_CASE("cuda gelu runs in place", "[cuda]") {
  const int64_t n = 65 * 64 * 768 + 3;
  const std::vector<float> x = random_vector(n, 11), g = random_vector(n, 13);
  DeviceBuffer dx(x), dout(n), dg(g), dgx(n);
  cuda::gelu_forward(dx.get(), dout.get(), n, false);
  DeviceBuffer inplace(x);
  cuda::gelu_forward(inplace.get(), inplace.get(), n, false);
  REQUIRE(inplace.download() == dout.download());
  cuda::gelu_backward(dg.get(), dx.get(), dgx.get(), n, true);
  DeviceBuffer inplace_g(g);
  cuda::gelu_backward(inplace_g.get(), dx.get(), inplace_g.get(), n, true);
  REQUIRE(inplace_g.download() == dgx.download());
}

TEST_CASE("cuda softmax matches the CPU op on attention rows and odd ones", "[cuda]") {
  uint64_t seed = 3000;
  check_softmax(64 * 3 * 65, 65, 0, seed += 10);   // ViT-Ti attention on 32x32 images, patch 4
  check_softmax(8 * 3 * 197, 197, 0, seed += 10);  // 224 images, patch 16
  for (int64_t n : {192, 384, 768, 1024}) check_softmax(65 * 64, n, 0, seed += 10);
  for (int64_t n : {1, 5, 1100, 5000}) check_softmax(37, n, 0, seed += 10);
  check_softmax(100, 64, 1, seed += 10);  // misaligned: scalar loads
}

TEST_CASE("cuda cross_entropy matches the CPU op with labels, smoothing and soft targets",
          "[cuda]") {
  uint64_t seed = 4000;
  for (int64_t B : {1, 64, 256})
    for (int64_t K : {10, 100, 1000}) {
      check_cross_entropy(B, K, false, 0.f, seed += 10);
      check_cross_entropy(B, K, false, 0.1f, seed += 10);
      check_cross_entropy(B, K, true, 0.f, seed += 10);
    }
  check_cross_entropy(3, 21843, false, 0.1f, seed += 10);
}

TEST_CASE("cuda launchers with zero rows launch nothing and bad arguments throw", "[cuda]") {
  const float* none = nullptr;  // the launchers are overloaded on float and bf16 pointers
  cuda::layer_norm_forward(none, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 192, 1e-6f);
  cuda::layer_norm_backward(none, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0,
                            192);
  cuda::gelu_forward(none, nullptr, 0, false);
  cuda::gelu_backward(none, nullptr, nullptr, 0, false);
  cuda::softmax_forward(none, nullptr, 0, 65);
  cuda::softmax_backward(none, nullptr, nullptr, 0, 65);
  cuda::cross_entropy_forward(none, nullptr, nullptr, 0.f, nullptr, nullptr, 0, 10);
  cuda::cross_entropy_backward(none, nullptr, nullptr, nullptr, 0.f, nullptr, 0, 10);
  cuda::synchronize();
  REQUIRE_THROWS_WITH(cuda::softmax_forward(none, nullptr, -1, 4),
                      Catch::Contains("negative size"));
  REQUIRE_THROWS_WITH(
      cuda::layer_norm_forward(none, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 8, 1e-6f),
      Catch::Contains("null"));
  DeviceBuffer z(10), p(10), l(1);
  REQUIRE_THROWS_WITH(
      cuda::cross_entropy_forward(z.get(), nullptr, nullptr, 0.f, p.get(), l.get(), 1, 10),
      Catch::Contains("labels or a target"));
  const std::vector<int32_t> labels = {3};
  DeviceLabels dl(labels);
  REQUIRE_THROWS_WITH(
      cuda::cross_entropy_forward(z.get(), dl.get(), nullptr, 1.5f, p.get(), l.get(), 1, 10),
      Catch::Contains("label_smoothing"));
}
