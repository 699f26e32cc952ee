// `vit eval`: top-1, top-5 and loss of saved weights on a data set's test
// split, the per-class table, confusion.csv and confusion.png (in --out),
// optionally every logit as CSV (one row per record, file order).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "confusion.hpp"
#include "datasets.hpp"
#include "job.hpp"

namespace vitcli {

void add_eval_options(CLI::App& cmd, EvalOptions& o) {
  cmd.add_option("--weights", o.weights, "Weights (.safetensors)")->required()->check(CLI::ExistingFile);
  cmd.add_option("--dataset", o.dataset, "Data set")->check(CLI::IsMember(dataset_names()))->capture_default_str();
  cmd.add_option("--data", o.data, "Data directory (default for fashion-mnist: its Debian location)");
  cmd.add_option("--model", o.model, "Architecture preset, for weights without a config (e.g. from timm)");
  cmd.add_option("--dump-logits", o.dump_logits, "Write every logit to this CSV file");
  cmd.add_option("--batch", o.batch, "Batch size")->check(positive_number())->capture_default_str();
  cmd.add_option("--threads", o.threads, "CPU threads (default: all cores, shared by the ranks of a job)")->check(positive_number());
  cmd.add_option("--device", o.device, "Device")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd.add_option("--precision", o.precision, "Arithmetic: fp32, tf32 (GPU tensor cores) or bf16 (bf16 activations, float32 logits)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))->capture_default_str();
  cmd.add_option("--val-ratio", o.val_ratio, "Folder data sets: the training run's --val-ratio")
      ->check(number_in(0.0, 0.9))
      ->capture_default_str();
  cmd.add_option("--seed", o.seed, "Folder data sets: the training run's --seed")->capture_default_str();
  cmd.add_option("--crop-pct", o.crop_pct,
                 "Folder data sets: resize the shorter side to size/crop-pct, then centre crop "
                 "(default: the checkpoint's, else 0.875)")
      ->check(number_in(0.1, 1.0));
  cmd.add_option("--out", o.out,
                 "Directory for confusion.csv and confusion.png (created if missing; default: the "
                 "current directory)");
}

int run_eval(const EvalOptions& o) {
  vit::set_num_threads(threads_per_rank(o.threads));
  const vit::Device device = checked_device(o.device);  // before anything is read
  use_gpu_communicator(device);  // under mpirun: this rank's GPU
  const auto ck = vit::io::load_checkpoint<float>(o.weights);
  auto model = vit::io::model_from_checkpoint(ck, o.model);
  model->to(device);
  const auto& cfg = model->config;
  const std::string dir = o.data.empty() ? dataset_info(o.dataset).default_dir : o.data;
  const double crop_pct = o.crop_pct > 0 ? o.crop_pct
                                         : vit::infer::checkpoint_crop_pct(ck).value_or(vit::data::kDefaultCropPct);
  const Splits data =
      load_splits(o.dataset, dir, false, cfg.image_size, cfg.in_chans, o.val_ratio, o.seed, crop_pct);
  VIT_CHECK(data.test.num_classes() == cfg.num_classes, o.weights, ": the model has ", cfg.num_classes,
            " classes, data set '", o.dataset, "' has ", data.test.num_classes());
  // Same count but other names (another folder data set, or its classes
  // renamed): label i would not mean class i, and the accuracy would be noise.
  for (size_t i = 0; i < ck.class_names.size(); ++i)
    VIT_CHECK(ck.class_names[i] == data.test.class_names[i], dir, ": class ", i, " is '",
              data.test.class_names[i], "' but ", o.weights, " was trained with '", ck.class_names[i],
              "' there");
  const auto norm = ck.metadata.count("vit.normalization")
                        ? vit::infer::checkpoint_normalization(ck, cfg.in_chans)
                        : normalization_for(o.dataset, cfg.in_chans);
  std::vector<float> logits;
  // Under mpirun every rank evaluates its share; rank 0 reports.
  const auto mixed = inference_precision(o.precision, *model, device, "eval", main_rank());
  const EvalResult r = evaluate(*model, data.test, norm, o.batch,
                                o.dump_logits.empty() ? nullptr : &logits, &job(), mixed.get());
  if (!main_rank()) return 0;
  if (!o.out.empty()) {  // before the files, so a bad --out fails with nothing half written
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    VIT_CHECK(std::filesystem::is_directory(o.out), "--out ", o.out, ": cannot create the directory",
              ec ? " (" + ec.message() + ")" : std::string());
  }
  if (!o.dump_logits.empty()) {
    std::ostringstream csv;
    char buf[32];
    const int64_t K = cfg.num_classes;
    for (int64_t i = 0; i < r.count; ++i) {
      for (int64_t k = 0; k < K; ++k) {
        std::snprintf(buf, sizeof buf, "%.9g", logits[i * K + k]);  // round-trips a float exactly
        csv << (k ? "," : "") << buf;
      }
      csv << '\n';
    }
    vit::io::write_file_atomic(o.dump_logits, csv.str());
  }
  std::printf("eval: %s on %s test (%lld images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n",
              cfg.name.c_str(), o.dataset.c_str(), static_cast<long long>(r.count), 100 * r.top1,
              100 * r.top5, r.loss);
  std::printf("%s", per_class_table(data.test.class_names, r.confusion).c_str());
  const std::string out = o.out.empty() ? "." : o.out;
  write_confusion(out, data.test.class_names, r.confusion);
  std::printf("confusion matrix: %s/confusion.csv, %s/confusion.png\n", out.c_str(), out.c_str());
  return 0;
}

}  // namespace vitcli
