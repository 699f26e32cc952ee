// `vit train`: the entry point main.cpp calls; the options are in
// train_options.hpp.
#pragma once

#include <CLI/CLI.hpp>

#include "train_options.hpp"

namespace vitcli {

/// Runs (or resumes) a training run; throws vit::Error on any failure.
int run_train(const CLI::App& cmd, TrainOptions o);

}  // namespace vitcli
