// Optimizers against torch.optim's documented algorithms, computed here in
// double (Adam, AdamW, SGD with every option), optimizer state by name and its
// restore, timm's parameter grouping, gradient clipping and LR schedules.
// One test case compares AdamW with numbers printed by PyTorch itself.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "support/check.hpp"

using namespace vit;
using namespace vit::optim;
using Catch::Contains;

namespace {

using Vec = std::vector<double>;

// Three steps of fixed gradients for a 2x2 parameter.
const Vec kInit = {1.0, -2.0, 0.5, 3.0};
const std::vector<Vec> kGrads = {{0.1, -0.2, 0.3, -0.4}, {0.5, 0.25, -0.125, 1.0},
                                 {-0.3, 0.7, 0.2, -0.05}};

template <class T>
Tensor<T> tensor_of(const Vec& v, const Shape& s) {
  Tensor<T> t = Tensor<T>::empty(s);
  for (size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
  return t;
}
template <class T>
Tensor<T> param_of(const Vec& v, const Shape& s = {2, 2}) {
  Tensor<T> t = tensor_of<T>(v, s);
  t.set_requires_grad(true);
  return t;
}
template <class T>
Tensor<T> state_of(const Optimizer<T>& opt, const std::string& key) {
  for (const auto& [k, t] : opt.named_state())
    if (k == key) return t;
  FAIL("no optimizer state named '" << key << "'");
  return {};
}
std::vector<std::string> state_keys(const auto& opt) {
  std::vector<std::string> keys;
  for (const auto& [k, t] : opt.named_state()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

/// Tolerances: double agrees to a few ulps; float to float32 rounding of the values.
template <class T>
struct Tol;
template <>
struct Tol<double> {
  static constexpr double param_atol = 1e-14, param_rtol = 1e-13, state_atol = 1e-18, state_rtol = 1e-12;
};
template <>
struct Tol<float> {
  static constexpr double param_atol = 1e-7, param_rtol = 1e-6, state_atol = 1e-12, state_rtol = 2e-6;
};

template <class T>
void require_values(const Tensor<T>& got, const Vec& expected, double atol, double rtol) {
  test::require_close(got, tensor_of<double>(expected, got.shape()), atol, rtol);
}

// ---- references in double, written from torch.optim's documentation ----------

/// torch.optim.Adam / AdamW (amsgrad=False, maximize=False):
///   Adam:  g <- g + wd*p                AdamW: p <- p*(1 - lr*wd)
///   m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2
///   m_hat = m/(1-b1^t);  v_hat = v/(1-b2^t);  p <- p - lr*m_hat/(sqrt(v_hat) + eps)
struct AdamRef {
  double lr, b1, b2, eps, wd;
  bool decoupled;
  Vec p, m, v;
  int t = 0;
  AdamRef(double lr, double wd, bool decoupled, Vec init, double b1 = 0.9, double b2 = 0.999,
          double eps = 1e-8)
      : lr(lr), b1(b1), b2(b2), eps(eps), wd(wd), decoupled(decoupled), p(std::move(init)),
        m(p.size(), 0.0), v(p.size(), 0.0) {}
  void step(const Vec& grad) {
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (decoupled) p[i] *= 1.0 - lr * wd;
      else g += wd * p[i];
      m[i] = b1 * m[i] + (1.0 - b1) * g;
      v[i] = b2 * v[i] + (1.0 - b2) * g * g;
      const double m_hat = m[i] / (1.0 - std::pow(b1, t));
      const double v_hat = v[i] / (1.0 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

/// torch.optim.SGD:
///   g <- g + wd*p
///   momentum: buf <- g (first step) else mu*buf + (1-dampening)*g
///             g <- g + mu*buf (nesterov) else buf
///   p <- p - lr*g
struct SgdRef {
  double lr, mu, damp, wd;
  bool nesterov;
  Vec p, buf;
  bool first = true;
  void step(const Vec& grad) {
    if (buf.empty()) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i] + wd * p[i];
      if (mu != 0) {
        buf[i] = first ? g : mu * buf[i] + (1.0 - damp) * g;
        g = nesterov ? g + mu * buf[i] : buf[i];
      }
      p[i] -= lr * g;
    }
    first = false;
  }
};

template <class T>
void run_steps(Optimizer<T>& opt, const Tensor<T>& p, size_t from, size_t to) {
  for (size_t s = from; s < to; ++s) {
    p.set_grad(tensor_of<T>(kGrads[s % kGrads.size()], p.shape()));
    opt.step();
  }
}

template <class T>
void check_adam(double lr, double wd, bool decoupled) {
  Tensor<T> p = param_of<T>(kInit);
  std::vector<ParamGroup<T>> groups{{{{"w", p}}, wd}};
  std::unique_ptr<Optimizer<T>> opt;
  if (decoupled) opt = std::make_unique<AdamW<T>>(groups, AdamOptions{lr});
  else opt = std::make_unique<Adam<T>>(groups, AdamOptions{lr});
  AdamRef ref(lr, wd, decoupled, kInit);
  for (size_t s = 0; s < 3; ++s) {
    INFO("step " << s + 1);
    run_steps(*opt, p, s, s + 1);
    ref.step(kGrads[s]);
    require_values(p, ref.p, Tol<T>::param_atol, Tol<T>::param_rtol);
    require_values(state_of(*opt, "w.exp_avg"), ref.m, Tol<T>::state_atol, Tol<T>::state_rtol);
    require_values(state_of(*opt, "w.exp_avg_sq"), ref.v, Tol<T>::state_atol, Tol<T>::state_rtol);
  }
  CHECK(opt->steps() == 3);
}

template <class T>
void check_sgd(SgdOptions o, double wd) {
  Tensor<T> p = param_of<T>(kInit);
  SGD<T> opt({{{{"w", p}}, wd}}, o);
  SgdRef ref{o.lr, o.momentum, o.dampening, wd, o.nesterov, kInit, {}};
  for (size_t s = 0; s < 3; ++s) {
    INFO("step " << s + 1);
    run_steps<T>(opt, p, s, s + 1);
    ref.step(kGrads[s]);
    require_values(p, ref.p, Tol<T>::param_atol, Tol<T>::param_rtol);
    if (o.momentum != 0)
      require_values(state_of(opt, "w.momentum_buffer"), ref.buf, Tol<T>::state_atol,
                     Tol<T>::state_rtol);
  }
  if (o.momentum == 0) CHECK(opt.named_state().empty());
}

}  // namespace

// ---- Adam / AdamW ------------------------------------------------------------

TEMPLATE_TEST_CASE("Adam matches torch.optim.Adam's algorithm for 3 steps", "[optim][adam]", float,
                   double) {
  SECTION("no weight decay") { check_adam<TestType>(0.1, 0.0, false); }
  SECTION("weight decay as L2 in the gradient") { check_adam<TestType>(0.05, 0.1, false); }
}

TEMPLATE_TEST_CASE("AdamW decays decoupled, before the moment update", "[optim][adam]", float,
                   double) {
  SECTION("lr 0.1, wd 0.1") { check_adam<TestType>(0.1, 0.1, true); }
  SECTION("lr 0.01, wd 0.5") { check_adam<TestType>(0.01, 0.5, true); }
  SECTION("wd 0 equals Adam") { check_adam<TestType>(0.1, 0.0, true); }
}

TEST_CASE("Adam's first step moves every weight by about lr against the gradient's sign",
          "[optim][adam]") {
  // m_hat = g, v_hat = g^2 at t = 1, so the step is lr * g / (|g| + eps).
  TensorD p = param_of<double>(kInit);
  Adam<double> opt({{{{"w", p}}, 0.0}}, AdamOptions{0.01});
  run_steps<double>(opt, p, 0, 1);
  for (int i = 0; i < 4; ++i) {
    const double g = kGrads[0][i];
    CHECK(p.data()[i] == Approx(kInit[i] - 0.01 * g / (std::abs(g) + 1e-8)).margin(1e-15));
    CHECK(std::abs(p.data()[i] - (kInit[i] - 0.01 * (g > 0 ? 1 : -1))) < 1e-8);
  }
  // AdamW with wd: the same step applied to p*(1 - lr*wd).
  TensorD q = param_of<double>(kInit);
  AdamW<double> optw({{{{"w", q}}, 0.5}}, AdamOptions{0.01});
  run_steps<double>(optw, q, 0, 1);
  for (int i = 0; i < 4; ++i) {
    const double g = kGrads[0][i];
    CHECK(q.data()[i] == Approx(kInit[i] * (1 - 0.005) - 0.01 * g / (std::abs(g) + 1e-8)).margin(1e-15));
  }
}

TEST_CASE("AdamW matches PyTorch (literal oracle)", "[optim][adam][torch]") {
  // The only literal oracle in this file. Produced with Debian's torch 1.13
  // (/usr/bin/python3), single-tensor CPU implementation:
  //
  //   import torch
  //   for dtype in (torch.float64, torch.float32):
  //       p = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=dtype, requires_grad=True)
  //       opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
  //       grads = [[0.1, -0.2, 0.3, -0.4], [0.5, 0.25, -0.125, 1.0], [-0.3, 0.7, 0.2, -0.05]]
  //       for g in grads:
  //           p.grad = torch.tensor(g, dtype=dtype)
  //           opt.step()
  //       st = opt.state[p]
  //       print(dtype)
  //       print("p", [repr(float(v)) for v in p.detach()])
  //       print("m", [repr(float(v)) for v in st["exp_avg"]])
  //       print("v", [repr(float(v)) for v in st["exp_avg_sq"]])
  const Vec torch64_p = {0.7620926101341476, -1.9220280945712027, 0.2988945699972769, 2.93394524762414};
  const Vec torch64_m = {0.023100000000000002, 0.07629999999999998, 0.03304999999999999,
                         0.05259999999999998};
  const Vec torch64_v = {0.0003497300100000003, 0.0005923575400000004, 0.00014542946500000013,
                         0.0011611801600000008};
  const Vec torch32_p = {0.7620925903320312, -1.9220280647277832, 0.29889458417892456, 2.9339451789855957};
  const Vec torch32_m = {0.023099996149539948, 0.0763000026345253, 0.03305000066757202,
                         0.05259999632835388};
  const Vec torch32_v = {0.0003497300494927913, 0.0005923575372435153, 0.00014542948338203132,
                         0.0011611802037805319};
  SECTION("float64") {
    TensorD p = param_of<double>(kInit, {4});
    AdamW<double> opt({{{{"p", p}}, 0.1}}, AdamOptions{0.1, 0.9, 0.999, 1e-8});
    run_steps<double>(opt, p, 0, 3);
    require_values(p, torch64_p, 1e-15, 1e-14);
    require_values(state_of(opt, "p.exp_avg"), torch64_m, 1e-18, 1e-13);
    require_values(state_of(opt, "p.exp_avg_sq"), torch64_v, 1e-20, 1e-13);
  }
  SECTION("float32") {
    TensorF p = param_of<float>(kInit, {4});
    AdamW<float> opt({{{{"p", p}}, 0.1}}, AdamOptions{0.1, 0.9, 0.999, 1e-8});
    run_steps<float>(opt, p, 0, 3);
    require_values(p, torch32_p, 0, 2.5e-7);  // a couple of float32 ulps
    require_values(state_of(opt, "p.exp_avg"), torch32_m, 0, 1e-6);
    require_values(state_of(opt, "p.exp_avg_sq"), torch32_v, 0, 1e-6);
  }
}

// ---- SGD ---------------------------------------------------------------------

TEMPLATE_TEST_CASE("SGD matches torch.optim.SGD's algorithm for 3 steps", "[optim][sgd]", float,
                   double) {
  SECTION("plain") { check_sgd<TestType>({0.1, 0.0, 0.0, false}, 0.0); }
  SECTION("momentum (first step buf = grad)") { check_sgd<TestType>({0.1, 0.9, 0.0, false}, 0.0); }
  SECTION("momentum + dampening") { check_sgd<TestType>({0.1, 0.9, 0.3, false}, 0.0); }
  SECTION("nesterov") { check_sgd<TestType>({0.1, 0.9, 0.0, true}, 0.0); }
  SECTION("weight decay") { check_sgd<TestType>({0.1, 0.0, 0.0, false}, 0.01); }
  SECTION("weight decay + momentum + nesterov") { check_sgd<TestType>({0.05, 0.8, 0.0, true}, 0.2); }
}

TEST_CASE("SGD's first two steps by hand", "[optim][sgd]") {
  // p = 1, g = 0.5 then 0.25, lr 0.1, momentum 0.9, dampening 0.5:
  //   step 1: buf = 0.5 (no dampening on the first step)    p = 1 - 0.05 = 0.95
  //   step 2: buf = 0.9*0.5 + 0.5*0.25 = 0.575               p = 0.95 - 0.0575 = 0.8925
  TensorD p = param_of<double>({1.0}, {1});
  SGD<double> opt({{{{"w", p}}, 0.0}}, SgdOptions{0.1, 0.9, 0.5, false});
  p.set_grad(TensorD::full({1}, 0.5));
  opt.step();
  CHECK(p.item() == Approx(0.95).epsilon(1e-15));
  p.set_grad(TensorD::full({1}, 0.25));
  opt.step();
  CHECK(p.item() == Approx(0.8925).epsilon(1e-15));
  CHECK(state_of(opt, "w.momentum_buffer").item() == Approx(0.575).epsilon(1e-15));
}

TEST_CASE("optimizers validate their arguments", "[optim][errors]") {
  TensorF p = param_of<float>(kInit);
  TensorF frozen = tensor_of<float>(kInit, {2, 2});
  CHECK_THROWS_WITH(SGD<float>({{{{"frozen", frozen}}, 0.0}}),
                    Contains("parameter 'frozen' does not require grad"));
  CHECK_THROWS_WITH(SGD<float>({{{{"w", p}}, 0.0}}, SgdOptions{0.1, 0.0, 0.0, true}),
                    Contains("nesterov needs momentum > 0"));
  CHECK_THROWS_WITH(SGD<float>({{{{"w", p}}, -0.1}}), Contains("weight_decay must be >= 0"));
  CHECK_THROWS_WITH(Adam<float>({{{{"w", p}}, 0.0}}, AdamOptions{1e-3, 1.0}), Contains("betas"));
  CHECK_THROWS_WITH(AdamW<float>({{{{"w", p}}, 0.0}}, AdamOptions{-1.0}),
                    Contains("learning rate must be >= 0"));
}

TEST_CASE("parameters without a gradient are skipped", "[optim]") {
  TensorD a = param_of<double>(kInit), b = param_of<double>(kInit);
  AdamW<double> opt({{{{"a", a}, {"b", b}}, 0.1}}, AdamOptions{0.1});
  a.set_grad(tensor_of<double>(kGrads[0], {2, 2}));
  opt.step();
  CHECK(b.to_vector() == kInit);  // not even decayed
  CHECK(a.to_vector() != kInit);
  CHECK(state_keys(opt) == std::vector<std::string>{"a.exp_avg", "a.exp_avg_sq"});
}

// ---- state by name -----------------------------------------------------------

TEST_CASE("optimizer state is reachable by name", "[optim][state]") {
  TensorF w = param_of<float>(kInit), qkv = param_of<float>(kInit, {4});
  SECTION("Adam") {
    Adam<float> opt({{{{"w", w}, {"blocks.0.attn.qkv.weight", qkv}}, 0.0}});
    CHECK(opt.named_state().empty());
    qkv.set_grad(TensorF::ones({4}));
    run_steps<float>(opt, w, 0, 1);
    CHECK(state_keys(opt) ==
          std::vector<std::string>{"blocks.0.attn.qkv.weight.exp_avg",
                                   "blocks.0.attn.qkv.weight.exp_avg_sq", "w.exp_avg",
                                   "w.exp_avg_sq"});
    // The named tensors are the live state (shared storage), not copies.
    const TensorF m = state_of(opt, "w.exp_avg");
    const std::vector<float> before = m.to_vector();
    run_steps<float>(opt, w, 1, 2);
    CHECK(m.to_vector() != before);
    CHECK(m.shape() == w.shape());
  }
  SECTION("SGD with momentum") {
    SGD<float> opt({{{{"w", w}}, 0.0}}, SgdOptions{0.1, 0.9});
    run_steps<float>(opt, w, 0, 1);
    CHECK(state_keys(opt) == std::vector<std::string>{"w.momentum_buffer"});
    // First step: the buffer is the gradient itself.
    CHECK(state_of(opt, "w.momentum_buffer").to_vector() == tensor_of<float>(kGrads[0], {4}).to_vector());
  }
}

TEMPLATE_TEST_CASE("load_named_state resumes bit for bit", "[optim][state]", float, double) {
  using T = TestType;
  auto clone_state = [](const Optimizer<T>& opt) {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    for (const auto& [k, t] : opt.named_state()) out.emplace_back(k, t.clone());
    return out;
  };
  auto resume_and_compare = [&](auto make) {
    Tensor<T> pa = param_of<T>(kInit);
    auto a = make(pa);
    run_steps<T>(*a, pa, 0, 3);
    // "Checkpoint": parameter values, step count and named state.
    Tensor<T> pb = pa.clone();
    pb.set_requires_grad(true);
    const auto saved = clone_state(*a);
    REQUIRE_FALSE(saved.empty());
    auto b = make(pb);
    b->load_named_state(saved);
    b->set_steps(a->steps());
    run_steps<T>(*a, pa, 3, 5);
    run_steps<T>(*b, pb, 3, 5);
    CHECK(pa.to_vector() == pb.to_vector());
    const auto sa = a->named_state(), sb = b->named_state();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      CHECK(sa[i].first == sb[i].first);
      CHECK(sa[i].second.to_vector() == sb[i].second.to_vector());
    }
  };
  SECTION("Adam with L2") {
    resume_and_compare([](Tensor<T> p) {
      return std::make_unique<Adam<T>>(std::vector<ParamGroup<T>>{{{{"w", p}}, 0.1}}, AdamOptions{0.05});
    });
  }
  SECTION("AdamW") {
    resume_and_compare([](Tensor<T> p) {
      return std::make_unique<AdamW<T>>(std::vector<ParamGroup<T>>{{{{"w", p}}, 0.1}}, AdamOptions{0.05});
    });
  }
  SECTION("SGD nesterov") {
    resume_and_compare([](Tensor<T> p) {
      return std::make_unique<SGD<T>>(std::vector<ParamGroup<T>>{{{{"w", p}}, 0.01}},
                                      SgdOptions{0.1, 0.9, 0.0, true});
    });
  }
}

TEST_CASE("a resumed optimizer without its state does not match (the restore matters)",
          "[optim][state]") {
  TensorD pa = param_of<double>(kInit);
  Adam<double> a({{{{"w", pa}}, 0.0}}, AdamOptions{0.05});
  run_steps<double>(a, pa, 0, 3);
  TensorD pb = pa.clone();
  pb.set_requires_grad(true);
  Adam<double> b({{{{"w", pb}}, 0.0}}, AdamOptions{0.05});
  b.set_steps(a.steps());  // steps but no moments
  run_steps<double>(a, pa, 3, 4);
  run_steps<double>(b, pb, 3, 4);
  CHECK(pa.to_vector() != pb.to_vector());
}

TEST_CASE("load_named_state rejects unknown keys and wrong shapes", "[optim][state][errors]") {
  TensorF w = param_of<float>(kInit), blk = param_of<float>(kInit, {4});
  Adam<float> opt({{{{"w", w}, {"blocks.0.w", blk}}, 0.0}});
  using Named = std::vector<std::pair<std::string, TensorF>>;
  CHECK_THROWS_WITH(opt.load_named_state(Named{{"v.exp_avg", TensorF::zeros({2, 2})}}),
                    Contains("'v.exp_avg' does not belong to any parameter"));
  CHECK_THROWS_WITH(opt.load_named_state(Named{{"w", TensorF::zeros({2, 2})}}),
                    Contains("does not belong to any parameter"));
  CHECK_THROWS_WITH(opt.load_named_state(Named{{"blocks.0.exp_avg", TensorF::zeros({4})}}),
                    Contains("does not belong to any parameter"));
  CHECK_THROWS_WITH(opt.load_named_state(Named{{"w.exp_avg", TensorF::zeros({4})}}),
                    Contains("'w.exp_avg' has shape (4), parameter has (2,2)"));
  CHECK_NOTHROW(opt.load_named_state(Named{{"blocks.0.w.exp_avg_sq", TensorF::ones({4})}}));
  CHECK(state_of(opt, "blocks.0.w.exp_avg_sq").to_vector() == std::vector<float>{1, 1, 1, 1});
}

TEST_CASE("load_named_state rejects a state name the optimizer does not have",
          "[optim][state][errors]") {
  // An SGD checkpoint loaded into Adam must not "succeed" while restoring nothing
  // (Adam would then resume with zero moments but a restored step count).
  TensorF w = param_of<float>(kInit);
  Adam<float> opt({{{{"w", w}}, 0.0}});
  using Named = std::vector<std::pair<std::string, TensorF>>;
  CHECK_THROWS_AS(opt.load_named_state(Named{{"w.momentum_buffer", TensorF::zeros({2, 2})}}), Error);
  CHECK_THROWS_AS(opt.load_named_state(Named{{"w.bogus", TensorF::zeros({2, 2})}}), Error);
}

// ---- parameter groups ----------------------------------------------------------

TEST_CASE("default_param_groups on a tiny VisionTransformer", "[optim][groups]") {
  nn::VitConfig c;
  c.image_size = 8, c.patch_size = 4, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 16;
  c.num_classes = 3;
  const nn::VisionTransformer<float> model(c);
  const auto named = model.named_parameters();
  const auto groups = default_param_groups(named, 0.05);
  REQUIRE(groups.size() == 2);
  auto names = [](const ParamGroup<float>& g) {
    std::vector<std::string> out;
    for (const auto& [n, p] : g.params) out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<std::string> decay = {
      "blocks.0.attn.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight",
      "blocks.0.mlp.fc2.weight",   "head.weight",              "patch_embed.proj.weight"};
  const std::vector<std::string> no_decay = {
      "blocks.0.attn.proj.bias", "blocks.0.attn.qkv.bias", "blocks.0.mlp.fc1.bias",
      "blocks.0.mlp.fc2.bias",   "blocks.0.norm1.bias",    "blocks.0.norm1.weight",
      "blocks.0.norm2.bias",     "blocks.0.norm2.weight",  "cls_token",
      "head.bias",               "norm.bias",              "norm.weight",
      "patch_embed.proj.bias",   "pos_embed"};
  CHECK(names(groups[0]) == decay);
  CHECK(groups[0].weight_decay == 0.05);
  CHECK(names(groups[1]) == no_decay);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[0].params.size() + groups[1].params.size() == named.size());
  // The groups hold the model's own tensors, so an optimizer step updates the model.
  for (const auto& [n, p] : groups[0].params) {
    CHECK(p.dim() >= 2);
    bool found = false;
    for (const auto& [mn, mp] : named) found = found || (mn == n && mp.shares_storage(p));
    CHECK(found);
  }
  // rank >= 2 tokens are exempt by name; a group that would be empty is dropped.
  TensorF tok = param_of<float>(kInit, {1, 1, 4});
  const auto only_tokens = default_param_groups<float>({{"cls_token", tok}}, 0.1);
  REQUIRE(only_tokens.size() == 1);
  CHECK(only_tokens[0].weight_decay == 0.0);
}

// ---- gradient clipping -----------------------------------------------------------

TEMPLATE_TEST_CASE("clip_grad_norm: global norm, scaling above max, untouched below",
                   "[optim][clip]", float, double) {
  using T = TestType;
  Tensor<T> a = param_of<T>({0, 0}, {2}), b = param_of<T>({0}, {1}), c = param_of<T>({0}, {1});
  auto set = [&] {
    a.set_grad(tensor_of<T>({3, 4}, {2}));
    b.set_grad(tensor_of<T>({12}, {1}));
  };
  // total = sqrt(3^2 + 4^2 + 12^2) = 13; c has no gradient and is skipped.
  SECTION("above: scaled by max / (total + 1e-6)") {
    set();
    const double total = clip_grad_norm<T>({a, b, c}, 6.5);
    CHECK(total == Approx(13.0).epsilon(1e-12));
    const double coef = 6.5 / (13.0 + 1e-6);
    require_values(a.grad(), {3 * coef, 4 * coef}, 0, 1e-6);
    require_values(b.grad(), {12 * coef}, 0, 1e-6);
    CHECK_FALSE(c.grad().defined());
    // The clipped norm is just below the max.
    const double after = clip_grad_norm<T>({a, b, c}, 1e9);
    CHECK(after == Approx(6.5 * 13.0 / (13.0 + 1e-6)).epsilon(1e-6));
    CHECK(after < 6.5);
  }
  SECTION("below: untouched, bit for bit") {
    set();
    const T* buffer = a.grad().data();
    const double total = clip_grad_norm<T>({a, b, c}, 20.0);
    CHECK(total == Approx(13.0).epsilon(1e-12));
    CHECK(a.grad().data() == buffer);
    CHECK(a.grad().to_vector() == tensor_of<T>({3, 4}, {2}).to_vector());
    CHECK(b.grad().to_vector() == tensor_of<T>({12}, {1}).to_vector());
  }
  SECTION("non-finite gradients give a non-finite norm") {
    set();
    b.grad().data()[0] = std::numeric_limits<T>::infinity();
    CHECK_FALSE(std::isfinite(clip_grad_norm<T>({a, b}, 1.0)));
  }
  SECTION("no gradients at all: norm 0") {
    CHECK(clip_grad_norm<T>({c}, 1.0) == 0.0);
  }
}

TEST_CASE("clip_grad_norm scales gradients from one backward exactly once", "[optim][clip][aliasing]") {
  // add's backward gives both leaves the same gradient buffer; clipping must
  // still scale each parameter's gradient by the coefficient once.
  TensorD a = param_of<double>({1, 2, 3}, {3}), b = param_of<double>({4, 5, 6}, {3});
  sum(add(a, b)).backward();
  const double total = clip_grad_norm<double>({a, b}, 1.0);
  CHECK(total == Approx(std::sqrt(6.0)).epsilon(1e-14));
  const double coef = 1.0 / (std::sqrt(6.0) + 1e-6);
  require_values(a.grad(), {coef, coef, coef}, 0, 1e-12);
  require_values(b.grad(), {coef, coef, coef}, 0, 1e-12);
}

// ---- learning-rate schedules ---------------------------------------------------

TEST_CASE("LrSchedule: warmup then cosine", "[optim][schedule]") {
  LrSchedule s;
  s.kind = LrSchedule::Kind::Cosine;
  s.base_lr = 1e-3, s.warmup_steps = 10, s.warmup_start_lr = 1e-5;
  s.total_steps = 110, s.min_lr = 2e-5;
  // Linear warmup from warmup_start_lr.
  CHECK(s.at(0) == Approx(1e-5).epsilon(1e-12));
  CHECK(s.at(5) == Approx(1e-5 + (1e-3 - 1e-5) * 0.5).epsilon(1e-12));
  CHECK(s.at(9) == Approx(1e-5 + (1e-3 - 1e-5) * 0.9).epsilon(1e-12));
  // Cosine: base at the end of warmup, the midpoint halfway, min_lr at total_steps.
  CHECK(s.at(10) == Approx(1e-3).epsilon(1e-12));
  CHECK(s.at(60) == Approx((1e-3 + 2e-5) / 2).epsilon(1e-12));
  CHECK(s.at(35) == Approx(2e-5 + 0.5 * (1e-3 - 2e-5) * (1 + std::cos(M_PI * 0.25))).epsilon(1e-12));
  CHECK(s.at(110) == Approx(2e-5).epsilon(1e-12));
  CHECK(s.at(500) == Approx(2e-5).epsilon(1e-12));  // stays at min_lr
  for (int64_t t = 10; t < 110; ++t) CHECK(s.at(t + 1) < s.at(t));
  // Without warmup the first step is base_lr.
  LrSchedule nw = s;
  nw.warmup_steps = 0;
  CHECK(nw.at(0) == Approx(1e-3).epsilon(1e-12));
  CHECK(nw.at(55) == Approx((1e-3 + 2e-5) / 2).epsilon(1e-12));
}

TEST_CASE("LrSchedule: step decay and constant", "[optim][schedule]") {
  LrSchedule s;
  s.kind = LrSchedule::Kind::Step;
  s.base_lr = 0.1, s.step_size = 30, s.gamma = 0.1;
  CHECK(s.at(0) == Approx(0.1).epsilon(1e-12));
  CHECK(s.at(29) == Approx(0.1).epsilon(1e-12));
  CHECK(s.at(30) == Approx(0.01).epsilon(1e-12));
  CHECK(s.at(65) == Approx(0.001).epsilon(1e-12));
  s.warmup_steps = 5;  // decay counts from the end of warmup
  CHECK(s.at(0) == 0.0);
  CHECK(s.at(34) == Approx(0.1).epsilon(1e-12));
  CHECK(s.at(35) == Approx(0.01).epsilon(1e-12));

  LrSchedule c;
  c.kind = LrSchedule::Kind::Constant;
  c.base_lr = 3e-4, c.warmup_steps = 4, c.warmup_start_lr = 1e-4;
  CHECK(c.at(0) == Approx(1e-4).epsilon(1e-12));
  CHECK(c.at(2) == Approx(2e-4).epsilon(1e-12));
  CHECK(c.at(4) == Approx(3e-4).epsilon(1e-12));
  CHECK(c.at(1000000) == Approx(3e-4).epsilon(1e-12));
}

TEST_CASE("schedule_kind parses names and rejects others", "[optim][schedule][errors]") {
  CHECK(schedule_kind("cosine") == LrSchedule::Kind::Cosine);
  CHECK(schedule_kind("step") == LrSchedule::Kind::Step);
  CHECK(schedule_kind("constant") == LrSchedule::Kind::Constant);
  CHECK_THROWS_WITH(schedule_kind("bogus"), Contains("unknown schedule 'bogus'"));
  CHECK_THROWS_WITH(schedule_kind("bogus"), Contains("cosine, step, constant"));
  CHECK_THROWS_AS(schedule_kind("Cosine"), Error);
}
