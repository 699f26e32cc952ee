// compare_weights A.safetensors B.safetensors RTOL: the model tensors of two
// checkpoints agree when, tensor by tensor, max|a - b| <= RTOL * max|b| (the
// tensor's own scale: a bias that starts at zero is judged like its weights).
// Prints the worst tensor; exits 1 when one differs more, or names differ.
#include <vit/vit.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_weights A.safetensors B.safetensors RTOL\n");
    return 2;
  }
  try {
    const auto a = vit::io::load_checkpoint<float>(argv[1]);
    const auto b = vit::io::load_checkpoint<float>(argv[2]);
    const double rtol = std::strtod(argv[3], nullptr);
    if (a.model.size() != b.model.size()) {
      std::fprintf(stderr, "compare_weights: %zu tensors vs %zu\n", a.model.size(), b.model.size());
      return 1;
    }
    double worst = 0;
    std::string worst_name;
    for (const auto& [name, ta] : a.model) {
      const auto it = b.model.find(name);
      if (it == b.model.end() || it->second.shape() != ta.shape()) {
        std::fprintf(stderr, "compare_weights: %s is missing or of another shape in %s\n",
                     name.c_str(), argv[2]);
        return 1;
      }
      const std::vector<float> va = ta.to_vector(), vb = it->second.to_vector();
      double diff = 0, scale = 0;
      for (size_t i = 0; i < va.size(); ++i) {
        diff = std::max(diff, std::abs(double(va[i]) - vb[i]));
        scale = std::max(scale, std::abs(double(vb[i])));
      }
      const double rel = scale > 0 ? diff / scale : diff;
      if (!(rel <= worst)) worst = rel, worst_name = name;
    }
    std::printf("compare_weights: worst relative difference %.3g (%s), bound %.3g\n", worst,
                worst_name.c_str(), rtol);
    return worst <= rtol ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_weights: %s\n", e.what());
    return 2;
  }
}
