#pragma once
// Pictures drawn with gnuplot (through gnuplot-iostream) to PNG files.
#include <filesystem>
#include <string>
#include <vector>

namespace mcnn::plot {

/// How a series is drawn: `lines` suits dense running values (e.g. a running training loss),
/// `linespoints` sparse measurements (e.g. one evaluation per epoch). A series with a single
/// point is always drawn as a point, since a line through one point is invisible.
enum class Style { lines, linespoints, points };

/// One line on a chart: points (x[i], y[i]). x and y must have the same length; points with a
/// NaN or infinite coordinate are left out, and a series with no points left is not drawn.
struct Series {
    std::string title;
    std::vector<double> x, y;
    Style style = Style::lines;
};

/// A chart: title, axis labels, lines.
struct Chart {
    std::string title, xlabel, ylabel;
    std::vector<Series> series;
};

/// Draws `charts` side by side (one row) into a PNG of width x height pixels. The PNG is written
/// to a temporary file and renamed into place, so a reader never sees half a picture. Throws
/// mcnn::Error when gnuplot cannot be run or fails (with gnuplot's message).
/// A chart without any drawable point shows "no data yet" instead of failing.
void draw_png(const std::filesystem::path& png, const std::vector<Chart>& charts, int width = 1200, int height = 500);

/// Like draw_png above, with an overall `title` above the charts (none when empty), in rows of
/// `columns` charts (0: all in one row).
void draw_png(const std::filesystem::path& png, const std::string& title, const std::vector<Chart>& charts,
              int width = 1200, int height = 500, int columns = 0);

/// The gnuplot terminal the PNGs are drawn with: "pngcairo" when this gnuplot has it, else "png".
/// Asks gnuplot once (`gnuplot -e "set terminal"`) and remembers the answer; throws mcnn::Error
/// when gnuplot cannot be run.
const std::string& png_terminal();

/// The learning curves of a training run.
struct TrainingCurves {
    std::string title;                          // e.g. "SimpleCNN, SGD lr 0.001 m 0.9, batch 4"
    std::string eval_name = "test";             // "test" or "validation"
    std::vector<double> train_step, train_loss, train_accuracy;  // running averages, accuracy in %
    std::vector<double> eval_step, eval_loss, eval_accuracy;     // per epoch
    std::vector<double> lr_step, lr;                             // the learning rate at each report
};

/// Two panels: loss against step (train and eval) and accuracy (%) against step (train and eval);
/// a third, the learning rate against step, when `lr` holds a value > 0 (logs before the lr column: none).
void draw_training_curves(const std::filesystem::path& png, const TrainingCurves& curves, int width = 1200,
                          int height = 500);

}  // namespace mcnn::plot
