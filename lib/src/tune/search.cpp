// tune's search (mcnn/train/tune.hpp): trials one after another, each a train() run in its own
// folder on the validation split; ASHA's rule after each epoch; search.json rewritten atomically
// after every change, so a killed search goes on where it stopped.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/plot/curves.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/tune.hpp"
#include "../train/run_lock.hpp"
#include "../util/files.hpp"
#include "../util/strict.hpp"

namespace mcnn::tune {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* format_tag = "mcnn-tune 1";
constexpr std::uint64_t max_search_json_bytes = std::uint64_t(64) << 20;

std::string trial_folder(int id) { return fmt::format("trial-{:03}", id); }
std::string best_folder(int id) { return fmt::format("best-trial-{:03}", id); }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---- search.json ------------------------------------------------------------------------------

json options_json(const SearchOptions& o) {
    json space = json::array();
    for (const Dimension& d : o.space) space.push_back(d.str());
    return {{"method", o.method},
            {"grid_points", o.grid_points},
            {"trials", o.trials},
            {"budget_minutes", o.budget_minutes},
            {"seed", o.seed},
            {"pruning", o.pruning.enabled},
            {"eta", o.pruning.eta},
            {"min_epochs", o.pruning.min_epochs},
            {"retrain_best", o.retrain_best},
            {"space", space},
            {"base", json::parse(o.base.to_json())}};
}

json trial_json(const Trial& t) {
    json values = json::object();
    for (const Value& v : t.values) values[v.name] = v.text;
    return {{"id", t.id},         {"values", values},     {"status", t.status}, {"epochs", t.epochs},
            {"accuracy", t.accuracy}, {"loss", t.loss}, {"seconds", t.seconds}, {"error", t.error}};
}

/// What search.json holds besides the options.
struct State {
    std::vector<Trial> trials;
    std::optional<Retrain> best;
    double spent_before = 0;  // seconds of the invocations before this one
};

void save(const SearchOptions& o, const State& s, double spent) {
    json trials = json::array();
    for (const Trial& t : s.trials) trials.push_back(trial_json(t));
    json j = {{"format", format_tag}, {"search", options_json(o)}, {"seconds", spent}, {"trials", trials}};
    if (s.best)
        j["best"] = {{"trial", s.best->trial},
                     {"status", s.best->status},
                     {"test_accuracy", s.best->test_accuracy},
                     {"test_loss", s.best->test_loss},
                     {"seconds", s.best->seconds}};
    write_file_atomically(o.dir / "search.json", j.dump(1) + "\n");
}

/// Field `key` of `j` (an object), else an error naming `what` and the key.
const json& field(const json& j, const std::string& key, const std::string& what) {
    if (!j.is_object() || !j.contains(key)) fail("{}: field '{}' is missing", what, key);
    return j.at(key);
}

std::string text_field(const json& j, const std::string& key, const std::string& what) {
    const json& v = field(j, key, what);
    if (!v.is_string()) fail("{}: field '{}' must be a string, got {}", what, key, v.dump());
    return v.get<std::string>();
}

double number_field(const json& j, const std::string& key, const std::string& what, double lo = 0) {
    return strict::json_number(field(j, key, what), lo, std::numeric_limits<double>::max(), fmt::format("{}: field '{}'", what, key));
}

std::vector<double> numbers_field(const json& j, const std::string& key, const std::string& what) {
    const json& v = field(j, key, what);
    if (!v.is_array()) fail("{}: field '{}' must be a list of numbers, got {}", what, key, v.dump());
    std::vector<double> out;
    for (const json& x : v) out.push_back(strict::json_number(x, 0, 1e300, fmt::format("{}: field '{}'", what, key)));
    return out;
}

json read_json(const fs::path& dir) {
    const fs::path path = dir / "search.json";
    const std::string text = files::read_regular_file(path, "the search's state", max_search_json_bytes);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("{}: not valid JSON ({})", path.string(), e.what());
    }
    if (!j.is_object() || !j.contains("format") || j["format"] != format_tag)
        fail("{}: not a search of this version of tune (expected \"format\": \"{}\")", path.string(), format_tag);
    return j;
}

SearchOptions options_of(const json& j, const std::string& what) {
    const json& s = field(j, "search", what);
    const std::string sw = what + " search";
    SearchOptions o;
    o.method = text_field(s, "method", sw);
    o.grid_points = strict::integer_as<int>(field(s, "grid_points", sw), sw + ": field 'grid_points'", 2);
    o.trials = strict::integer_as<int>(field(s, "trials", sw), sw + ": field 'trials'", 0);
    o.budget_minutes = number_field(s, "budget_minutes", sw);
    o.seed = strict::integer_as<std::uint64_t>(field(s, "seed", sw), sw + ": field 'seed'", 0);
    const json& pruning = field(s, "pruning", sw);
    if (!pruning.is_boolean()) fail("{}: field 'pruning' must be true or false", sw);
    o.pruning.enabled = pruning.get<bool>();
    o.pruning.eta = strict::integer_as<int>(field(s, "eta", sw), sw + ": field 'eta'", 2);
    o.pruning.min_epochs = strict::integer_as<int>(field(s, "min_epochs", sw), sw + ": field 'min_epochs'", 1);
    const json& retrain = field(s, "retrain_best", sw);
    if (!retrain.is_boolean()) fail("{}: field 'retrain_best' must be true or false", sw);
    o.retrain_best = retrain.get<bool>();
    const json& space = field(s, "space", sw);
    if (!space.is_array()) fail("{}: field 'space' must be a list", sw);
    for (const json& d : space) {
        if (!d.is_string()) fail("{}: field 'space' holds {}, not a dimension's text", sw, d.dump());
        o.space.push_back(parse_dimension(d.get<std::string>()));
    }
    try {
        o.base = TrainConfig::from_json(field(s, "base", sw).dump());
    } catch (const Error& e) {
        fail("{} base: {}", sw, e.what());
    }
    return o;
}

State state_of(const json& j, const SearchOptions& o, const std::string& what) {
    State state;
    state.spent_before = number_field(j, "seconds", what);
    const json& trials = field(j, "trials", what);
    if (!trials.is_array()) fail("{}: field 'trials' must be a list", what);
    for (const json& t : trials) {
        Trial trial;
        trial.id = static_cast<int>(state.trials.size()) + 1;
        const std::string tw = fmt::format("{} trial {}", what, trial.id);
        if (strict::integer_as<int>(field(t, "id", tw), tw + ": field 'id'", 1) != trial.id)
            fail("{}: the trials must be numbered 1, 2, ... in order", what);
        const json& values = field(t, "values", tw);
        for (const Dimension& d : o.space) trial.values.push_back({d.name, text_field(values, d.name, tw + " values")});
        if (values.size() != o.space.size()) fail("{}: values of dimensions that are not in the space", tw);
        trial.status = text_field(t, "status", tw);
        if (trial.status != "running" && trial.status != "done" && trial.status != "pruned" && trial.status != "cut" &&
            trial.status != "failed")
            fail("{}: unknown status '{}'", tw, trial.status);
        trial.epochs = strict::integer_as<int>(field(t, "epochs", tw), tw + ": field 'epochs'", 1);
        trial.accuracy = numbers_field(t, "accuracy", tw);
        trial.loss = numbers_field(t, "loss", tw);
        if (trial.loss.size() != trial.accuracy.size()) fail("{}: as many losses as accuracies expected", tw);
        trial.seconds = number_field(t, "seconds", tw);
        trial.error = text_field(t, "error", tw);
        state.trials.push_back(std::move(trial));
    }
    if (j.contains("best")) {
        const json& b = j.at("best");
        const std::string bw = what + " best";
        Retrain r;
        r.trial = strict::integer_as<int>(field(b, "trial", bw), bw + ": field 'trial'", 1);
        r.status = text_field(b, "status", bw);
        r.test_accuracy = number_field(b, "test_accuracy", bw);
        r.test_loss = number_field(b, "test_loss", bw);
        r.seconds = number_field(b, "seconds", bw);
        state.best = r;
    }
    return state;
}

// ---- the trials ---------------------------------------------------------------------------------

/// What stays the same when a search is resumed: all but trials, budget_minutes, retrain_best, out.
json fixed_part(const SearchOptions& o) {
    json j = options_json(o);
    for (const char* free : {"trials", "budget_minutes", "retrain_best"}) j.erase(free);
    return j;
}

class Search {
public:
    Search(const SearchOptions& o, const data::Cifar10& data, State state)
        : o_(o), data_(data), state_(std::move(state)), start_(Clock::now()) {
        if (o.method == "grid") grid_ = grid(o.space, o.grid_points, 100000);
    }

    SearchResult run() {
        SearchResult r;
        if (run_trials() && o_.retrain_best) retrain_best();
        r.trials = state_.trials;
        r.best = state_.best;
        r.seconds = spent();
        r.stopped_by_signal = signal_;
        return r;
    }

private:
    const SearchOptions& o_;
    const data::Cifar10& data_;
    State state_;
    Clock::time_point start_;
    std::vector<std::vector<Value>> grid_;
    int signal_ = 0;
    std::string why_;  // why the last trial stopped early

    double spent() const { return state_.spent_before + seconds_since(start_); }
    bool over_budget() const { return o_.budget_minutes > 0 && spent() >= o_.budget_minutes * 60; }
    void save_state() const { save(o_, state_, spent()); }

    void say(const std::string& line) const {
        if (!o_.out) return;
        fmt::print(o_.out, "{}\n", line);
        std::fflush(o_.out);
    }

    /// The most trials this search runs: options.trials, capped by the grid.
    std::size_t trial_limit() const {
        if (o_.method == "grid") return o_.trials > 0 ? std::min<std::size_t>(grid_.size(), o_.trials) : grid_.size();
        return o_.trials > 0 ? static_cast<std::size_t>(o_.trials) : std::numeric_limits<std::size_t>::max();
    }

    std::vector<Value> values_of(int id) const {
        return o_.method == "grid" ? grid_[static_cast<std::size_t>(id - 1)] : sample(o_.space, o_.seed, static_cast<std::uint64_t>(id));
    }

    TrainConfig config_of(const Trial& t) const {
        TrainConfig c = o_.base;
        for (const Value& v : t.values) apply(c, v);
        c.run_dir = o_.dir / trial_folder(t.id);
        c.final_test = false;  // a trial never sees the test set
        c.eval_every = 1;      // validated after every epoch, for the rungs
        return c;
    }

    /// Returns false when a signal stopped the search (saved; it resumes from there).
    bool run_trials() {
        for (Trial& t : state_.trials)
            if (t.status == "running" && !run_trial(t, true)) return false;
        while (state_.trials.size() < trial_limit()) {
            if (over_budget()) {
                say(fmt::format("tune: the budget of {} minutes is spent; no more trials", o_.budget_minutes));
                break;
            }
            Trial t;
            t.id = static_cast<int>(state_.trials.size()) + 1;
            t.values = values_of(t.id);
            state_.trials.push_back(t);
            Trial& added = state_.trials.back();
            added.epochs = o_.base.epochs;
            try {
                added.epochs = config_of(added).epochs;
            } catch (const Error& e) {  // a grid point or sample the settings refuse (a warm-up too long, ...)
                added.status = "failed";
                added.error = e.what();
                say(fmt::format("tune: trial {} failed: {}", added.id, added.error));
                save_state();
                continue;
            }
            save_state();
            if (!run_trial(added, false)) return false;
        }
        return true;
    }

    /// The accuracies at epoch `epoch` of the trials other than `t` that reached it.
    std::vector<double> others_at(const Trial& t, int epoch) const {
        std::vector<double> acc;
        for (const Trial& other : state_.trials)
            if (other.id != t.id && static_cast<int>(other.accuracy.size()) >= epoch) acc.push_back(other.accuracy[epoch - 1]);
        return acc;
    }

    /// ASHA at every rung the trial has passed up to its epoch `done`: false when it is pruned.
    bool passes_rungs(const Trial& t, int done) const {
        if (!o_.pruning.enabled) return true;
        for (int rung : rungs(o_.pruning, t.epochs))
            if (rung <= done && !promoted(t.accuracy[rung - 1], others_at(t, rung), o_.pruning.eta)) return false;
        return true;
    }

    std::string describe(const Trial& t) const {
        std::vector<std::string> parts;
        for (const Value& v : t.values) parts.push_back(v.name + " " + v.text);
        return parts.empty() ? "the fixed settings" : fmt::format("{}", fmt::join(parts, ", "));
    }

    /// The trial's validation curve as its log.csv holds it (a resumed trial's epochs before the stop).
    void read_curve(Trial& t) const {
        t.accuracy.clear();
        t.loss.clear();
        const fs::path log = o_.dir / trial_folder(t.id) / "log.csv";
        if (!fs::exists(log)) return;
        for (const LogRow& row : read_log(log))
            if (row.kind == "validation" && row.epoch == static_cast<int>(t.accuracy.size()) + 1) {
                t.accuracy.push_back(row.accuracy);
                t.loss.push_back(row.loss);
            }
    }

    /// Trains trial `t` (resumed from its checkpoint when `resume`). Returns false when a signal stopped it.
    bool run_trial(Trial& t, bool resume) {
        const TrainConfig config = config_of(t);
        const fs::path dir = config.run_dir;
        if (resume) {
            if (!fs::exists(dir / "checkpoint.safetensors")) {
                // killed before its first checkpoint: nothing trained is lost by starting it again
                fs::remove_all(dir);
                resume = false;
            } else {
                read_curve(t);
                // the epochs done may already settle it (killed between a rung's checkpoint and the decision)
                const int done = static_cast<int>(t.accuracy.size());
                if (!passes_rungs(t, done)) {
                    why_ = fmt::format("not among the best 1/{} at a rung it had reached", o_.pruning.eta);
                    return finish(t, "pruned", 0);
                }
                if (done >= t.epochs) return finish(t, "done", 0);
            }
        }
        say(fmt::format("\ntune: trial {} {}({})", t.id, resume ? "resumed " : "", describe(t)));
        const auto started = Clock::now();
        auto after_evaluation = [&](int epoch, const Evaluation& ev) {
            t.accuracy.resize(static_cast<std::size_t>(epoch - 1), 0.0);
            t.loss.resize(static_cast<std::size_t>(epoch - 1), 0.0);
            t.accuracy.push_back(ev.accuracy);
            t.loss.push_back(ev.loss);
            if (epoch < t.epochs && !passes_rungs(t, epoch)) {
                t.status = "pruned";
                why_ = fmt::format("not among the best 1/{} at the rung of epoch {}", o_.pruning.eta, epoch);
            } else if (epoch < t.epochs && over_budget()) {
                t.status = "cut";
                why_ = fmt::format("the budget of {} minutes is spent", o_.budget_minutes);
            }
            save_state();
            return t.status == "running";
        };
        TrainResult r;
        try {
            r = train(config, data_, resume, o_.out, {}, after_evaluation);
        } catch (const std::exception& e) {
            t.error = e.what();
            say(fmt::format("tune: trial {} failed: {}", t.id, t.error));
            return finish(t, "failed", seconds_since(started));
        }
        if (r.stopped_by_signal) {
            signal_ = r.stopped_by_signal;
            t.seconds += seconds_since(started);
            save_state();
            return false;
        }
        return finish(t, r.stopped_by_caller ? t.status : "done", seconds_since(started));
    }

    bool finish(Trial& t, const std::string& status, double seconds) {
        t.status = status;
        t.seconds += seconds;
        save_state();
        if (!t.accuracy.empty())
            say(fmt::format("tune: trial {} {} after {} epoch{}: validation accuracy {:.2f} %{} ({:.0f} s)", t.id, status,
                            t.accuracy.size(), t.accuracy.size() == 1 ? "" : "s", t.accuracy.back(),
                            status == "pruned" || status == "cut" ? ", " + why_ : "", t.seconds));
        return true;
    }

    void retrain_best() {
        const std::vector<const Trial*> order = ranked(state_.trials);
        if (order.empty() || std::isnan(order.front()->last_accuracy())) {
            say("tune: no trial has a validation accuracy; nothing to retrain");
            return;
        }
        const Trial& best = *order.front();
        if (state_.best && state_.best->trial == best.id && state_.best->status == "done") {
            say(fmt::format("tune: the best trial ({}) is already retrained: test accuracy {:.2f} %", best.id, state_.best->test_accuracy));
            return;
        }
        TrainConfig c = o_.base;
        for (const Value& v : best.values) apply(c, v);
        c.validation = 0;  // all 50,000 training images
        c.eval_every = 0;  // the test set once, after the last epoch
        c.run_dir = o_.dir / best_folder(best.id);
        const bool ours = state_.best && state_.best->trial == best.id;  // this search started it before
        const bool resume = ours && fs::exists(c.run_dir / "checkpoint.safetensors");
        if (ours && !resume && fs::exists(c.run_dir)) fs::remove_all(c.run_dir);  // started, never checkpointed
        if (!state_.best || state_.best->trial != best.id) state_.best = Retrain{.trial = best.id};
        save_state();
        say(fmt::format("\ntune: retraining the best trial ({}: {}) on the whole training set, {} epochs, then the test set once",
                        best.id, describe(best), c.epochs));
        const auto started = Clock::now();
        const TrainResult r = train(c, data_, resume, o_.out);
        state_.best->seconds += seconds_since(started);
        if (r.stopped_by_signal) {
            signal_ = r.stopped_by_signal;
            save_state();
            return;
        }
        state_.best->status = "done";
        state_.best->test_accuracy = r.test.accuracy;
        state_.best->test_loss = r.test.loss;
        save_state();
    }
};

// ---- pictures -----------------------------------------------------------------------------------

void draw_pictures(const SearchOptions& o, const SearchResult& r) {
    plot::Chart curves{"validation accuracy of every trial", "epoch", "validation accuracy (%)", {}};
    const std::vector<const Trial*> ranked = r.ranked();
    for (std::size_t rank = 0; rank < ranked.size(); ++rank) {
        const Trial& t = *ranked[rank];
        plot::Series s;
        s.title = rank < 5 ? fmt::format("trial {} ({})", t.id, t.status) : "";  // the best five named
        for (std::size_t e = 0; e < t.accuracy.size(); ++e) {
            s.x.push_back(static_cast<double>(e + 1));
            s.y.push_back(t.accuracy[e]);
        }
        s.style = plot::Style::linespoints;
        curves.series.push_back(std::move(s));
    }
    plot::draw_png(o.dir / "curves.png", fmt::format("tune: {} trials", r.trials.size()), {curves}, 1000, 600);
    if (o.space.empty()) return;
    std::vector<plot::Chart> charts;
    for (std::size_t d = 0; d < o.space.size(); ++d) {
        const Dimension& dim = o.space[d];
        plot::Chart c;
        c.ylabel = "last validation accuracy (%)";
        c.title = dim.name;
        c.xlabel = dim.kind == Kind::log ? "log10 " + dim.name : dim.name;
        if (dim.kind == Kind::choice) {
            std::vector<std::string> legend;
            for (std::size_t k = 0; k < dim.choices.size(); ++k) legend.push_back(fmt::format("{} {}", k, dim.choices[k]));
            c.xlabel = fmt::format("{} ({})", dim.name, fmt::join(legend, ", "));
        }
        plot::Series done{"done", {}, {}, plot::Style::points}, stopped{"stopped early", {}, {}, plot::Style::points};
        for (const Trial& t : r.trials) {
            const double acc = t.last_accuracy();
            if (std::isnan(acc)) continue;
            const std::string& text = t.values[d].text;
            double x = 0;
            if (dim.kind == Kind::choice)
                x = static_cast<double>(std::find(dim.choices.begin(), dim.choices.end(), text) - dim.choices.begin());
            else
                x = std::stod(text);
            if (dim.kind == Kind::log) x = std::log10(x);
            plot::Series& s = t.status == "done" ? done : stopped;
            s.x.push_back(x);
            s.y.push_back(acc);
        }
        c.series = {done, stopped};
        charts.push_back(std::move(c));
    }
    const int columns = static_cast<int>(std::min<std::size_t>(charts.size(), 4)),
              rows = static_cast<int>((charts.size() + 3) / 4);
    plot::draw_png(o.dir / "accuracy-vs-hyperparameters.png", "last validation accuracy of each trial against its values", charts,
                   std::max(columns * 420, 600), 60 + rows * 400, columns);
}

std::string cell(double v, int decimals) { return std::isnan(v) ? "" : fmt::format("{:.{}f}", v, decimals); }

}  // namespace

std::vector<int> rungs(const Pruning& pruning, int epochs) {
    std::vector<int> r;
    if (!pruning.enabled) return r;
    for (long long rung = pruning.min_epochs; rung < epochs; rung *= pruning.eta) r.push_back(static_cast<int>(rung));
    return r;
}

bool promoted(double accuracy, const std::vector<double>& others, int eta) {
    const std::size_t n = others.size() + 1;
    const std::size_t keep = (n + static_cast<std::size_t>(eta) - 1) / static_cast<std::size_t>(eta);
    const auto better = static_cast<std::size_t>(std::count_if(others.begin(), others.end(), [&](double a) { return a > accuracy; }));
    return better < keep;
}

double Trial::last_accuracy() const { return accuracy.empty() ? std::nan("") : accuracy.back(); }

std::vector<const Trial*> SearchResult::ranked() const { return tune::ranked(trials); }

std::vector<const Trial*> ranked(const std::vector<Trial>& trials) {
    std::vector<const Trial*> r;
    for (const Trial& t : trials) r.push_back(&t);
    std::stable_sort(r.begin(), r.end(), [](const Trial* a, const Trial* b) {
        const double x = a->last_accuracy(), y = b->last_accuracy();
        if (std::isnan(y)) return !std::isnan(x);
        return !std::isnan(x) && x > y;
    });
    return r;
}

std::string results_csv(const SearchResult& result, const std::vector<Dimension>& space) {
    std::string text = "rank,trial,status,epochs_done,epochs,validation_accuracy,validation_loss,seconds,test_accuracy";
    for (const Dimension& d : space) text += "," + d.name;
    text += "\n";
    int rank = 0;
    for (const Trial* t : result.ranked()) {
        const bool retrained = result.best && result.best->trial == t->id && result.best->status == "done";
        text += fmt::format("{},{},{},{},{},{},{},{:.1f},{}", ++rank, t->id, t->status, t->accuracy.size(), t->epochs,
                            cell(t->last_accuracy(), 2), t->loss.empty() ? "" : cell(t->loss.back(), 4), t->seconds,
                            retrained ? cell(result.best->test_accuracy, 2) : "");
        for (const Value& v : t->values) text += "," + v.text;
        text += "\n";
    }
    return text;
}

std::string results_table(const SearchResult& result, const std::vector<Dimension>& space) {
    std::vector<std::vector<std::string>> rows{{"rank", "trial", "status", "epochs", "val acc %", "val loss", "seconds"}};
    for (const Dimension& d : space) rows[0].push_back(d.name);
    int rank = 0;
    for (const Trial* t : result.ranked()) {
        std::vector<std::string> row{std::to_string(++rank),
                                     std::to_string(t->id),
                                     t->status,
                                     fmt::format("{}/{}", t->accuracy.size(), t->epochs),
                                     cell(t->last_accuracy(), 2),
                                     t->loss.empty() ? "" : cell(t->loss.back(), 4),
                                     fmt::format("{:.0f}", t->seconds)};
        for (const Value& v : t->values) row.push_back(v.text);
        rows.push_back(std::move(row));
    }
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    std::string text;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) line += fmt::format("{:<{}}  ", row[c], width[c]);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        text += line + "\n";
    }
    if (result.best && result.best->status == "done")
        text += fmt::format("best trial {} retrained on the whole training set: test accuracy {:.2f} % (test loss {:.4f}, {:.0f} s)\n",
                            result.best->trial, result.best->test_accuracy, result.best->test_loss, result.best->seconds);
    return text;
}

void check_options(const SearchOptions& o) {
    if (o.method != "random" && o.method != "grid") fail("tune: the search method must be random or grid, got '{}'", o.method);
    if (o.base.validation == 0)
        fail("tune: trials are judged on a validation split held out of the training set; it cannot be 0 images");
    if (o.trials < 0) fail("tune: the number of trials must be >= 0, got {}", o.trials);
    if (!(o.budget_minutes >= 0) || !std::isfinite(o.budget_minutes))
        fail("tune: the budget must be a finite number of minutes >= 0, got {}", o.budget_minutes);
    if (o.method == "random" && o.trials == 0 && o.budget_minutes == 0)
        fail("tune: a random search needs a number of trials or a budget in minutes (or both)");
    if (o.pruning.eta < 2) fail("tune: ASHA's eta must be >= 2, got {}", o.pruning.eta);
    if (o.pruning.min_epochs < 1) fail("tune: the first rung must be >= 1 epoch, got {}", o.pruning.min_epochs);
    if (o.dir.empty()) fail("tune: no search folder given");
    for (std::size_t i = 0; i < o.space.size(); ++i)
        for (std::size_t k = 0; k < i; ++k)
            if (o.space[i].name == o.space[k].name) fail("tune: dimension '{}' is given twice", o.space[i].name);
    TrainConfig probe = o.base;
    probe.run_dir = o.dir / trial_folder(1);  // each trial's own
    probe.validate();
    for (const Dimension& d : o.space) {  // the model's options: every choice, both ends, before any trial
        if (!d.name.starts_with("model.")) continue;
        for (const std::vector<Value>& values : grid({d}, 2, 100000)) {
            TrainConfig c = probe;
            apply(c, values[0]);
            try {
                c.validate();
            } catch (const Error& e) {
                fail("tune: dimension '{}': {}", d.str(), e.what());
            }
        }
    }
}

SearchOptions read_search_options(const fs::path& dir) {
    const std::string what = (dir / "search.json").string();
    SearchOptions o = options_of(read_json(dir), what);
    o.dir = dir;
    return o;
}

SearchResult run_search(const SearchOptions& options, const data::Cifar10& data, bool resume) {
    check_options(options);
    State state;
    const fs::path json_path = options.dir / "search.json";
    if (resume) {
        const json j = read_json(options.dir);
        const std::string what = json_path.string();
        if (fixed_part(options_of(j, what)) != fixed_part(options))
            fail("{}: the search's settings differ from the stored ones; a resumed search may change only the trials, "
                 "the budget and --retrain-best",
                 what);
        state = state_of(j, options, what);
    } else {
        if (fs::exists(json_path))
            fail("{} already holds a search; resume it, or choose another folder", options.dir.string());
        fs::create_directories(options.dir);
    }
    const detail::RunLock lock(options.dir);
    if (!resume) save(options, state, 0);
    Search search(options, data, std::move(state));
    SearchResult result = search.run();
    write_file_atomically(options.dir / "results.csv", results_csv(result, options.space));
    if (options.base.plots) {
        try {
            draw_pictures(options, result);
        } catch (const Error& e) {  // gnuplot missing or failing costs the pictures, not the search
            if (options.out) fmt::print(options.out, "tune: the pictures were not drawn: {}\n", e.what());
        }
    }
    if (options.out) {
        const double retraining = result.best ? result.best->seconds : 0;
        fmt::print(options.out, "\ntune: {} trials in {:.1f} min{}, sorted by validation accuracy ({}):\n{}", result.trials.size(),
                   (result.seconds - retraining) / 60, retraining > 0 ? fmt::format(" (then {:.1f} min retraining the best)", retraining / 60) : "",
                   (options.dir / "results.csv").string(), results_table(result, options.space));
        std::fflush(options.out);
    }
    return result;
}

}  // namespace mcnn::tune
