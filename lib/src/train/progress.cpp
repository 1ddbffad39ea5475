#include "mcnn/train/progress.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace mcnn {

std::string format_duration(double seconds) {
    const long s = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
    return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::FILE* out) : Progress(out, out && isatty(fileno(out)) != 0) {}
Progress::Progress(std::FILE* out, bool interactive) : out_(out), interactive_(interactive) {}

void Progress::start(const std::string& label, std::size_t total, int batch) {
    label_ = label;
    total_ = total;
    batch_ = batch;
    start_ = last_draw_ = std::chrono::steady_clock::now();
    drawn_ = false;
}

void Progress::update(std::size_t done, double running_loss) {
    if (!interactive_ || !out_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(done, running_loss);
}

void Progress::draw(std::size_t done, double running_loss) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done * static_cast<std::size_t>(batch_)) / elapsed : 0;
    const double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / static_cast<double>(done) : 0;
    constexpr int width = 28;
    const int filled = total_ ? static_cast<int>(width * done / total_) : width;
    const std::string bar = std::string(static_cast<std::size_t>(filled), '=') + (filled < width ? ">" : "") +
                            std::string(static_cast<std::size_t>(std::max(0, width - filled - 1)), ' ');
    fmt::print(out_, "\r{} [{}] {}/{} {:.0f} img/s ETA {} loss {:.3f}\x1b[K", label_, bar, done, total_, rate,
               format_duration(eta), running_loss);
    std::fflush(out_);
    drawn_ = true;
}

void Progress::line(const std::string& text) {
    if (!out_) return;
    if (interactive_ && drawn_) fmt::print(out_, "\r\x1b[K");
    fmt::print(out_, "{}\n", text);
    std::fflush(out_);
    drawn_ = false;
}

void Progress::finish() {
    if (!out_) return;
    if (interactive_ && drawn_) fmt::print(out_, "\n");
    std::fflush(out_);
    drawn_ = false;
}

}  // namespace mcnn
