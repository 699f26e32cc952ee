// The optimizers' bf16 weight copies (Optimizer::set_low_precision_copies) on
// the CPU: after every step each updated parameter's copy equals
// to_dtype<bf16>(parameter) bit for bit, a skipped step (the skip flag)
// leaves the copies untouched, a parameter without a gradient keeps its copy,
// and the fp32 update is bitwise the one an optimizer without copies makes.
// AdamW, Adam with L2, SGD with and without momentum; odd sizes, two groups.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "support/check.hpp"

using namespace vit;
using namespace vit::optim;
using Catch::Contains;

namespace {

const std::vector<Shape> kShapes = {{7, 13}, {65}, {1}, {3, 5, 9}, {197}};

std::vector<TensorF> make_params(uint64_t seed) {
  std::vector<TensorF> ps;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    TensorF p = test::randn<float>(kShapes[i], seed + i);
    p.set_requires_grad(true);
    ps.push_back(p);
  }
  return ps;
}

std::vector<ParamGroup<float>> groups_of(const std::vector<TensorF>& ps) {
  ParamGroup<float> decay{{}, 0.05}, no_decay{{}, 0.0};
  for (size_t i = 0; i < ps.size(); ++i) {
    std::string name(1, 'p');  // appended, not "p" + ...: a g++ 12 -Wrestrict false positive
    name += std::to_string(i);
    (i % 2 == 0 ? decay : no_decay).params.emplace_back(name, ps[i]);
  }
  return {decay, no_decay};
}

/// The parameters in the groups' order (what set_low_precision_copies expects).
std::vector<TensorF> in_group_order(const Optimizer<float>& opt) {
  std::vector<TensorF> out;
  for (const auto& g : opt.groups())
    for (const auto& [n, p] : g.params) out.push_back(p);
  return out;
}

void require_bits(const TensorBF16& got, const TensorBF16& want, const std::string& what) {
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    if (got.data()[i].bits != want.data()[i].bits)
      FAIL(what << ": element " << i << " has bits " << got.data()[i].bits << ", bf16(param) has "
                << want.data()[i].bits);
}

void require_same_floats(const TensorF& a, const TensorF& b, const std::string& what) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0);
  (void)what;
}

/// A poisoned copy: every element NaN bits no rounding produces from a finite value.
TensorBF16 poisoned_like(const TensorF& p) {
  TensorBF16 c = TensorBF16::empty(p.shape());
  for (int64_t i = 0; i < c.numel(); ++i) c.data()[i] = bf16::from_bits(0x7fa5);
  return c;
}

using Make = std::function<std::unique_ptr<Optimizer<float>>(std::vector<ParamGroup<float>>)>;

/// Steps 1..6 on two identical models, one optimizer with copies, one without;
/// step 3 is skipped (skip flag 1) and parameter 2 has no gradient on step 5.
void run(const Make& make, const std::string& name) {
  INFO(name);
  const std::vector<TensorF> a = make_params(10), b = make_params(10);
  auto with = make(groups_of(a)), without = make(groups_of(b));
  const std::vector<TensorF> pa = in_group_order(*with), pb = in_group_order(*without);
  std::vector<TensorBF16> copies;
  for (const TensorF& p : pa) copies.push_back(poisoned_like(p));
  with->set_low_precision_copies(copies);
  REQUIRE(with->low_precision_copies().size() == pa.size());
  const TensorF skip = TensorF::zeros({1});
  with->set_skip_flag(skip);
  without->set_skip_flag(skip);

  for (int t = 1; t <= 6; ++t) {
    INFO("step " << t);
    with->set_lr(0.01 / t + 1e-3 / 3.0);
    without->set_lr(0.01 / t + 1e-3 / 3.0);
    const bool skipped = t == 3;
    skip.data()[0] = skipped ? 1.f : 0.f;
    std::vector<TensorBF16> before;
    for (const TensorBF16& c : copies) before.push_back(c.clone());
    for (size_t i = 0; i < pa.size(); ++i) {
      if (t == 5 && i == 2) {
        pa[i].set_grad(TensorF());
        pb[i].set_grad(TensorF());
        continue;
      }
      const TensorF g = test::randn<float>(pa[i].shape(), 1000 * t + i, 0.5);
      pa[i].set_grad(g.clone());
      pb[i].set_grad(g.clone());
    }
    with->step();
    without->step();
    for (size_t i = 0; i < pa.size(); ++i) {
      INFO("parameter " << i);
      require_same_floats(pa[i], pb[i], "fp32 parameter");  // the copies change nothing in fp32
      if (skipped || (t == 5 && i == 2)) {
        require_bits(copies[i], before[i], "untouched copy");
      } else {
        require_bits(copies[i], pa[i].to_dtype<bf16>(), "copy");
      }
    }
  }
  // Poisoned at the start, refreshed by step 1 except where nothing was updated.
  for (size_t i = 0; i < pa.size(); ++i) require_bits(copies[i], pa[i].to_dtype<bf16>(), "final copy");
}

}  // namespace

TEST_CASE("optimizers write bf16 copies of the updated parameters bit for bit", "[bf16][optim]") {
  run([](auto g) { return std::make_unique<AdamW<float>>(std::move(g), AdamOptions{}); }, "AdamW");
  run([](auto g) { return std::make_unique<Adam<float>>(std::move(g), AdamOptions{}); }, "Adam (L2)");
  run([](auto g) { return std::make_unique<SGD<float>>(std::move(g), SgdOptions{0.1, 0.9, 0.0, true}); },
      "SGD nesterov");
  run([](auto g) { return std::make_unique<SGD<float>>(std::move(g), SgdOptions{0.1, 0.0, 0.0, false}); },
      "SGD plain");
}

TEST_CASE("set_low_precision_copies checks count, shapes and devices", "[bf16][optim]") {
  const std::vector<TensorF> ps = make_params(3);
  AdamW<float> opt(groups_of(ps), AdamOptions{});
  const std::vector<TensorF> order = in_group_order(opt);
  std::vector<TensorBF16> copies;
  for (const TensorF& p : order) copies.push_back(TensorBF16::zeros(p.shape()));
  std::vector<TensorBF16> fewer(copies.begin(), copies.end() - 1);
  REQUIRE_THROWS_WITH(opt.set_low_precision_copies(fewer), Contains("low-precision copies for more parameters"));
  std::vector<TensorBF16> more = copies;
  more.push_back(TensorBF16::zeros({2}));
  REQUIRE_THROWS_WITH(opt.set_low_precision_copies(more), Contains("low-precision copies for"));
  std::vector<TensorBF16> wrong = copies;
  wrong[1] = TensorBF16::zeros({order[1].numel() + 1});
  REQUIRE_THROWS_WITH(opt.set_low_precision_copies(wrong), Contains("has shape"));
  opt.set_low_precision_copies(copies);
  REQUIRE(opt.low_precision_copies().size() == copies.size());
  opt.set_low_precision_copies({});  // off again
  REQUIRE(opt.low_precision_copies().empty());
}
