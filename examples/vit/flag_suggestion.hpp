// "unknown flag --epoch (did you mean --epochs?)" instead of CLI11's
// "The following arguments were not expected: 1 --epoch": the flags a
// subcommand does not know, each with the nearest one it does.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

namespace vitcli {

/// Edits (insert, delete, substitute) that turn a into b.
inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

/// Every flag `cmd` takes, as users type them ("--epochs", "-h").
inline std::vector<std::string> flag_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : cmd.get_options()) {
    for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : opt->get_snames()) names.push_back("-" + s);
  }
  return names;
}

/// The first argument of `args` that looks like a flag `cmd` does not know,
/// as one line with the closest known flag when one is near; "" when none.
inline std::string unknown_flag_message(const CLI::App& cmd, const std::vector<std::string>& args) {
  const std::vector<std::string> known = flag_names(cmd);
  for (const std::string& arg : args) {
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") continue;
    if (std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.') continue;  // -1, -.5
    const std::string name = arg.substr(0, arg.find('='));
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string best;
    size_t best_d = SIZE_MAX;
    for (const std::string& k : known) {
      const size_t d = edit_distance(name, k);
      if (d < best_d) best_d = d, best = k;
    }
    // Near: a typo or two, or a prefix of a known flag (--epoch for --epochs).
    const bool near = best_d <= std::max<size_t>(2, name.size() / 4) ||
                      (name.size() >= 4 && best.rfind(name, 0) == 0);
    return "unknown flag " + name + (near ? " (did you mean " + best + "?)" : "");
  }
  return "";
}

}  // namespace vitcli
