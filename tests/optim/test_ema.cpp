// ModelEma (timm's ModelEmaV3): the decay schedule against timm's get_decay
// (values computed with its formula in Python), the update against a double
// reference and bitwise against torch's lerp_ in float, the skip flag of a
// non-finite step, the average saved and restored (state_dict and a
// checkpoint), and a frozen backbone: every parameter is averaged, as timm's
// EMA of the whole state dict, not only the ones the optimizer trains.
#include <cmath>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/temp_dir.hpp"
#include "support/tiny_vit.hpp"

using namespace vit;
using namespace vit::optim;

namespace {

/// Two parameters, one of them frozen, as a module a user might write.
template <class T>
struct TwoParams : nn::Module<T> {
  Tensor<T> w, frozen;
  explicit TwoParams(uint64_t seed) {
    Generator g(seed);
    w = this->register_parameter("w", Tensor<T>::normal({3, 5}, 0.0, 1.0, g));
    frozen = this->register_parameter("frozen", Tensor<T>::normal({4}, 0.0, 1.0, g));
    frozen.set_requires_grad(false);
  }
};

/// Moves the model's parameters as a training step would (a fixed pseudo-random nudge).
template <class T>
void nudge(nn::Module<T>& m, int step) {
  for (auto& [name, p] : m.named_parameters())
    for (int64_t i = 0; i < p.numel(); ++i)
      p.data()[i] += static_cast<T>(0.1 * std::sin(1.7 * step + 0.3 * static_cast<double>(i)));
}

}  // namespace

TEST_CASE("ema: timm's decay schedule, with and without warmup", "[optim][ema]") {
  EmaOptions o;  // decay 0.9998, warmup as timm's --model-ema-warmup, gamma 1, power 2/3
  CHECK(ema_decay(o, 0) == 0.0);
  CHECK(ema_decay(o, 1) == 0.0);  // the first update copies the model
  CHECK(ema_decay(o, 2) == Approx(0.3700394750525634).epsilon(1e-14));
  CHECK(ema_decay(o, 3) == Approx(0.5192501432308638).epsilon(1e-14));
  CHECK(ema_decay(o, 10) == Approx(0.7845565309968117).epsilon(1e-14));
  CHECK(ema_decay(o, 100) == Approx(0.9535841116638722).epsilon(1e-14));
  CHECK(ema_decay(o, 1000) == Approx(0.99).epsilon(1e-14));
  CHECK(ema_decay(o, 1000000) == 0.9998);  // 1 − 10⁻⁴ would exceed the decay: capped
  o.warmup_power = 0.75, o.warmup_gamma = 2.0;
  CHECK(ema_decay(o, 4) == Approx(0.49702662812682585).epsilon(1e-14));
  o.min_decay = 0.6;
  CHECK(ema_decay(o, 4) == 0.6);
  EmaOptions plain;
  plain.warmup = false;
  CHECK(ema_decay(plain, 1) == 0.0);
  CHECK(ema_decay(plain, 2) == 0.9998);
  plain.update_after_step = 5;
  CHECK(ema_decay(plain, 6) == 0.0);
  CHECK(ema_decay(plain, 7) == 0.9998);
}

TEST_CASE("ema: the update against a double reference and bitwise against lerp_", "[optim][ema]") {
  TwoParams<float> model(1), average(2);
  EmaOptions o;
  o.decay = 0.9;  // reached within the test's steps
  ModelEma<float> ema(model, average, o);
  const auto names = model.named_parameters();
  std::vector<std::vector<double>> ref;
  for (auto& [n, p] : names) {
    const std::vector<float> v = p.to_vector();
    ref.emplace_back(v.begin(), v.end());
    REQUIRE(average.state_dict().at(n).to_vector() == p.to_vector());  // a copy to start
  }
  for (int step = 1; step <= 40; ++step) {
    nudge(model, step);
    // torch's lerp_(end, weight) in float for weight < 0.5: self + weight·(end − self).
    std::vector<std::vector<float>> lerp;
    const double d = ema.decay_at(step);
    const float wf = static_cast<float>(1.0 - d);
    for (size_t k = 0; k < names.size(); ++k) {
      const auto e = average.named_parameters()[k].second.to_vector();
      const auto p = names[k].second.to_vector();
      std::vector<float> out(e.size());
      for (size_t i = 0; i < e.size(); ++i) out[i] = e[i] + wf * (p[i] - e[i]);
      lerp.push_back(out);
      for (size_t i = 0; i < e.size(); ++i) ref[k][i] = d * ref[k][i] + (1 - d) * p[i];
    }
    ema.update(step);
    for (size_t k = 0; k < names.size(); ++k) {
      const auto got = average.named_parameters()[k].second.to_vector();
      INFO("step " << step << " parameter " << names[k].first);
      REQUIRE(got == lerp[k]);
      for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(ref[k][i]).margin(1e-6));
    }
  }
  CHECK(ema.decay_at(40) == 0.9);  // capped from step 32 on
}

TEST_CASE("ema: a skipped step leaves the average as it is", "[optim][ema]") {
  TwoParams<double> model(3), average(3);
  ModelEma<double> ema(model, average);
  StepGuard<double> guard;
  ema.set_skip_flag(guard.skip_flag());
  nudge(model, 1);
  ema.update(1);  // decay 0: the average is the model (a − 1·(a − m): to the last bit or so)
  const auto copied = average.w.to_vector(), wanted = model.w.to_vector();
  for (size_t i = 0; i < wanted.size(); ++i)
    REQUIRE(copied[i] == Approx(wanted[i]).epsilon(1e-15).margin(1e-15));
  nudge(model, 2);
  const auto before = average.w.to_vector();
  guard.check(Tensor<double>::full({1}, NAN), Tensor<double>());  // a non-finite loss
  ema.update(2);
  CHECK(average.w.to_vector() == before);
  guard.check(Tensor<double>::full({1}, 0.5), Tensor<double>());  // finite again
  ema.update(3);
  CHECK(average.w.to_vector() != before);
  CHECK_THROWS_WITH(ema.set_skip_flag(Tensor<float>::zeros({2})),
                    Catch::Contains("one float on the parameters' device"));
}

TEST_CASE("ema: every parameter of a frozen backbone, saved and restored under timm's names",
          "[optim][ema]") {
  const nn::VitConfig cfg = test::tiny_vit_config();
  nn::VisionTransformer<float> model(cfg), average(cfg);
  nn::freeze_backbone(model);
  const auto trainable = nn::trainable_parameters(model);
  AdamW<float> opt(default_param_groups(trainable, 0.05), AdamOptions{});
  ModelEma<float> ema(model, average);
  REQUIRE(ema.state_dict().size() == model.named_parameters().size());
  REQUIRE(trainable.size() < model.named_parameters().size());
  Generator g(5);
  const TensorF x = TensorF::normal({4, cfg.in_chans, cfg.image_size, cfg.image_size}, 0, 1, g);
  Tensor<int32_t> y = Tensor<int32_t>::zeros({4});
  for (int step = 1; step <= 3; ++step) {
    opt.zero_grad();
    cross_entropy(model.forward(x), y).backward();
    opt.step();
    ema.update(step);
  }
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    const TensorF e = ema.state_dict().at(name);
    if (p.requires_grad()) CHECK(e.to_vector() != p.to_vector());  // trained: the average lags
    else CHECK(e.to_vector() == p.to_vector());                     // frozen: stays the model's
    CHECK_FALSE(e.requires_grad());
  }
  // Saved as any model (timm's names, loadable by eval/--init), and read back.
  test::TempDir dir;
  const std::string path = (dir.path / "ema.safetensors").string();
  io::save_checkpoint<float>(path, average, {"a", "b", "c"});
  const auto ck = io::load_checkpoint<float>(path);
  nn::VisionTransformer<float> other_model(cfg), restored_into(cfg);
  ModelEma<float> restored(other_model, restored_into);
  restored.load_state_dict(ck.model);
  for (const auto& [name, t] : ema.state_dict())
    CHECK(restored.state_dict().at(name).to_vector() == t.to_vector());
  std::map<std::string, TensorF> missing = ema.state_dict();
  missing.erase("head.bias");
  CHECK_THROWS_WITH(restored.load_state_dict(missing), Catch::Contains("missing tensor 'head.bias'"));
}

TEST_CASE("ema: refuses an average of another architecture or bad options", "[optim][ema]") {
  nn::VisionTransformer<float> model(test::tiny_vit_config(8)), wide(test::tiny_vit_config(16));
  CHECK_THROWS_WITH(ModelEma<float>(model, wide), Catch::Contains("model EMA: parameter"));
  nn::VisionTransformer<float> average(test::tiny_vit_config(8));
  EmaOptions o;
  o.decay = 1.5;
  CHECK_THROWS_WITH(ModelEma<float>(model, average, o), Catch::Contains("decay <= 1"));
}
