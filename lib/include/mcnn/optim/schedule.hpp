#pragma once
// Learning-rate schedules: a multiplier of the optimiser's base learning rate, a pure function of
// the optimiser step, so a resumed run (the checkpoint holds the step) continues bit-exactly.
// Lengths are in epochs (fractions allowed). The step s (0-based) of an epoch of B steps is placed at
//   e = (s + 1) / B     the epochs trained once that step is done,
// so a warm-up's first step already has a learning rate > 0, and a decay reaches its final factor
// at the run's last step. fit() sets optimizer.set_lr_factor(schedule.at_step(s, B)) before step s.
//
//   Schedule::warmup_cosine(1, 20)        linear 0 -> 1 over epoch 1, cosine 1 -> 0 by epoch 20
//   Schedule::one_cycle(2, 10, 0.2)       0.2 -> 1 linearly by epoch 2, then 1 -> 0 by epoch 10
//   Schedule::step(10, 0.1)               1, then 0.1 from epoch 10, 0.01 from epoch 20, ...
#include <string>
#include <utility>
#include <vector>

namespace mcnn {

class Schedule {
public:
    enum class Kind { constant, piecewise_linear, warmup_cosine, step };

    /// 1 throughout (the default).
    Schedule() = default;
    static Schedule constant() { return {}; }
    /// Linear between (epoch, factor) points, epochs strictly increasing, factors >= 0; before the
    /// first point its factor, after the last point its factor.
    static Schedule piecewise_linear(std::vector<std::pair<double, double>> points);
    /// Linear warm-up from 0 to 1 over `warmup_epochs` (> 0), then 1.
    static Schedule warmup(double warmup_epochs);
    /// One-cycle / triangular: `start` at epoch 0, linearly to 1 at `peak_epoch`, linearly to `end`
    /// at `total_epochs` (0 <= peak_epoch < total_epochs; with peak 0 it starts at 1).
    static Schedule one_cycle(double peak_epoch, double total_epochs, double start = 0, double end = 0);
    /// Linear warm-up over `warmup_epochs` (>= 0; 0: none), then a half cosine from 1 down to
    /// `final_factor` at `total_epochs` (> warmup_epochs), then `final_factor`.
    static Schedule warmup_cosine(double warmup_epochs, double total_epochs, double final_factor = 0);
    /// Linear warm-up over `warmup_epochs` (>= 0), then gamma^k from epoch warmup + k * every
    /// (every > 0, gamma > 0).
    static Schedule step(double every_epochs, double gamma, double warmup_epochs = 0);

    /// The factor at `epoch` (epochs trained; >= 0).
    double at(double epoch) const;
    /// The factor for optimiser step `step` (0-based, counted over the whole run) with
    /// `steps_per_epoch` (>= 1) steps per epoch: at((step + 1) / steps_per_epoch).
    double at_step(long step, long steps_per_epoch) const;
    /// "warm-up 1 epoch, cosine to 0 at epoch 20": for titles and logs.
    std::string describe() const;

    Kind kind() const { return kind_; }

private:
    Kind kind_ = Kind::constant;
    std::vector<std::pair<double, double>> points_;  // piecewise_linear
    double warmup_ = 0, total_ = 0, final_ = 0;        // warmup_cosine (and warm-up of step)
    double every_ = 0, gamma_ = 1;                     // step
};

}  // namespace mcnn
