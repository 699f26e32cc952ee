// The confusion matrix files of `vit eval` and the trainer
// (examples/vit/confusion.hpp): per-class accuracy and precision, the CSV
// text, the printed table, the PNG, and refusals of malformed counts.
#include "../../examples/vit/confusion.hpp"

#include <fstream>
#include <sstream>

#include "support/check.hpp"
#include "support/temp_dir.hpp"

using namespace vitcli;

namespace {
// 3 classes, row = true: a is right 3 of 4 times, b 1 of 2, c never has images.
const std::vector<std::string> kNames = {"a", "b", "c"};
const std::vector<int64_t> kCounts = {3, 1, 0,  //
                                      0, 1, 1,  //
                                      0, 0, 0};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("confusion: per-class accuracy and precision", "[examples][confusion]") {
  const auto s = per_class_stats(kCounts, 3);
  REQUIRE(s.size() == 3);
  CHECK(s[0].images == 4);
  CHECK(s[0].correct == 3);
  CHECK(s[0].predicted == 3);
  CHECK(s[0].accuracy() == 0.75);
  CHECK(s[0].precision() == 1.0);
  CHECK(s[1].accuracy() == 0.5);
  CHECK(s[1].precision() == 0.5);  // predicted b twice, right once
  CHECK(s[2].images == 0);
  CHECK(s[2].predicted == 1);
  CHECK(s[2].precision() == 0.0);
  CHECK(mean_class_accuracy(s) == 0.625);  // over the classes with images
}

TEST_CASE("confusion: CSV rows are true classes, columns predicted", "[examples][confusion]") {
  CHECK(confusion_csv(kNames, kCounts) ==
        "true\\predicted,a,b,c\n"
        "a,3,1,0\n"
        "b,0,1,1\n"
        "c,0,0,0\n");
  // Names with a comma or quote are quoted as RFC 4180 says.
  CHECK(confusion_csv({"x,y", "say \"hi\""}, {1, 0, 0, 2}) ==
        "true\\predicted,\"x,y\",\"say \"\"hi\"\"\"\n"
        "\"x,y\",1,0\n"
        "\"say \"\"hi\"\"\",0,2\n");
}

TEST_CASE("confusion: the printed table", "[examples][confusion]") {
  const std::string t = per_class_table(kNames, kCounts);
  CHECK(t.find("class") != std::string::npos);
  CHECK(t.find("precision") != std::string::npos);
  CHECK(t.find("  a            4        3     75.00%    100.00%\n") != std::string::npos);
  CHECK(t.find("  c            0        0          -      0.00%\n") != std::string::npos);
  CHECK(t.find("mean per-class accuracy 62.50%") != std::string::npos);
}

TEST_CASE("confusion: write_confusion writes both files", "[examples][confusion]") {
  vit::test::TempDir dir("confusion");
  write_confusion(dir.path.string(), kNames, kCounts);
  CHECK(read_text(dir / "confusion.csv") == confusion_csv(kNames, kCounts));
  const vit::data::Image png = vit::data::read_image(dir / "confusion.png", 3);
  CHECK(png.width > 200);
  CHECK(png.height > 200);
  CHECK(dir.entries() == std::vector<std::string>{"confusion.csv", "confusion.png"});  // no temp files left
  // 100 classes still make a picture of bounded size.
  std::vector<std::string> names;
  for (int k = 0; k < 100; ++k) names.push_back("class " + std::to_string(k));
  std::vector<int64_t> counts(100 * 100, 1);
  const vit::data::Image big = confusion_image(names, counts);
  CHECK(big.width < 1400);
  CHECK(big.height < 1400);
}

TEST_CASE("confusion: malformed counts are refused", "[examples][confusion]") {
  CHECK_THROWS_WITH(confusion_csv(kNames, {1, 2, 3}), Catch::Contains("3 counts for 3 classes (need 3x3)"));
  CHECK_THROWS_WITH(confusion_csv({"a"}, {-1}), Catch::Contains("negative count -1"));
  CHECK_THROWS_WITH(per_class_stats({1, 2}, 2), Catch::Contains("2 counts for 2 classes"));
}
