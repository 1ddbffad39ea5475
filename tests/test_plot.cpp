#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mcnn/error.hpp"
#include "mcnn/plot/curves.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::plot;
using mcnn::test::TempDir;
namespace fs = std::filesystem;

namespace {

struct PngInfo {
    bool signature = false;
    std::uint32_t width = 0, height = 0;
};

/// The PNG signature and the IHDR size (big-endian uint32s at bytes 16..23).
PngInfo read_png(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::array<unsigned char, 24> head{};
    in.read(reinterpret_cast<char*>(head.data()), head.size());
    PngInfo info;
    if (in.gcount() != static_cast<std::streamsize>(head.size())) return info;
    const std::array<unsigned char, 8> signature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    info.signature = std::equal(signature.begin(), signature.end(), head.begin());
    auto be32 = [&](std::size_t at) {
        return std::uint32_t(head[at]) << 24 | std::uint32_t(head[at + 1]) << 16 | std::uint32_t(head[at + 2]) << 8 |
               std::uint32_t(head[at + 3]);
    };
    BOOST_TEST(std::string(head.begin() + 12, head.begin() + 16) == "IHDR");
    info.width = be32(16);
    info.height = be32(20);
    return info;
}

void check_png(const fs::path& file, int width, int height) {
    BOOST_TEST_REQUIRE(fs::exists(file), file << " was not written");
    const PngInfo info = read_png(file);
    BOOST_TEST(info.signature);
    BOOST_TEST(info.width == std::uint32_t(width));
    BOOST_TEST(info.height == std::uint32_t(height));
}

/// Three epochs of 50 steps: running train averages every 5 steps, an evaluation per epoch.
TrainingCurves synthetic_curves() {
    TrainingCurves c;
    c.title = "SimpleCNN, SGD lr 0.001 m 0.9, batch 4 (synthetic)";
    c.eval_name = "test";
    std::mt19937 rng(7);
    std::normal_distribution<double> noise(0.0, 1.0);
    for (int step = 5; step <= 150; step += 5) {
        const double t = step / 150.0;
        c.train_step.push_back(step);
        c.train_loss.push_back(2.3 * std::exp(-1.2 * t) + 0.4 + 0.03 * noise(rng));
        c.train_accuracy.push_back(10 + 55 * (1 - std::exp(-2.5 * t)) + 1.0 * noise(rng));
    }
    for (int epoch = 1; epoch <= 3; ++epoch) {
        const double t = epoch * 50 / 150.0;
        c.eval_step.push_back(epoch * 50);
        c.eval_loss.push_back(2.3 * std::exp(-1.1 * t) + 0.5);
        c.eval_accuracy.push_back(10 + 50 * (1 - std::exp(-2.5 * t)));
    }
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(plot)

BOOST_AUTO_TEST_CASE(terminal_is_a_png_terminal) {
    const std::string& terminal = png_terminal();
    BOOST_TEST((terminal == "pngcairo" || terminal == "png"));
    BOOST_TEST_MESSAGE("gnuplot terminal: " << terminal);
}

BOOST_AUTO_TEST_CASE(training_curves_png_has_requested_size) {
    const TempDir dir("curves");
    const fs::path png = dir.path / "curves.png";
    const TrainingCurves curves = synthetic_curves();
    draw_training_curves(png, curves, 1000, 420);
    check_png(png, 1000, 420);
    BOOST_TEST(dir.files() == std::vector<std::string>{"curves.png"}, "no temporary file is left");

    // Drawing again replaces the picture (the training loop redraws it every epoch).
    draw_training_curves(png, curves, 640, 300);
    check_png(png, 640, 300);
    BOOST_TEST(dir.files() == std::vector<std::string>{"curves.png"});

    // A sample at the default size to look at.
    draw_training_curves("/tmp/mcnn_plot_sample.png", curves);
    check_png("/tmp/mcnn_plot_sample.png", 1200, 500);
}

BOOST_AUTO_TEST_CASE(generic_charts_side_by_side) {
    const TempDir dir("charts");
    std::vector<Chart> charts(3);
    for (std::size_t c = 0; c < charts.size(); ++c) {
        charts[c].title = "chart " + std::to_string(c);
        charts[c].xlabel = "x";
        charts[c].ylabel = "y";
        for (int s = 0; s < 3; ++s) {
            Series series{"series " + std::to_string(s), {}, {}, s == 1 ? Style::linespoints : Style::lines};
            for (int i = 0; i < 20; ++i) {
                series.x.push_back(i);
                series.y.push_back(std::sin(0.3 * i + s) * (c + 1));
            }
            charts[c].series.push_back(series);
        }
    }
    const fs::path png = dir.path / "charts.png";
    draw_png(png, charts, 900, 300);
    check_png(png, 900, 300);
    draw_png(png, "three charts, titled: it's \"quoted\"\nand on one line", charts, 1500, 400);
    check_png(png, 1500, 400);
    draw_png(png, "in rows of two", charts, 800, 600, 2);  // 2 rows: two charts, then one
    check_png(png, 800, 600);
    BOOST_CHECK_THROW(draw_png(png, "", charts, 800, 600, -1), Error);
    BOOST_TEST(dir.files() == std::vector<std::string>{"charts.png"});
}

BOOST_AUTO_TEST_CASE(empty_series_and_non_finite_values_still_draw) {
    const TempDir dir("empty");
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();

    // Nothing recorded yet: both panels say "no data yet".
    TrainingCurves nothing;
    nothing.title = "before the first step";
    draw_training_curves(dir.path / "nothing.png", nothing, 800, 300);
    check_png(dir.path / "nothing.png", 800, 300);

    // Running averages only, with NaN and inf losses (a diverging run), no evaluation yet.
    TrainingCurves partial = synthetic_curves();
    partial.eval_step.clear(), partial.eval_loss.clear(), partial.eval_accuracy.clear();
    partial.train_loss[3] = nan;
    partial.train_loss[4] = inf;
    partial.train_accuracy[5] = -inf;
    partial.train_step[6] = nan;
    draw_training_curves(dir.path / "partial.png", partial, 800, 300);
    check_png(dir.path / "partial.png", 800, 300);

    // One evaluation and loss recorded without accuracy.
    TrainingCurves one = synthetic_curves();
    one.train_accuracy.clear();
    one.eval_step.resize(1), one.eval_loss.resize(1), one.eval_accuracy.resize(1);
    draw_training_curves(dir.path / "one.png", one, 800, 300);
    check_png(dir.path / "one.png", 800, 300);

    // Generic charts: an empty one, an all-NaN one, and a single point.
    const std::vector<Chart> charts = {
        {"empty", "x", "y", {}},
        {"all NaN", "x", "y", {{"nan", {nan, 1, 2}, {0, nan, nan}}, {"empty", {}, {}}}},
        {"one point", "x", "y", {{"point", {3}, {4}}}},
        {"huge", "x", "y", {{"huge", {-1e308, 1e308, 0}, {1e308, -1e308, 1}}}},
    };
    draw_png(dir.path / "generic.png", charts, 1200, 300);
    check_png(dir.path / "generic.png", 1200, 300);

    auto files = dir.files();
    std::sort(files.begin(), files.end());
    BOOST_TEST(files == (std::vector<std::string>{"generic.png", "nothing.png", "one.png", "partial.png"}));
}

BOOST_AUTO_TEST_CASE(errors_name_the_problem) {
    const TempDir dir("errors");
    const fs::path missing = dir.path / "no" / "such" / "dir" / "curves.png";
    try {
        draw_training_curves(missing, synthetic_curves());
        BOOST_FAIL("drawing into a missing directory must throw");
    } catch (const Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(std::string(e.what()).find(missing.string()) != std::string::npos);
    }
    BOOST_TEST(!fs::exists(missing));

    const std::vector<Chart> mismatched = {{"bad", "x", "y", {{"s", {1, 2, 3}, {1, 2}}}}};
    BOOST_CHECK_THROW(draw_png(dir.path / "bad.png", mismatched), Error);
    BOOST_CHECK_THROW(draw_png(dir.path / "none.png", std::vector<Chart>{}), Error);
    BOOST_CHECK_THROW(draw_png(dir.path / "tiny.png", {{"t", "x", "y", {}}}, 0, 100), Error);
    BOOST_TEST(dir.files().empty(), "nothing is left behind after errors");
}

BOOST_AUTO_TEST_CASE(gnuplot_errors_are_reported) {
    const TempDir dir("gnuplot_errors");
    const std::vector<Chart> charts = {{"c", "x", "y", {{"s", {1, 2, 3}, {3, 1, 2}}}}};

    // gnuplot cannot open its output (the temporary name is taken by a directory): its message is
    // in the error, and the directory is left alone.
    fs::create_directory(dir.path / "blocked.png.tmp.png");
    try {
        draw_png(dir.path / "blocked.png", charts, 400, 300);
        BOOST_FAIL("drawing must fail when gnuplot cannot open its output");
    } catch (const Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        const std::string what = e.what();
        BOOST_TEST(what.find("blocked.png") != std::string::npos);
        BOOST_TEST(what.find("cannot open file") != std::string::npos, what);
    }
    BOOST_TEST(fs::is_directory(dir.path / "blocked.png.tmp.png"));
    BOOST_TEST(!fs::exists(dir.path / "blocked.png"));

    // The picture cannot be renamed onto a directory.
    fs::create_directory(dir.path / "adir.png");
    BOOST_CHECK_THROW(draw_png(dir.path / "adir.png", charts, 400, 300), Error);
    BOOST_TEST(!fs::exists(dir.path / "adir.png.tmp.png"));
}

BOOST_AUTO_TEST_CASE(missing_or_dying_gnuplot_is_an_error) {
    const TempDir dir("fake_gnuplot");
    (void)png_terminal();  // asked once, before PATH changes
    const char* old_path = std::getenv("PATH");
    const std::string saved = old_path ? old_path : "";
    struct RestorePath {
        std::string path;
        ~RestorePath() { ::setenv("PATH", path.c_str(), 1); }
    } restore{saved};

    // A gnuplot that complains and exits at once, before reading the (large) data: no SIGPIPE kills
    // us, and its message is in the error.
    const fs::path fake = dir.path / "bin" / "gnuplot";
    fs::create_directories(fake.parent_path());
    std::ofstream(fake) << "#!/bin/sh\necho 'fake gnuplot: out of ink' >&2\nexit 3\n";
    fs::permissions(fake, fs::perms::owner_all);
    Series big{"big", {}, {}};
    for (int i = 0; i < 200000; ++i) big.x.push_back(i), big.y.push_back(i % 17);
    const std::vector<Chart> charts = {{"c", "x", "y", {big}}};
    ::setenv("PATH", fake.parent_path().c_str(), 1);
    try {
        draw_png(dir.path / "dying.png", charts, 400, 300);
        BOOST_FAIL("a dying gnuplot must be an error");
    } catch (const Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(std::string(e.what()).find("out of ink") != std::string::npos, e.what());
    }

    // No gnuplot on the PATH at all.
    ::setenv("PATH", (dir.path / "empty").c_str(), 1);
    try {
        draw_png(dir.path / "missing.png", charts, 400, 300);
        BOOST_FAIL("a missing gnuplot must be an error");
    } catch (const Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(std::string(e.what()).find("gnuplot") != std::string::npos);
    }
    BOOST_TEST(!fs::exists(dir.path / "dying.png"));
    BOOST_TEST(!fs::exists(dir.path / "missing.png"));
}

BOOST_AUTO_TEST_SUITE_END()
