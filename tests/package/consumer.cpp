// Builds a tiny ViT through the installed package and checks one training step
// lowers the loss on a fixed batch; exits non-zero otherwise.
#include <vit/vit.hpp>

#include <cstdio>

int main() {
  vit::nn::VitConfig c;
  c.image_size = 8, c.patch_size = 4, c.dim = 16, c.depth = 1, c.heads = 2, c.mlp_dim = 32;
  c.num_classes = 3;
  vit::nn::VisionTransformer<float> model(c);
  vit::Generator g(7);
  auto x = vit::TensorF::normal({4, 3, 8, 8}, 0, 1, g);
  std::vector<int64_t> y = {0, 1, 2, 0};
  vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model.named_parameters(), 0.0),
                               {1e-2});
  float first = 0, last = 0;
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    auto loss = vit::cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    (i == 0 ? first : last) = loss.item();
  }
  std::printf("consumer: loss %.4f -> %.4f (vit %s)\n", first, last, VIT_VERSION_STRING);
  return last < first ? 0 : 1;
}
