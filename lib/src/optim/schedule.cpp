#include "mcnn/optim/schedule.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "mcnn/error.hpp"

namespace mcnn {
namespace {

bool finite_at_least(double v, double lo) { return std::isfinite(v) && v >= lo; }

/// Linear warm-up 0 -> 1 over `warmup` epochs (1 when there is none or it is over).
double warmup_factor(double epoch, double warmup) { return warmup > 0 && epoch < warmup ? epoch / warmup : 1.0; }

std::string epochs_str(double e) { return fmt::format("{} epoch{}", e, e == 1 ? "" : "s"); }

}  // namespace

Schedule Schedule::piecewise_linear(std::vector<std::pair<double, double>> points) {
    if (points.empty()) fail("Schedule::piecewise_linear: no points");
    for (std::size_t i = 0; i < points.size(); ++i) {
        const auto [e, f] = points[i];
        if (!finite_at_least(e, 0) || !finite_at_least(f, 0))
            fail("Schedule::piecewise_linear: point {} is ({}, {}); epochs and factors must be finite and >= 0", i + 1, e, f);
        if (i > 0 && !(e > points[i - 1].first))
            fail("Schedule::piecewise_linear: epochs must increase, point {} ({}) follows {}", i + 1, e, points[i - 1].first);
    }
    Schedule s;
    s.kind_ = Kind::piecewise_linear;
    s.points_ = std::move(points);
    return s;
}

Schedule Schedule::warmup(double warmup_epochs) {
    if (!(warmup_epochs > 0) || !std::isfinite(warmup_epochs)) fail("Schedule::warmup: warm-up must be > 0 epochs, got {}", warmup_epochs);
    return piecewise_linear({{0.0, 0.0}, {warmup_epochs, 1.0}});
}

Schedule Schedule::one_cycle(double peak_epoch, double total_epochs, double start, double end) {
    if (!finite_at_least(peak_epoch, 0) || !std::isfinite(total_epochs) || !(total_epochs > peak_epoch))
        fail("Schedule::one_cycle: needs 0 <= peak ({}) < total ({}) epochs", peak_epoch, total_epochs);
    if (!finite_at_least(start, 0) || !finite_at_least(end, 0))
        fail("Schedule::one_cycle: start ({}) and end ({}) factors must be finite and >= 0", start, end);
    if (peak_epoch == 0) return piecewise_linear({{0.0, 1.0}, {total_epochs, end}});
    return piecewise_linear({{0.0, start}, {peak_epoch, 1.0}, {total_epochs, end}});
}

Schedule Schedule::warmup_cosine(double warmup_epochs, double total_epochs, double final_factor) {
    if (!finite_at_least(warmup_epochs, 0) || !std::isfinite(total_epochs) || !(total_epochs > warmup_epochs))
        fail("Schedule::warmup_cosine: needs 0 <= warm-up ({}) < total ({}) epochs", warmup_epochs, total_epochs);
    if (!finite_at_least(final_factor, 0)) fail("Schedule::warmup_cosine: final factor must be finite and >= 0, got {}", final_factor);
    Schedule s;
    s.kind_ = Kind::warmup_cosine;
    s.warmup_ = warmup_epochs;
    s.total_ = total_epochs;
    s.final_ = final_factor;
    return s;
}

Schedule Schedule::step(double every_epochs, double gamma, double warmup_epochs) {
    if (!(every_epochs > 0) || !std::isfinite(every_epochs)) fail("Schedule::step: the interval must be > 0 epochs, got {}", every_epochs);
    if (!(gamma > 0) || !std::isfinite(gamma)) fail("Schedule::step: gamma must be > 0 and finite, got {}", gamma);
    if (!finite_at_least(warmup_epochs, 0)) fail("Schedule::step: warm-up must be >= 0 epochs, got {}", warmup_epochs);
    Schedule s;
    s.kind_ = Kind::step;
    s.every_ = every_epochs;
    s.gamma_ = gamma;
    s.warmup_ = warmup_epochs;
    return s;
}

double Schedule::at(double epoch) const {
    if (!(epoch >= 0)) fail("Schedule: epoch must be >= 0, got {}", epoch);
    switch (kind_) {
    case Kind::constant: return 1.0;
    case Kind::piecewise_linear: {
        if (epoch <= points_.front().first) return points_.front().second;
        for (std::size_t i = 1; i < points_.size(); ++i)
            if (epoch <= points_[i].first) {
                const auto [e0, f0] = points_[i - 1];
                const auto [e1, f1] = points_[i];
                return f0 + (f1 - f0) * (epoch - e0) / (e1 - e0);
            }
        return points_.back().second;
    }
    case Kind::warmup_cosine: {
        if (epoch < warmup_) return warmup_factor(epoch, warmup_);
        if (epoch >= total_) return final_;
        const double progress = (epoch - warmup_) / (total_ - warmup_);
        return final_ + (1 - final_) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    }
    case Kind::step:
        if (epoch < warmup_) return warmup_factor(epoch, warmup_);
        return std::pow(gamma_, std::floor((epoch - warmup_) / every_));
    }
    return 1.0;
}

double Schedule::at_step(long step, long steps_per_epoch) const {
    if (step < 0 || steps_per_epoch < 1) fail("Schedule: step ({}) must be >= 0 and steps per epoch ({}) >= 1", step, steps_per_epoch);
    return at(static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch));
}

std::string Schedule::describe() const {
    switch (kind_) {
    case Kind::constant: return "constant";
    case Kind::piecewise_linear: {
        std::string s = "piecewise linear";
        for (const auto& [e, f] : points_) s += fmt::format(" ({}, {})", e, f);
        return s;
    }
    case Kind::warmup_cosine:
        return fmt::format("{}cosine to {} at epoch {}", warmup_ > 0 ? "warm-up " + epochs_str(warmup_) + ", " : "", final_, total_);
    case Kind::step:
        return fmt::format("{}x{} every {}", warmup_ > 0 ? "warm-up " + epochs_str(warmup_) + ", " : "", gamma_, epochs_str(every_));
    }
    return "";
}

}  // namespace mcnn
