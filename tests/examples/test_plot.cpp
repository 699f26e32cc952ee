// The trainer's curves and metrics (examples/vit/plot.hpp, metrics.hpp): round
// 1-2-5 ticks and their labels ("20k" for steps in thousands, "0" at the
// origin), an accuracy axis fitted to the data instead of 0-100, the picture
// drawn with and without EMA rows, and the EMA columns of metrics.jsonl/.csv
// surviving the resume that truncates them.
#include "../../examples/vit/plot.hpp"

#include <fstream>
#include <sstream>

#include "support/check.hpp"
#include "support/temp_dir.hpp"

using namespace vitcli;
using namespace vitcli::plot_detail;

TEST_CASE("plot: 1-2-5 ticks and their labels", "[examples][plot]") {
  CHECK(nice_step(23400, 6) == 5000);
  CHECK(nice_step(8, 6) == 2);
  CHECK(nice_step(1.5, 6) == Approx(0.5));
  CHECK(nice_step(100, 5) == 20);
  CHECK(nice_step(0, 6) == 1);
  CHECK(tick_label(0, 5000, true) == "0");
  CHECK(tick_label(20000, 5000, true) == "20k");
  CHECK(tick_label(22500, 2500, true) == "22.5k");
  CHECK(tick_label(2500, 500, true) == "2500");  // steps under a thousand: plain
  CHECK(tick_label(0.5, 0.5, false) == "0.5");
  CHECK(tick_label(85, 5, false) == "85");
  CHECK(tick_label(0.25, 0.05, false) == "0.25");
}

TEST_CASE("plot: the accuracy axis fits the data", "[examples][plot]") {
  const Axis a = fit_axis(80, 95, 6, 0, 100);  // every accuracy between 80% and 95%
  CHECK(a.lo >= 70);
  CHECK(a.lo <= 80);
  CHECK(a.hi >= 95);
  CHECK(a.hi <= 100);
  const Axis full = fit_axis(3, 99.5, 6, 0, 100);  // never beyond 0..100
  CHECK(full.lo == 0);
  CHECK(full.hi == 100);
  const Axis flat = fit_axis(2.0, 2.0, 6, -INFINITY, INFINITY);  // one value: still a range
  CHECK(flat.hi > flat.lo);
}

TEST_CASE("plot: curves with and without the EMA, and none at all", "[examples][plot]") {
  std::vector<MetricsRow> rows;
  for (int64_t s = 100; s <= 23400; s += 100) {
    MetricsRow r;
    r.kind = "step", r.step = s, r.epoch = 1 + (s - 1) / 2340;
    r.loss = 2.0 - s / 20000.0, r.train_top1 = 0.8 + s / 200000.0;
    rows.push_back(r);
    if (s % 2340 == 0) {
      MetricsRow e = r;
      e.kind = "epoch", e.test_loss = 1.0, e.test_top1 = 0.85, e.test_top5 = 0.99;
      e.ema_test_loss = 0.9, e.ema_test_top1 = 0.86;
      rows.push_back(e);
    }
  }
  const vit::data::Image img = curves_image(rows);
  CHECK(img.width == 1400);
  CHECK(img.height == 560);
  CHECK(curves_image({}).width == 1400);
  vit::test::TempDir dir;
  const std::string path = (dir.path / "curves.png").string();
  write_curves_png(path, rows);
  CHECK(vit::data::read_image(path, 3).width == 1400);
}

TEST_CASE("metrics: EMA columns written, read back and kept by a resume", "[examples][metrics]") {
  vit::test::TempDir dir;
  const std::string run = dir.path.string();
  {
    MetricsLog log(run, -1);
    MetricsRow s;
    s.kind = "step", s.step = 4, s.epoch = 1, s.loss = 1.5;
    log.append(s);
    MetricsRow e = s;
    e.kind = "epoch", e.test_top1 = 0.5, e.ema_test_loss = 1.25, e.ema_test_top1 = 0.625;
    e.ema_test_top5 = 0.875;
    log.append(e);
    MetricsRow later = s;
    later.step = 8;
    log.append(later);
  }
  MetricsLog resumed(run, 4);  // a resume from step 4 drops the row of step 8
  REQUIRE(resumed.rows().size() == 2);
  const MetricsRow& e = resumed.rows()[1];
  CHECK(e.epoch == 1);
  CHECK(e.ema_test_loss == 1.25);
  CHECK(e.ema_test_top1 == 0.625);
  CHECK(e.ema_test_top5 == 0.875);
  CHECK(std::isnan(resumed.rows()[0].ema_test_top1));
  std::ifstream csv(run + "/metrics.csv");
  std::string header, step_row, epoch_row;
  std::getline(csv, header), std::getline(csv, step_row), std::getline(csv, epoch_row);
  CHECK(header.find(",nonfinite,ema_test_loss,ema_test_top1,ema_test_top5") != std::string::npos);
  CHECK(epoch_row.ends_with(",1.25,0.625,0.875"));
  CHECK(step_row.ends_with(",0,,,"));  // nonfinite 0, no EMA figures on a step row
}
