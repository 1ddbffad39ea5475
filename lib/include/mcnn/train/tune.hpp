#pragma once
// Hyper-parameter search (issue 14, in progress): the search space and its samples.
//
// A dimension is written NAME=KIND:ARGS on tune's command line (--space):
//   lr=log:1e-4:1e-1          log-uniform in [lo, hi] (lo > 0)
//   momentum=linear:0.5:0.99  uniform in [lo, hi]
//   batch=int:4:128           an integer, uniform in [lo, hi]
//   batch=choice:4,16,64      one of the values (numbers or names: optimizer=choice:sgd,adam)
// Trial k's value of dimension d is a function of (seed, k, d) alone, the same with every standard
// library, so a search that is stopped and started again draws the same trials.
#include <cstdint>
#include <string>
#include <vector>

#include "mcnn/train/config.hpp"

namespace mcnn::tune {

enum class Kind { log, linear, integer, choice };

struct Dimension {
    std::string name;
    Kind kind = Kind::linear;
    double lo = 0, hi = 0;             // log, linear, integer
    std::vector<std::string> choices;  // choice
    /// "lr=log:0.0001:0.1" (what parse_dimension reads back).
    std::string str() const;
};

/// One value of a trial: a number, or a name for a choice of names.
struct Value {
    std::string name;  // the dimension
    std::string text;  // as written in config.json's field (a number's shortest round-trip text, or a name)
};

/// Reads NAME=KIND:ARGS; throws naming the text and what is wrong (unknown kind, lo >= hi, a log
/// bound <= 0, an empty choice, a name apply() does not know).
Dimension parse_dimension(const std::string& text);

/// Trial `trial`'s values (one per dimension, in order), drawn from (seed, trial) alone.
std::vector<Value> sample(const std::vector<Dimension>& space, std::uint64_t seed, std::uint64_t trial);

/// The grid: `points` values per continuous dimension (log-spaced for log, ends included; integers
/// rounded and repeated ones dropped), every choice of a choice; all combinations, the first
/// dimension varying slowest. Throws when points < 2 or the grid exceeds `max_trials`.
std::vector<std::vector<Value>> grid(const std::vector<Dimension>& space, int points, std::size_t max_trials);

/// Sets `value` in `config` (lr, momentum, weight_decay, batch, epochs, optimizer, schedule, warmup,
/// label_smoothing, lr_scale_1d, weight_decay_1d, beta1, beta2); throws naming an unknown one and
/// the known names, or a value the field cannot hold.
void apply(TrainConfig& config, const Value& value);

/// The names apply() knows.
const std::vector<std::string>& tunable_names();

}  // namespace mcnn::tune
