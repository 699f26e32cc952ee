// Post-accumulate gradient hooks (run as soon as a leaf's gradient is
// complete, inside backward) and dist::GradientReducer on them: buckets in
// reverse parameter order, started in order while backward still runs, and
// every gradient replaced by the mean over ranks. A second rank is simulated
// in this process by a communicator that adds a known contribution.
#include <vit/dist/gradient_reducer.hpp>

#include <map>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/tiny_vit.hpp"

using namespace vit;
using test::tiny_vit_config;

namespace {

/// A job of two ranks seen from rank 0: a sum adds what rank 1 holds at the
/// same offsets of the same call (`other`, by start order), and records when
/// each sum started relative to the hooks that have run.
class TwoRanks final : public dist::Communicator {
 public:
  std::vector<std::vector<float>> other;  // rank 1's buffer for each started sum, in order
  std::vector<int64_t> started_after_hooks;  // hooks run before each start
  int64_t* hooks_run = nullptr;
  int waits = 0, progress_calls = 0;

  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "two ranks (simulated)"; }
  void allreduce_sum(void* buf, int64_t count, dist::DType t, Device) override {
    REQUIRE(t == dist::DType::Float32);
    const size_t i = started_after_hooks.size();
    started_after_hooks.push_back(hooks_run ? *hooks_run : -1);
    REQUIRE(i < other.size());
    REQUIRE(static_cast<int64_t>(other[i].size()) == count);
    float* p = static_cast<float*>(buf);
    for (int64_t k = 0; k < count; ++k) p[k] += other[i][static_cast<size_t>(k)];
  }
  void broadcast(void*, int64_t, dist::DType, int, Device) override {}
  void barrier() override {}
  void progress() override { ++progress_calls; }
  void wait_all() override { ++waits; }
};

TensorF loss_of(nn::VisionTransformer<float>& m, uint64_t seed) {
  const TensorF x = test::randn<float>({3, 2, 8, 8}, seed);
  return cross_entropy(m.forward(x), std::vector<int64_t>{0, 2, 1});
}

}  // namespace

TEST_CASE("a post-accumulate hook runs once per backward, when the leaf's gradient is complete",
          "[autograd][dist]") {
  TensorD x = test::randn<double>({4}, 1);
  x.set_requires_grad(true);
  TensorD y = test::randn<double>({4}, 2);
  y.set_requires_grad(true);
  std::vector<std::string> log;
  std::vector<double> x_grad_seen;
  const uint64_t hx = x.register_post_accumulate_grad_hook([&](const TensorD& leaf) {
    log.push_back("x");
    x_grad_seen = leaf.grad().to_vector();
  });
  y.register_post_accumulate_grad_hook([&](const TensorD&) { log.push_back("y"); });
  // x feeds two nodes: its hook must wait for both; y's only consumer runs first.
  const TensorD a = mul(x, x);
  const TensorD b = add(scale(x, 3.0), y);
  sum(add(a, mul(b, b))).backward();
  REQUIRE(log.size() == 2);
  CHECK(log.back() == "x");
  CHECK(x_grad_seen == x.grad().to_vector());  // the complete gradient, not a part
  // Removed hooks no longer run; the other stays.
  x.remove_post_accumulate_grad_hook(hx);
  log.clear();
  sum(mul(x, y)).backward();
  CHECK(log == std::vector<std::string>{"y"});
  // Only leaves that require grad take hooks.
  CHECK_THROWS(mul(x, y).register_post_accumulate_grad_hook([](const TensorD&) {}));
}

TEST_CASE("GradientReducer buckets parameters in reverse order and averages every gradient",
          "[dist]") {
  nn::VisionTransformer<float> model(tiny_vit_config());
  const auto named = model.named_parameters();
  std::vector<TensorF> params;
  for (const auto& [n, p] : named) params.push_back(p);

  // Rank 1's gradients: the same model on another batch.
  std::vector<std::vector<float>> g1;
  loss_of(model, 7).backward();
  for (const auto& p : params) g1.push_back(p.grad().to_vector());
  for (auto& p : params) p.zero_grad();
  loss_of(model, 3).backward();
  std::vector<std::vector<float>> g0;
  for (const auto& p : params) g0.push_back(p.grad().to_vector());
  for (auto& p : params) p.zero_grad();

  TwoRanks comm;
  int64_t hooks_run = 0;
  comm.hooks_run = &hooks_run;
  for (const auto& p : params)
    p.register_post_accumulate_grad_hook([&](const TensorF&) { ++hooks_run; });
  // Small buckets (~600 bytes) so that the tiny model makes several.
  dist::GradientReducer<float> reducer(comm, params, 600);
  REQUIRE(reducer.bucket_count() > 2);
  // Bucket 0 starts with the last parameter (the head), as backward finishes it first.
  CHECK(reducer.bucket_params(0).front() == params.size() - 1);
  for (size_t i = 0; i < reducer.bucket_count(); ++i) {
    std::vector<float> flat;
    for (size_t k : reducer.bucket_params(i)) flat.insert(flat.end(), g1[k].begin(), g1[k].end());
    comm.other.push_back(flat);
  }

  loss_of(model, 3).backward();
  // Every bucket but the last started before backward finished its hooks.
  REQUIRE(comm.started_after_hooks.size() >= reducer.bucket_count() - 1);
  CHECK(comm.started_after_hooks.front() < static_cast<int64_t>(params.size()));
  reducer.finish();
  CHECK(comm.started_after_hooks.size() == reducer.bucket_count());
  CHECK(comm.waits == 1);
  CHECK(comm.progress_calls > 0);
  for (size_t k = 0; k < params.size(); ++k) {
    const std::vector<float> got = params[k].grad().to_vector();
    for (size_t i = 0; i < got.size(); ++i)
      REQUIRE(got[i] == (g0[k][i] + g1[k][i]) * 0.5f);
  }

  // No sync (accumulation steps): hooks leave the gradients alone, finish is a no-op.
  reducer.set_sync(false);
  for (auto& p : params) p.zero_grad();
  loss_of(model, 3).backward();
  reducer.finish();
  CHECK(comm.started_after_hooks.size() == reducer.bucket_count());
  CHECK(params[0].grad().to_vector() == g0[0]);
}

TEST_CASE("GradientReducer refuses a second synced backward before finish", "[dist]") {
  nn::VisionTransformer<float> model(tiny_vit_config());
  std::vector<TensorF> params;
  for (const auto& [n, p] : model.named_parameters()) params.push_back(p);
  dist::SingleProcess one;
  dist::GradientReducer<float> reducer(one, params);
  CHECK(reducer.bucket_count() == 1);
  loss_of(model, 3).backward();
  CHECK_THROWS_WITH(loss_of(model, 3).backward(),
                    Catch::Contains("got its gradient twice before finish()"));
}

TEST_CASE("GradientReducer's first bucket is small (DDP's 1 MB), the others up to the cap",
          "[dist]") {
  // Four parameters of 1.2 MB: the last alone (past 1 MB), the other three together.
  std::vector<TensorF> params;
  for (int i = 0; i < 4; ++i) {
    params.push_back(TensorF::zeros({300000}));
    params.back().set_requires_grad(true);
  }
  dist::SingleProcess one;
  dist::GradientReducer<float> reducer(one, params);
  REQUIRE(reducer.bucket_count() == 2);
  CHECK(reducer.bucket_params(0) == std::vector<size_t>{3});
  CHECK(reducer.bucket_params(1) == std::vector<size_t>{2, 1, 0});
  // A cap of 2 MB: the last alone, then two by two.
  dist::GradientReducer<float> small(one, params, size_t{2} << 20);
  REQUIRE(small.bucket_count() == 3);
  CHECK(small.bucket_params(1) == std::vector<size_t>{2, 1});
  CHECK(small.bucket_params(2) == std::vector<size_t>{0});
}
