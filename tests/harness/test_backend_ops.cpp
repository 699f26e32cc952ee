// One harness checks every op of tests/harness/op_table.hpp on every backend
// this build has, forward and backward, each as its own test case
// ("op <name> on <backend>"):
//   float64-fd   float64 on the CPU, backward against central finite differences;
//   float32-cpu  float32 on the CPU against the float64 result;
//   cuda         float32 on Device::CUDA against the float64 result: the real
//                GPU in vit_cuda_tests, the emulated kernels
//                (tests/cuda_emu/backend) in vit_emu_backend_tests;
//   bfloat16-cpu, cuda-bf16   bf16 storage (float32 math) on the CPU and on
//                Device::CUDA, against the float64 result of the same inputs
//                rounded to bf16: relative L2 error of the output and of each
//                gradient below the row's bound (1e-2), no NaN or infinity.
// Inputs are fresh random values per op; the emulated backend poisons every
// fresh device block, so an output element a kernel forgets shows up as NaN.
// The same file is compiled into each test binary; what the binary links
// decides which backends it registers.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <sstream>

#include "harness/op_table.hpp"
#include "support/check.hpp"

namespace vit::harness {
namespace {

enum class Backend { Fd64, Cpu32, Cuda, CpuBf16, CudaBf16 };

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Fd64: return "float64-fd";
    case Backend::Cpu32: return "float32-cpu";
    case Backend::CpuBf16: return "bfloat16-cpu";
#ifdef VIT_CUDA_EMULATED
    case Backend::CudaBf16: return "cuda-emulated-bf16";
    default: return "cuda-emulated";
#else
    case Backend::CudaBf16: return "cuda-bf16";
    default: return "cuda";
#endif
  }
}

bool is_bf16(Backend b) { return b == Backend::CpuBf16 || b == Backend::CudaBf16; }
bool on_cuda(Backend b) { return b == Backend::Cuda || b == Backend::CudaBf16; }

/// The values bf16 can hold nearest to t's (the bf16 rows' inputs, so the
/// float64 reference sees exactly what the bf16 op sees).
TensorD rounded_to_bf16(const TensorD& t) { return t.to_dtype<bf16>().to_dtype<double>(); }

/// Fresh inputs for a row, in double on the CPU (seeded by the row's index).
std::vector<TensorD> make_inputs(const OpRow& row, uint64_t seed) {
  std::vector<TensorD> xs;
  for (size_t k = 0; k < row.inputs.size(); ++k) {
    const Input& in = row.inputs[k];
    Generator g(seed * 131 + k);
    TensorD t = TensorD::normal(in.shape, 0.0, 1.0, g);
    if (in.draw == Draw::Positive) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 1.0 + 0.5 * std::tanh(t.data()[i]);
    } else if (in.draw == Draw::Distribution) {
      NoGradGuard ng;
      t = softmax(t);
    }
    xs.push_back(t);
  }
  return xs;
}

/// Forward and the gradient of sum(f(x) ⊙ w) for every checked input, on T and device d.
template <class T>
struct Result {
  TensorD out;
  std::vector<TensorD> grads;
};

template <class T>
Result<T> evaluate(const OpRow& row, const OpFn<T>& f, const std::vector<TensorD>& inputs, Device d) {
  std::vector<Tensor<T>> xs;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor<T> x = inputs[k].to_dtype<T>().to(d);
    if (row.inputs[k].grad) x.set_requires_grad(true);
    xs.push_back(x);
  }
  Tensor<T> out = f(xs);
  // Weights that bf16 holds exactly: every dtype's backward starts from the same dout.
  const TensorD w = rounded_to_bf16(test::randn<double>(out.shape(), 4242));
  sum(mul(out, w.to_dtype<T>().to(d))).backward();
  Result<T> r;
  r.out = out.detach().to(Device::CPU).template to_dtype<double>();
  for (size_t k = 0; k < xs.size(); ++k) {
    if (!row.inputs[k].grad) continue;
    INFO("input " << k << " got no gradient");
    REQUIRE(xs[k].grad().defined());
    r.grads.push_back(xs[k].grad().to(Device::CPU).template to_dtype<double>());
  }
  return r;
}

void run(const OpRow& row, size_t index, Backend backend) {
  const std::vector<TensorD> inputs = make_inputs(row, 1000 + index);
  if (backend == Backend::Fd64) {
    std::vector<size_t> checked;
    for (size_t k = 0; k < row.inputs.size(); ++k)
      if (row.inputs[k].grad) checked.push_back(k);
    // check_gradients differentiates every input it gets: pass the checked ones
    // and close over the rest.
    test::check_gradients(
        [&](const std::vector<TensorD>& xs) {
          std::vector<TensorD> all = inputs;
          for (size_t j = 0; j < checked.size(); ++j) all[checked[j]] = xs[j];
          return row.f64(all);
        },
        [&] {
          std::vector<TensorD> v;
          for (size_t k : checked) v.push_back(inputs[k]);
          return v;
        }());
    return;
  }
  const Device d = on_cuda(backend) ? Device::CUDA : Device::CPU;
  if (is_bf16(backend)) {
    std::vector<TensorD> rounded;
    for (const TensorD& x : inputs) rounded.push_back(rounded_to_bf16(x));
    const Result<double> ref = evaluate<double>(row, row.f64, rounded, Device::CPU);
    const Result<bf16> got = evaluate<bf16>(row, row.b16, rounded, d);
    {
      INFO("forward");
      test::require_relative_l2(got.out, ref.out, row.bf16_rel_l2);
    }
    REQUIRE(got.grads.size() == ref.grads.size());
    for (size_t k = 0; k < ref.grads.size(); ++k) {
      INFO("gradient of checked input " << k);
      test::require_relative_l2(got.grads[k], ref.grads[k], row.bf16_rel_l2);
    }
    return;
  }
  const Result<double> ref = evaluate<double>(row, row.f64, inputs, Device::CPU);
  const Result<float> got = evaluate<float>(row, row.f32, inputs, d);
  {
    INFO("forward");
    test::require_close(got.out, ref.out, row.atol, row.rtol);
  }
  REQUIRE(got.grads.size() == ref.grads.size());
  for (size_t k = 0; k < ref.grads.size(); ++k) {
    INFO("gradient of checked input " << k);
    test::require_close(got.grads[k], ref.grads[k], row.atol, row.rtol);
  }
}

/// A test case per (op, backend), registered at start-up so that each shows
/// in the test list and in ctest on its own.
struct OpInvoker : Catch::ITestInvoker {
  OpRow row;
  size_t index;
  Backend backend;
  OpInvoker(OpRow r, size_t i, Backend b) : row(std::move(r)), index(i), backend(b) {}
  void invoke() const override { run(row, index, backend); }
};

bool backend_present(Backend b) {
  if (!on_cuda(b)) return true;
#if VIT_WITH_CUDA
  return cuda::available();
#else
  return false;
#endif
}

const bool registered = [] {
  static std::vector<std::string> names;  // Catch keeps references to the names
  const std::vector<OpRow> rows = op_table();
  names.reserve(rows.size() * 5);
  for (Backend b : {Backend::Fd64, Backend::Cpu32, Backend::CpuBf16, Backend::Cuda, Backend::CudaBf16}) {
    // The GPU binaries leave the CPU-only cases to vit_tests.
    if (VIT_WITH_CUDA && !on_cuda(b)) continue;
    if (!backend_present(b)) continue;
    for (size_t i = 0; i < rows.size(); ++i) {
      names.push_back("op " + rows[i].name + " on " + backend_name(b));
      Catch::AutoReg(new OpInvoker(rows[i], i, b), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                     Catch::NameAndTags{Catch::StringRef(names.back()), "[harness]"});
    }
  }
  return true;
}();

}  // namespace
}  // namespace vit::harness
