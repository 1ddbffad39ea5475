#pragma once
// Progress output for long loops. On a terminal: one line redrawn in place (done/total, images/s,
// ETA, running loss). Elsewhere (a log file, CI): no redrawing, only the lines given to line().
#include <chrono>
#include <cstdio>
#include <string>

namespace mcnn {

class Progress {
public:
    /// `interactive` defaults to whether `out` is a terminal; a null `out` prints nothing.
    explicit Progress(std::FILE* out = stdout);
    Progress(std::FILE* out, bool interactive);

    /// Begins a loop of `total` steps of `batch` images each.
    void start(const std::string& label, std::size_t total, int batch);
    /// Steps done so far and the running loss; redraws at most 10 times a second.
    void update(std::size_t done, double running_loss);
    /// Prints a full line (clearing the bar first on a terminal).
    void line(const std::string& text);
    /// Ends the bar's line.
    void finish();
    bool interactive() const { return interactive_; }

private:
    void draw(std::size_t done, double running_loss);

    std::FILE* out_;
    bool interactive_;
    std::string label_;
    std::size_t total_ = 0;
    int batch_ = 1;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

/// "1:02:03" or "02:03".
std::string format_duration(double seconds);

}  // namespace mcnn
