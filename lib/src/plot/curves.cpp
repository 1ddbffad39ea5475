// PNG charts drawn by gnuplot, driven through gnuplot-iostream.
//
// gnuplot runs as a child process (posix_spawnp, no shell): its stdin is a pipe that a
// gnuplot-iostream `Gnuplot` object writes the script and the data to (send1d), its stdout goes to
// /dev/null and its stderr to an anonymous temporary file, read back after it has exited. That way
// we know its exit status (gnuplot reading a script from a pipe carries on after an error but exits
// with status 1), we get its messages for the error, and no temporary file is left behind.
// The picture is drawn into "<png>.tmp.png" and renamed onto <png> once gnuplot has exited.
// That machinery (render_png and its helpers, declared in gnuplot.hpp) is shared with images.cpp.
#include "mcnn/plot/curves.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/core.h>

#include <gnuplot-iostream.h>

#include "mcnn/error.hpp"
#include "gnuplot.hpp"

extern char** environ;

namespace mcnn::plot {
namespace {

// ---------------------------------------------------------------------------------------------
// Running gnuplot

struct GnuplotResult {
    int status = 0;        // exit status; -1 when it ended by a signal
    std::string messages;  // what it wrote to stderr (and stdout when no script is sent)
};

/// Blocks SIGPIPE in this thread while alive, so that writing to a gnuplot that has died makes the
/// write fail (EPIPE) instead of killing the whole program; a SIGPIPE raised meanwhile is consumed.
class SigpipeBlock {
public:
    SigpipeBlock() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    ~SigpipeBlock() {
        if (!was_pending_) {
            sigset_t pending;
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec zero{0, 0};
                while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
                }
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

private:
    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
};

/// A file descriptor closed on destruction.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

/// The child process; waited for on destruction if nobody did before (e.g. after an exception).
class Child {
public:
    explicit Child(pid_t pid) : pid_(pid) {}
    ~Child() {
        if (pid_ > 0) wait();
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    /// Waits for the child to exit; its exit status, or -1 when a signal ended it.
    int wait() {
        int st = 0;
        pid_t r;
        do r = ::waitpid(pid_, &st, 0);
        while (r == -1 && errno == EINTR);
        pid_ = -1;
        if (r == -1) return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }

private:
    pid_t pid_;
};

/// The environment without the display variables, so gnuplot can never open a window.
std::vector<char*> child_environment() {
    std::vector<char*> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view v(*e);
        if (v.starts_with("DISPLAY=") || v.starts_with("WAYLAND_DISPLAY=")) continue;
        env.push_back(*e);
    }
    env.push_back(nullptr);
    return env;
}

std::string read_all(int fd) {
    std::string text;
    if (::lseek(fd, 0, SEEK_SET) == -1) return text;
    std::array<char, 4096> buffer{};
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n > 0) text.append(buffer.data(), static_cast<std::size_t>(n));
        else if (n == -1 && errno == EINTR) continue;
        else break;
    }
    return text;
}

/// Runs gnuplot with `args` (args[0] is looked up on PATH). With a `script`, it is called with a
/// Gnuplot stream connected to gnuplot's stdin and gnuplot's stdout is discarded; without one,
/// stdin is /dev/null and stdout is captured with stderr.
GnuplotResult run_gnuplot(const std::vector<std::string>& args, const std::function<void(Gnuplot&)>& script) {
    // Anonymous file for gnuplot's messages: gone as soon as it is closed.
    std::FILE* capture_file = std::tmpfile();
    if (!capture_file) fail("gnuplot: cannot create a temporary file for its messages: {}", std::strerror(errno));
    Fd capture(::dup(::fileno(capture_file)));
    std::fclose(capture_file);
    if (capture.get() < 0) fail("gnuplot: cannot create a temporary file for its messages: {}", std::strerror(errno));
    ::fcntl(capture.get(), F_SETFD, FD_CLOEXEC);

    int pipe_fds[2] = {-1, -1};
    if (script && ::pipe2(pipe_fds, O_CLOEXEC) != 0) fail("gnuplot: cannot create a pipe: {}", std::strerror(errno));
    Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (script) {
        posix_spawn_file_actions_adddup2(&actions, read_end.get(), 0);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, capture.get(), 1);
    }
    posix_spawn_file_actions_adddup2(&actions, capture.get(), 2);

    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> env = child_environment();

    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        fail("cannot run gnuplot ('{}'): {}; is gnuplot installed and on the PATH?", args[0], std::strerror(rc));

    GnuplotResult result;
    {
        Child child(pid);
        read_end.reset();
        if (script) {
            SigpipeBlock block;
            std::FILE* fh = ::fdopen(write_end.get(), "w");
            if (!fh) fail("gnuplot: cannot open its input pipe: {}", std::strerror(errno));
            write_end.release();  // now owned by fh, which the Gnuplot object fcloses
            Gnuplot gp(fh);       // its destructor flushes and closes the pipe: gnuplot sees EOF
            script(gp);
        }
        result.status = child.wait();
    }
    result.messages = read_all(capture.get());
    return result;
}

// ---------------------------------------------------------------------------------------------
// Script pieces

using detail::quote;
using detail::trimmed;

constexpr std::array<const char*, 10> kColours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

using Points = std::vector<std::pair<double, double>>;

/// The finite points of `s`.
Points finite_points(const Series& s, const Chart& chart) {
    if (s.x.size() != s.y.size())
        fail("draw_png: series '{}' of chart '{}' has {} x values but {} y values", s.title, chart.title, s.x.size(),
             s.y.size());
    Points p;
    p.reserve(s.x.size());
    for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) p.emplace_back(s.x[i], s.y[i]);
    return p;
}

using Drawn = std::vector<std::pair<const Series*, Points>>;

/// The data's bounding box; a range of zero width (one x value, or one y value) is widened around
/// it, since gnuplot would otherwise pick a tiny range with crowded tic labels.
struct Bounds {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool x_widened = false, y_widened = false;
};

Bounds bounds_of(const Drawn& drawn) {
    Bounds b;
    for (const auto& [s, pts] : drawn)
        for (const auto& [x, y] : pts) {
            b.x0 = std::min(b.x0, x), b.x1 = std::max(b.x1, x), b.y0 = std::min(b.y0, y), b.y1 = std::max(b.y1, y);
        }
    auto widen = [](double& lo, double& hi, double fraction) {
        const double d = lo == 0 ? 1.0 : std::abs(lo) * fraction;
        lo -= d, hi += d;
    };
    if (b.x1 - b.x0 <= 0) widen(b.x0, b.x1, 0.5), b.x_widened = true;
    if (b.y1 - b.y0 <= 0) widen(b.y0, b.y1, 0.1), b.y_widened = true;
    return b;
}

/// A step between x tics, 1, 2 or 5 times a power of ten, such that the tic labels fit side by
/// side into `plot_w_px` (gnuplot picks its step from the range alone, and its labels overlap in
/// narrow charts with large numbers such as step counts).
/// 0 when no such step is found (gnuplot then chooses).
double x_tic_step(double x0, double x1, double plot_w_px, int font) {
    const double range = x1 - x0, char_px = 0.62 * font;
    if (!std::isfinite(range) || range <= 0) return 0;
    double mag = std::pow(10.0, std::floor(std::log10(range / 40)));
    for (int tries = 0; tries < 40; ++tries, mag *= 10)
        for (const double m : {1.0, 2.0, 5.0}) {
            const double step = m * mag;
            const double first = std::floor(x0 / step), last = std::ceil(x1 / step);
            std::size_t chars = 0;
            for (double k = first; k <= last; ++k) chars = std::max(chars, fmt::format("{:g}", k * step).size());
            if ((last - first + 1) * (static_cast<double>(chars) + 2.5) * char_px <= plot_w_px) return step;
        }
    return 0;
}

struct KeyPlace {
    std::string corner;  // "top right", ...
    double headroom;     // fraction of the y range to add on top so that the key covers no data
};

/// Where the legend goes: the corner whose box (sized from the legend's text and the plot's size in
/// pixels) holds the fewest samples of the lines, in coordinates normalised to `b`; ties go to the
/// first of top right, top left, bottom right, bottom left. When every corner would cover some
/// data, the key goes top right and the y range grows on top to make room for it.
KeyPlace key_place(const Drawn& drawn, const Bounds& b, double plot_w_px, double plot_h_px, int font) {
    std::size_t chars = 0, keyed = 0;  // the key lists the series with a title only
    for (const auto& [s, pts] : drawn) {
        chars = std::max(chars, s->title.size());
        if (!s->title.empty()) ++keyed;
    }
    if (keyed == 0) return {"top right", 0.0};
    const double box_w = std::clamp((0.65 * static_cast<double>(chars) + 7.0) * font / plot_w_px, 0.1, 0.9);
    const double box_h = std::clamp((1.6 * static_cast<double>(keyed) + 1.2) * font / plot_h_px, 0.1, 0.9);
    const double dx = b.x1 - b.x0, dy = b.y1 - b.y0;
    struct Corner {
        const char* name;
        double left, bottom;
    };
    const std::array<Corner, 4> corners = {Corner{"top right", 1 - box_w, 1 - box_h}, Corner{"top left", 0, 1 - box_h},
                                           Corner{"bottom right", 1 - box_w, 0}, Corner{"bottom left", 0, 0}};
    std::array<std::size_t, 4> hits{};
    auto count = [&](double u, double v) {
        for (std::size_t c = 0; c < corners.size(); ++c)
            if (u >= corners[c].left && u <= corners[c].left + box_w && v >= corners[c].bottom &&
                v <= corners[c].bottom + box_h)
                ++hits[c];
    };
    for (const auto& [s, pts] : drawn) {
        for (std::size_t i = 0; i < pts.size(); ++i) {
            const double u = (pts[i].first - b.x0) / dx, v = (pts[i].second - b.y0) / dy;
            count(u, v);
            if (i + 1 < pts.size() && s->style != Style::points) {  // sample the segment to the next point
                const double u2 = (pts[i + 1].first - b.x0) / dx, v2 = (pts[i + 1].second - b.y0) / dy;
                const int steps = std::min(50, static_cast<int>(std::hypot(u2 - u, v2 - v) / 0.02));
                for (int k = 1; k < steps; ++k) {
                    const double t = static_cast<double>(k) / steps;
                    count(u + t * (u2 - u), v + t * (v2 - v));
                }
            }
        }
    }
    const auto best = static_cast<std::size_t>(std::min_element(hits.begin(), hits.end()) - hits.begin());
    if (hits[best] == 0) return {corners[best].name, 0.0};
    return {"top right", std::min(box_h, 0.6) / (1 - std::min(box_h, 0.6))};
}

std::string temp_png_path(const std::filesystem::path& png) { return png.string() + ".tmp.png"; }

/// Removes the temporary picture, if it is one (never a directory that happens to have its name).
void remove_temp(const std::string& tmp) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(tmp, ec)) std::filesystem::remove(tmp, ec);
}

void write_script(Gnuplot& gp, const std::string& terminal, const std::string& output, const std::string& title,
                  const std::vector<Chart>& charts, int width, int height, int columns) {
    const int n = columns, rows = (static_cast<int>(charts.size()) + columns - 1) / columns;
    // Font size from the space each chart gets: 10 points for 600 x 500 pixels.
    const int font = std::clamp(static_cast<int>(std::lround(std::min(height / (50.0 * rows), width / (60.0 * n)))), 8, 16);

    gp << "set encoding utf8\n";
    gp << fmt::format("set terminal {} size {},{} noenhanced font 'Sans,{}'{}\n", terminal, width, height, font,
                      terminal == "pngcairo" ? " linewidth 1 rounded" : "");
    gp << detail::set_output(output);
    gp << fmt::format("set multiplot layout {},{}", rows, n);
    if (!title.empty()) gp << " title " << quote(title) << fmt::format(" font ',{}'", font + 3);
    gp << "\n";
    gp << "set border lw 1 lc rgb '#404040'\n"
          "set tics nomirror out scale 0.6\n"
          "set grid xtics ytics lt 1 lw 1 lc rgb '#e0e0e0'\n"
          "set style data lines\n"
          "set rmargin 4\n";

    for (const Chart& chart : charts) {
        Drawn drawn;
        for (const Series& s : chart.series) {
            Points pts = finite_points(s, chart);
            if (!pts.empty()) drawn.emplace_back(&s, std::move(pts));
        }
        gp << "set title " << quote(chart.title) << fmt::format(" font ',{}'\n", font + 1);
        gp << "set xlabel " << quote(chart.xlabel) << "\n";
        gp << "set ylabel " << quote(chart.ylabel) << "\n";
        gp << "unset label\nset autoscale xy\nset xtics autofreq\n";
        if (drawn.empty()) {
            gp << fmt::format(
                "set label 1 'no data yet' at graph 0.5, graph 0.5 center font ',{}' textcolor rgb '#808080'\n",
                font + 4);
            gp << "unset key\nplot [0:1][0:1] NaN notitle\n";
            continue;
        }
        const Bounds b = bounds_of(drawn);
        const double plot_w = width / static_cast<double>(n) - 9.0 * font, plot_h = height / static_cast<double>(rows) - 10.0 * font;
        const KeyPlace key = key_place(drawn, b, std::max(plot_w, 50.0), std::max(plot_h, 50.0), font);
        if (b.x_widened) gp << fmt::format("set xrange [{}:{}]\n", b.x0, b.x1);
        if (const double step = x_tic_step(b.x0, b.x1, std::max(plot_w, 50.0), font); step > 0)
            gp << fmt::format("set xtics {}\n", step);
        // A little room above and below the data (offsets apply to autoscaled ranges only).
        const double margin = 0.04;
        if (b.y_widened) gp << fmt::format("set yrange [{}:{}]\n", b.y0, b.y1 + (b.y1 - b.y0) * key.headroom);
        gp << fmt::format("set offsets 0, 0, graph {}, graph {}\n", margin + key.headroom, margin);
        gp << "set key " << key.corner
           << " Left reverse opaque box lc rgb '#c0c0c0' samplen 3 spacing 1.2 width 1\n";
        gp << "plot ";
        for (std::size_t i = 0; i < drawn.size(); ++i) {
            const Series& s = *drawn[i].first;
            const char* colour = kColours[static_cast<std::size_t>(&s - chart.series.data()) % kColours.size()];
            const Style style = drawn[i].second.size() == 1 ? Style::points : s.style;
            if (i > 0) gp << ", ";
            gp << "'-' using 1:2";
            switch (style) {
                case Style::lines: gp << fmt::format(" with lines lw 2 lc rgb '{}'", colour); break;
                case Style::linespoints:
                    gp << fmt::format(" with linespoints lw 2 pt 7 ps 0.9 lc rgb '{}'", colour);
                    break;
                case Style::points: gp << fmt::format(" with points pt 7 ps 1.1 lc rgb '{}'", colour); break;
            }
            gp << (s.title.empty() ? std::string(" notitle") : " title " + quote(s.title));
        }
        gp << "\n";
        for (const auto& [s, pts] : drawn) gp.send1d(pts);
    }
    gp << "unset multiplot\nunset output\nexit\n";
}

}  // namespace

const std::string& png_terminal() {
    static std::mutex mutex;
    static std::optional<std::string> terminal;
    const std::lock_guard lock(mutex);
    if (!terminal) {
        const GnuplotResult r = run_gnuplot({"gnuplot", "-d", "-e", "set terminal"}, nullptr);
        if (r.status != 0)
            fail("gnuplot -e \"set terminal\" failed (exit status {}): {}", r.status, trimmed(r.messages));
        // The listing has one terminal per line: "      pngcairo  png terminal based on cairo".
        bool cairo = false;
        std::size_t pos = 0;
        while (!cairo && (pos = r.messages.find("pngcairo", pos)) != std::string::npos) {
            const bool start = pos == 0 || r.messages[pos - 1] == ' ' || r.messages[pos - 1] == '\n';
            const std::size_t end = pos + 8;
            cairo = start && (end == r.messages.size() || r.messages[end] == ' ' || r.messages[end] == '\n');
            pos = end;
        }
        terminal = cairo ? "pngcairo" : "png";
    }
    return *terminal;
}

namespace detail {

std::string quote(std::string_view text) {
    std::string q = "'";
    for (const char c : text) {
        if (c == '\'') q += "''";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) q += ' ';
        else q += c;
    }
    q += '\'';
    return q;
}

std::string trimmed(std::string text, std::size_t max_chars) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    text = text.substr(first, last - first + 1);
    if (text.size() > max_chars) text = text.substr(0, max_chars) + " [...]";
    return text;
}

std::string set_output(const std::string& file) {
    // A leading '|' would make gnuplot write into a shell command.
    return "set output " + quote(file.starts_with('|') ? "./" + file : file) + "\n";
}

void check_png_path(const std::filesystem::path& png, const char* caller) {
    namespace fs = std::filesystem;
    if (png.empty() || !png.has_filename()) fail("{}: '{}' is not a file name", caller, png.string());
    const fs::path dir = png.parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec))
        fail("{} {}: directory {} does not exist", caller, png.string(), dir.string());
}

void render_png(const std::filesystem::path& png, const char* caller, const PngScript& script) {
    namespace fs = std::filesystem;
    const std::string tmp = temp_png_path(png);
    GnuplotResult r;
    try {
        const std::string& terminal = png_terminal();
        r = run_gnuplot({"gnuplot", "-d"}, [&](Gnuplot& gp) { script(gp, terminal, tmp); });
    } catch (const Error& e) {
        remove_temp(tmp);
        fail("{} {}: {}", caller, png.string(), e.what());
    } catch (...) {
        remove_temp(tmp);
        throw;
    }
    std::error_code ec;
    const auto size = fs::file_size(tmp, ec);
    if (r.status != 0 || ec || size == 0) {
        remove_temp(tmp);
        const std::string messages = trimmed(r.messages);
        fail("{} {}: gnuplot failed (exit status {}{}): {}", caller, png.string(), r.status,
             r.status == 0 ? ", no picture written" : "", messages.empty() ? "no message from gnuplot" : messages);
    }
    fs::rename(tmp, png, ec);
    if (ec) {
        remove_temp(tmp);
        fail("{} {}: cannot move {} into place: {}", caller, png.string(), tmp, ec.message());
    }
}

}  // namespace detail

void draw_png(const std::filesystem::path& png, const std::string& title, const std::vector<Chart>& charts, int width,
              int height, int columns) {
    if (charts.empty()) fail("draw_png {}: no charts to draw", png.string());
    if (columns < 0) fail("draw_png {}: {} columns", png.string(), columns);
    if (columns == 0 || columns > static_cast<int>(charts.size())) columns = static_cast<int>(charts.size());
    if (width < 16 || height < 16 || width > 20000 || height > 20000)
        fail("draw_png {}: size {}x{} out of range (16 to 20000 pixels)", png.string(), width, height);
    detail::check_png_path(png, "draw_png");
    for (const Chart& chart : charts)
        for (const Series& s : chart.series) (void)finite_points(s, chart);  // size mismatches, before starting
    detail::render_png(png, "draw_png", [&](Gnuplot& gp, const std::string& terminal, const std::string& output) {
        write_script(gp, terminal, output, title, charts, width, height, columns);
    });
}

void draw_png(const std::filesystem::path& png, const std::vector<Chart>& charts, int width, int height) {
    draw_png(png, std::string(), charts, width, height);
}

void draw_training_curves(const std::filesystem::path& png, const TrainingCurves& curves, int width, int height) {
    const std::string train_name = "train (running average)";
    Chart loss{"Loss", "step", "loss", {}};
    loss.series.push_back(Series{train_name, curves.train_step, curves.train_loss, Style::lines});
    loss.series.push_back(Series{curves.eval_name, curves.eval_step, curves.eval_loss, Style::linespoints});
    Chart accuracy{"Accuracy (%)", "step", "accuracy (%)", {}};
    accuracy.series.push_back(Series{train_name, curves.train_step, curves.train_accuracy, Style::lines});
    accuracy.series.push_back(Series{curves.eval_name, curves.eval_step, curves.eval_accuracy, Style::linespoints});
    // Running averages may be recorded without accuracy (or the other way round): an empty column
    // means "not recorded", not a size mismatch.
    for (Chart* chart : {&loss, &accuracy})
        for (Series& s : chart->series)
            if (s.y.empty()) s.x.clear();
    std::vector<Chart> charts{loss, accuracy};
    if (std::any_of(curves.lr.begin(), curves.lr.end(), [](double v) { return v > 0; }))
        charts.push_back(Chart{"Learning rate", "step", "learning rate", {Series{"lr", curves.lr_step, curves.lr, Style::lines}}});
    draw_png(png, curves.title, charts, width, height);
}

}  // namespace mcnn::plot
