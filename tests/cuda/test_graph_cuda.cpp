// CUDA graphs of a training step (optim::CapturedStep, cuda::begin_capture):
// a replayed step is the eager step bit for bit, dropout, drop-path and
// attention-dropout masks included (their counters are shifted per replay),
// the generator advances as the eager step advances it, and a host copy
// inside a capture is refused with one line.
#include <catch2/catch.hpp>
#include <string>
#include <vector>
#include <vit/vit.hpp>

using namespace vit;

namespace {

nn::VitConfig tiny_config() {
  nn::VitConfig c;
  c.image_size = 16, c.in_chans = 3, c.patch_size = 4;
  c.dim = 32, c.depth = 2, c.heads = 2, c.mlp_dim = 64, c.num_classes = 4;
  c.drop_rate = 0.1, c.drop_path_rate = 0.1, c.attn_drop_rate = 0.1;
  c.seed = 3;
  return c;
}

/// A model, its optimizer and guard, and the fixed input buffers a captured step reads.
struct Trainer {
  nn::VisionTransformer<float> model;
  optim::AdamW<float> opt;
  optim::StepGuard<float> guard{Device::CUDA};
  TensorF images = TensorF::empty({8, 3, 16, 16}, Device::CUDA);
  Tensor<int32_t> labels = Tensor<int32_t>::empty({8}, Device::CUDA);
  optim::CapturedStep captured;

  Trainer(bool graph)
      : model(tiny_config()),
        opt(groups(model), {2e-3}),
        captured(model.dropout_generator(), [this] { step(); }, graph) {
    opt.set_skip_flag(guard.skip_flag());
    model.train();
  }
  static std::vector<optim::ParamGroup<float>> groups(nn::VisionTransformer<float>& m) {
    m.to(Device::CUDA);
    return optim::default_param_groups(m.named_parameters(), 0.05);
  }
  void step() {
    opt.zero_grad();
    const TensorF logits = model.forward(images);
    TensorF loss = cross_entropy(logits, labels, 0.1);
    loss.backward();
    guard.check(loss, optim::clip_grad_norm_in_step(opt, model.parameters(), 1.0));
    opt.step();
    guard.accumulate(logits, labels, loss);
  }
  void run(const TensorF& x, const Tensor<int32_t>& y, double lr) {
    images.copy_from(x);
    labels.copy_from(y);
    opt.set_lr(lr);
    opt.stage_lr();
    captured.run();
  }
};

}  // namespace

TEST_CASE("a step replayed as a CUDA graph is the eager step bit for bit, masks included",
          "[cuda][graph]") {
  Trainer eager(false), graph(true);
  REQUIRE_FALSE(eager.captured.uses_graph());
  REQUIRE(graph.captured.uses_graph());
  Generator data(17);
  for (int s = 0; s < 6; ++s) {
    const TensorF x = TensorF::normal({8, 3, 16, 16}, 0.0, 1.0, data);
    Tensor<int32_t> y = Tensor<int32_t>::empty({8});
    for (int i = 0; i < 8; ++i) y.data()[i] = (i + s) % 4;
    const double lr = 2e-3 * (s + 1) / 6;  // a changing schedule: the lr is staged per replay
    eager.run(x, y, lr);
    graph.run(x, y, lr);
  }
  CHECK(graph.model.dropout_generator().offset() == eager.model.dropout_generator().offset());
  CHECK(graph.opt.steps() == 6);
  const auto a = eager.guard.read(), b = graph.guard.read();
  CHECK(a.loss_sum == b.loss_sum);
  CHECK(a.correct == b.correct);
  CHECK(b.images == 6 * 8);
  for (const auto& [name, t] : eager.model.state_dict()) {
    INFO(name);
    CHECK(t.to_vector() == graph.model.state_dict().at(name).to_vector());
  }
}

TEST_CASE("a host copy inside a graph capture is refused with one line", "[cuda][graph]") {
  const TensorF host = TensorF::ones({4});
  TensorF dev = TensorF::zeros({4}, Device::CUDA);
  cuda::begin_capture();
  REQUIRE(cuda::capturing());
  REQUIRE_THROWS_WITH(dev.copy_from(host), Catch::Contains("while a CUDA graph is captured"));
  cuda::destroy_graph(cuda::end_capture());
  REQUIRE_FALSE(cuda::capturing());
  dev.copy_from(host);  // after the capture, copies work again
  REQUIRE(dev.to_vector() == std::vector<float>(4, 1.f));
}
