// The search space of tune (mcnn/train/tune.hpp): parsing, sampling, the grid, applying a value.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "mcnn/train/tune.hpp"
#include "../data/shuffle.hpp"
#include "../util/strict.hpp"

namespace mcnn::tune {
namespace {

// A uniform number in [0, 1) from (seed, trial, dimension).
double unit(std::uint64_t seed, std::uint64_t trial, std::uint64_t dimension) {
    using data::detail::mix;  // SplitMix64's finaliser, as the loaders' shuffles use
    const std::uint64_t word = mix(mix(mix(seed) ^ trial) ^ (dimension + 0x7475'6e65ull));
    return static_cast<double>(word >> 11) * 0x1.0p-53;
}

std::string number_text(double v) {
    return fmt::format("{}", v);  // the shortest text that reads back the same double
}

// What apply() sets, by name: how it reads the value's text into the config.
using Setter = std::function<void(TrainConfig&, const std::string& text, const std::string& what)>;

Setter number(double TrainConfig::*field, double lo, double hi) {
    return [=](TrainConfig& c, const std::string& text, const std::string& what) { c.*field = strict::number(text, lo, hi, what); };
}

Setter name_in(std::string TrainConfig::*field, const std::vector<std::string>& names) {
    return [=, &names](TrainConfig& c, const std::string& text, const std::string& what) {
        if (std::find(names.begin(), names.end(), text) == names.end())
            fail("{}: '{}' is not one of {}", what, text, fmt::join(names, ", "));
        c.*field = text;
    };
}

const std::map<std::string, Setter>& setters() {
    static const std::map<std::string, Setter> all = {
        {"lr", [](TrainConfig& c, const std::string& t, const std::string& w) { c.sgd.lr = strict::number(t, 1e-12, 1e6, w); }},
        {"momentum", [](TrainConfig& c, const std::string& t, const std::string& w) { c.sgd.momentum = strict::number(t, 0, 1, w); }},
        {"weight_decay",
         [](TrainConfig& c, const std::string& t, const std::string& w) { c.sgd.weight_decay = strict::number(t, 0, 1e3, w); }},
        {"batch", [](TrainConfig& c, const std::string& t, const std::string& w) { c.batch = strict::integer_as<int>(t, w, 1); }},
        {"epochs", [](TrainConfig& c, const std::string& t, const std::string& w) { c.epochs = strict::integer_as<int>(t, w, 1); }},
        {"optimizer", name_in(&TrainConfig::optimizer, optimizer_names())},
        {"schedule", name_in(&TrainConfig::schedule, schedule_names())},
        {"warmup", number(&TrainConfig::warmup, 0, 1e6)},
        {"label_smoothing", number(&TrainConfig::label_smoothing, 0, 1)},
        {"lr_scale_1d", number(&TrainConfig::lr_scale_1d, 1e-12, 1e6)},
        {"weight_decay_1d", number(&TrainConfig::weight_decay_1d, 0, 1e3)},
        {"beta1", number(&TrainConfig::beta1, 0, 1)},
        {"beta2", number(&TrainConfig::beta2, 0, 1)},
        {"crop_pad", [](TrainConfig& c, const std::string& t, const std::string& w) { c.augment.crop_pad = strict::integer_as<int>(t, w, 0); }},
        {"cutout", [](TrainConfig& c, const std::string& t, const std::string& w) { c.augment.cutout = strict::integer_as<int>(t, w, 0); }},
        {"flip", [](TrainConfig& c, const std::string& t, const std::string&) { c.augment.flip = data::flip_mode_from_name(t); }},
    };
    return all;
}

/// "model.conv1": an option of the model (ModelOption), not a training setting.
bool is_model_option(const std::string& name) { return name.size() > 6 && name.starts_with("model."); }

std::vector<std::string> split(const std::string& text, char at) {
    std::vector<std::string> parts;
    std::size_t begin = 0;
    for (;;) {
        const std::size_t end = text.find(at, begin);
        parts.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
        if (end == std::string::npos) return parts;
        begin = end + 1;
    }
}

const char* kind_name(Kind k) {
    switch (k) {
    case Kind::log: return "log";
    case Kind::linear: return "linear";
    case Kind::integer: return "int";
    case Kind::choice: return "choice";
    }
    return "?";
}

// The value of a continuous dimension at u in [0, 1] (integers rounded to the nearest).
std::string value_at(const Dimension& d, double u) {
    if (d.kind != Kind::choice && (u == 0 || u == 1)) {  // the ends exactly, without exp(log(x)) rounding
        const double end = u == 0 ? d.lo : d.hi;
        return d.kind == Kind::integer ? fmt::format("{}", static_cast<long long>(end)) : number_text(end);
    }
    // log and linear values keep 4 significant digits (readable in tables; finer steps than any
    // trial can tell apart), within the bounds
    auto readable = [&](double v) {
        const double r = std::stod(fmt::format("{:.4g}", v));
        return number_text(std::clamp(r, d.lo, d.hi));
    };
    switch (d.kind) {
    case Kind::log: return readable(std::exp(std::log(d.lo) + u * (std::log(d.hi) - std::log(d.lo))));
    case Kind::linear: return readable(d.lo + u * (d.hi - d.lo));
    case Kind::integer: return fmt::format("{}", static_cast<long long>(std::llround(d.lo + u * (d.hi - d.lo))));
    case Kind::choice: break;
    }
    fail("tune: dimension '{}' has no continuous values", d.name);
}

}  // namespace

const std::vector<std::string>& tunable_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const auto& [name, setter] : setters()) n.push_back(name);
        return n;
    }();
    return names;
}

std::string Dimension::str() const {
    if (kind == Kind::choice) return fmt::format("{}=choice:{}", name, fmt::join(choices, ","));
    return fmt::format("{}={}:{}:{}", name, kind_name(kind), number_text(lo), number_text(hi));
}

Dimension parse_dimension(const std::string& text) {
    const std::string what = fmt::format("search dimension '{}'", text);
    const std::size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) fail("{}: expected NAME=KIND:ARGS (e.g. lr=log:1e-4:1e-1)", what);
    Dimension d;
    d.name = text.substr(0, eq);
    if (!setters().count(d.name) && !is_model_option(d.name))
        fail("{}: unknown name '{}'; tune knows {} and model.NAME for the model's options", what, d.name,
             fmt::join(tunable_names(), ", "));
    const std::vector<std::string> parts = split(text.substr(eq + 1), ':');
    const std::string& kind = parts[0];
    if (kind == "choice") {
        if (parts.size() != 2) fail("{}: expected choice:A,B,...", what);
        d.kind = Kind::choice;
        d.choices = split(parts[1], ',');
        for (const std::string& c : d.choices)
            if (c.empty()) fail("{}: an empty choice", what);
        TrainConfig probe;
        for (const std::string& c : d.choices) apply(probe, {d.name, c});  // each must fit the field
        return d;
    }
    if (kind == "log") d.kind = Kind::log;
    else if (kind == "linear") d.kind = Kind::linear;
    else if (kind == "int") d.kind = Kind::integer;
    else fail("{}: unknown kind '{}'; known: log, linear, int, choice", what, kind);
    if (parts.size() != 3) fail("{}: expected {}:LO:HI", what, kind);
    d.lo = strict::number(parts[1], -1e300, 1e300, what + " LO");
    d.hi = strict::number(parts[2], -1e300, 1e300, what + " HI");
    if (!(d.lo < d.hi)) fail("{}: LO must be below HI, got {} and {}", what, d.lo, d.hi);
    if (d.kind == Kind::log && d.lo <= 0) fail("{}: a log scale needs LO > 0, got {}", what, d.lo);
    if (d.kind == Kind::integer && (d.lo != std::floor(d.lo) || d.hi != std::floor(d.hi)))
        fail("{}: int bounds must be integers, got {} and {}", what, d.lo, d.hi);
    TrainConfig probe;
    for (double u : {0.0, 1.0}) apply(probe, {d.name, value_at(d, u)});  // both ends must fit the field
    return d;
}

std::vector<Value> sample(const std::vector<Dimension>& space, std::uint64_t seed, std::uint64_t trial) {
    std::vector<Value> values;
    for (std::size_t i = 0; i < space.size(); ++i) {
        const Dimension& d = space[i];
        const double u = unit(seed, trial, i);
        if (d.kind == Kind::choice) {
            const auto k = std::min(d.choices.size() - 1, static_cast<std::size_t>(u * static_cast<double>(d.choices.size())));
            values.push_back({d.name, d.choices[k]});
        } else if (d.kind == Kind::integer) {
            // each integer of [lo, hi] equally likely
            const double span = d.hi - d.lo + 1;
            values.push_back({d.name, fmt::format("{}", static_cast<long long>(d.lo + std::min(span - 1, std::floor(u * span))))});
        } else {
            values.push_back({d.name, value_at(d, u)});
        }
    }
    return values;
}

std::vector<std::vector<Value>> grid(const std::vector<Dimension>& space, int points, std::size_t max_trials) {
    if (points < 2) fail("tune: a grid needs at least 2 points per dimension, got {}", points);
    std::vector<std::vector<std::string>> axes;
    for (const Dimension& d : space) {
        std::vector<std::string> axis;
        if (d.kind == Kind::choice) {
            axis = d.choices;
        } else {
            for (int i = 0; i < points; ++i) {
                std::string v = value_at(d, static_cast<double>(i) / (points - 1));
                if (std::find(axis.begin(), axis.end(), v) == axis.end()) axis.push_back(std::move(v));
            }
        }
        axes.push_back(std::move(axis));
    }
    std::size_t total = 1;
    for (const auto& axis : axes) {
        total *= axis.size();
        if (total > max_trials) fail("tune: the grid holds more than {} trials; use fewer points or dimensions", max_trials);
    }
    std::vector<std::vector<Value>> trials;
    for (std::size_t t = 0; t < total; ++t) {
        std::vector<Value> values(space.size());
        std::size_t rest = t;
        for (std::size_t i = space.size(); i-- > 0;) {  // the last dimension varies fastest
            values[i] = {space[i].name, axes[i][rest % axes[i].size()]};
            rest /= axes[i].size();
        }
        trials.push_back(std::move(values));
    }
    return trials;
}

void apply(TrainConfig& config, const Value& value) {
    if (is_model_option(value.name)) {  // the model checks the name and range (ModelInfo::resolve)
        config.model_options[value.name.substr(6)] =
            strict::number(value.text, -1e300, 1e300, fmt::format("tune: {}", value.name));
        return;
    }
    const auto it = setters().find(value.name);
    if (it == setters().end()) fail("tune: unknown setting '{}'; tune knows {}", value.name, fmt::join(tunable_names(), ", "));
    it->second(config, value.text, fmt::format("tune: {}", value.name));
}

}  // namespace mcnn::tune
