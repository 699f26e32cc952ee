// torch_parity: dumps one training step of a ViT for benchmarks/torch_parity.py
// to recompute in PyTorch/timm. Writes parameters, input, labels, logits, loss,
// every parameter gradient, and the parameters after `--steps` AdamW steps.
// File format (little-endian): u32 count, then per tensor
//   u32 name_len, name bytes, u32 ndim, i64 dims[ndim], f32 data[numel].
#include <vit/vit.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

void write_tensor(std::ofstream& f, const std::string& name, const vit::TensorF& t) {
  const uint32_t n = static_cast<uint32_t>(name.size()), nd = static_cast<uint32_t>(t.dim());
  f.write(reinterpret_cast<const char*>(&n), 4).write(name.data(), n);
  f.write(reinterpret_cast<const char*>(&nd), 4);
  for (int64_t d : t.shape()) f.write(reinterpret_cast<const char*>(&d), 8);
  f.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(4 * t.numel()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_name = "cifar-tiny", out = "parity.bin";
  int steps = 3, batch = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model") model_name = argv[i + 1];
    else if (a == "--out") out = argv[i + 1];
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--batch") batch = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "torch_parity: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  try {
    auto model = vit::nn::create_vit<float>(model_name, 0, 1);
    const auto& c = model->config;
    vit::Generator g(42);
    const vit::TensorF x = vit::TensorF::normal({batch, c.in_chans, c.image_size, c.image_size}, 0, 1, g);
    std::vector<int64_t> labels(batch);
    vit::TensorF labels_f = vit::TensorF::empty({batch});
    for (int b = 0; b < batch; ++b) labels_f.data()[b] = static_cast<float>(labels[b] = g.next_u64() % c.num_classes);

    std::vector<std::pair<std::string, vit::TensorF>> dump;
    for (auto& [n, p] : model->named_parameters()) dump.emplace_back("param." + n, p.clone());
    dump.emplace_back("input", x);
    dump.emplace_back("labels", labels_f);

    vit::optim::AdamW<float> opt(vit::optim::default_param_groups(model->named_parameters(), 0.05),
                                 {1e-3});
    for (int s = 0; s < steps; ++s) {
      opt.zero_grad();
      vit::TensorF logits = model->forward(x);
      vit::TensorF loss = vit::cross_entropy(logits, labels, 0.1);
      loss.backward();
      if (s == 0) {
        dump.emplace_back("logits", logits.detach().clone());
        dump.emplace_back("loss", loss.detach().clone());
        for (auto& [n, p] : model->named_parameters()) dump.emplace_back("grad." + n, p.grad().clone());
      }
      opt.step();
    }
    for (auto& [n, p] : model->named_parameters()) dump.emplace_back("after." + n, p.clone());

    std::ofstream f(out, std::ios::binary);
    const uint32_t count = static_cast<uint32_t>(dump.size());
    f.write(reinterpret_cast<const char*>(&count), 4);
    for (auto& [n, t] : dump) write_tensor(f, n, t);
    if (!f) throw vit::Error("cannot write " + out);
    std::printf("torch_parity: wrote %u tensors (%s, batch %d, %d AdamW steps) to %s\n", count,
                model_name.c_str(), batch, steps, out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_parity: %s\n", e.what());
    return 1;
  }
}
