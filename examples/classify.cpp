// classify: the inference API in a few lines. Loads weights written by
// `vit train` (or timm's, with a preset name) and prints an image's top 5.
//   classify WEIGHTS.safetensors IMAGE [PRESET]
#include <vit/vit.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s WEIGHTS.safetensors IMAGE [PRESET for timm weights]\n", argv[0]);
    return 2;
  }
  try {
    vit::ClassifierOptions options;
    if (argc > 3) options.preset = argv[3];  // e.g. vit-b16 for weights converted from timm
    options.on_note = [](const std::string& note) { std::fprintf(stderr, "note: %s\n", note.c_str()); };
    vit::Classifier classifier(argv[1], options);
    for (const vit::Prediction& p : classifier.classify(argv[2], 5))
      std::printf("%6.2f%%  %s\n", 100 * p.probability, p.name.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify: %s\n", e.what());
    return 1;
  }
  return 0;
}
