// Replays files through a fuzz target without libFuzzer, so any compiler can
// build it and ctest can run every committed corpus and regression input on
// each CI run. Arguments are files or directories (read recursively, in
// sorted order). Fails when no input is found, and with --min-accepted N when
// fewer than N inputs parse whole: a corpus of nothing but rejects would only
// ever test the first check of a parser.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  long min_accepted = 0;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--min-accepted" && i + 1 < argc) {
      min_accepted = std::atol(argv[++i]);
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(arg, ec))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(arg, ec)) {
      files.emplace_back(arg);
    } else {
      std::fprintf(stderr, "replay: %s: no such file or directory\n", arg.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 2;
  }
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) {
      std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
      return 2;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replay: %zu inputs, %ld accepted whole, none crashed\n", files.size(),
              vit_fuzz::accepted);
  if (vit_fuzz::accepted < min_accepted) {
    std::fprintf(stderr, "replay: only %ld inputs accepted, expected at least %ld\n",
                 vit_fuzz::accepted, min_accepted);
    return 1;
  }
  return 0;
}
