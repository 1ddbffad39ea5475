#include "common.hpp"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <new>

#include <fmt/format.h>

#include "../train/memory.hpp"
#include "../util/strict.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/train/config.hpp"

namespace mcnn::cli::detail {

std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
    return buf;
}

void refuse_on_resume(const std::vector<std::string>& given, const std::vector<std::string>& allowed, const std::string& kept,
                      const std::string& note) {
    std::vector<std::string> refused;
    for (const std::string& flag : given)
        if (flag != "--resume" && std::find(allowed.begin(), allowed.end(), flag) == allowed.end()) refused.push_back(flag);
    if (!refused.empty())
        fail("--resume keeps {}, so {} cannot be given with it; with --resume only {} may be given{}", kept, fmt::join(refused, ", "),
             fmt::join(allowed, ", "), note);
}

int stopped_status(const std::string& program, int signal, const std::string& what, const std::filesystem::path& dir, bool say) {
    if (say)
        fmt::print(stderr, "{}: stopped by {}; the {} goes on with: {} --resume {}\n", program, signal == SIGINT ? "SIGINT" : "SIGTERM",
                   what, program, dir.string());
    return 128 + signal;  // the shell's convention for a process ended by a signal (130, 143)
}

std::string model_list() {
    return fmt::format("{}", fmt::join(model_names(), ", "));
}

std::string model_table() {
    std::string out = "Registered models:\n";
    std::size_t width = 0;
    for (const std::string& name : model_names()) width = std::max(width, name.size());
    for (const std::string& name : model_names()) {
        const ModelInfo& info = model_info(name);
        out += fmt::format("  {:<{}}  input {}, {} classes: {}\n", name, width, info.input.str(), info.classes, info.description);
        if (!info.options.empty()) {
            std::vector<std::string> options;
            for (const ModelOption& o : info.options) options.push_back(o.str());
            out += fmt::format("  {:<{}}  options (--model-option NAME=VALUE): {}\n", "", width, fmt::join(options, "; "));
        }
    }
    return out;
}

CLI::Validator registered_model() {
    return CLI::Validator(
        [](std::string& name) -> std::string {
            try {
                (void)model_info(name);
                return "";
            } catch (const Error& e) {
                return e.what();
            }
        },
        "MODEL", "registered model");
}

CLI::Option* add_model_option(CLI::App& app, std::string& name, const std::string& what) {
    return app.add_option("--model", name, what + ": " + model_list())->check(registered_model());
}

// ---- numeric flags -----------------------------------------------------------------------------

std::string NumberRange::text() const {
    const bool no_min = std::isinf(min), no_max = std::isinf(max);
    if (no_min && no_max) return "";
    if (no_max) return fmt::format("{} {}", above_min ? ">" : ">=", min);
    if (no_min) return fmt::format("<= {}", max);
    return fmt::format("from {} ({}) to {}", min, above_min ? "excluded" : "included", max);
}

long long flag_integer(const std::string& text, const std::string& flag, long long min, long long max) {
    return strict::integer(text, min, max, flag);
}

double flag_number(const std::string& text, const std::string& flag, const NumberRange& range) {
    double v = 0;
    const char* end = text.data() + text.size();
    const auto [stop, ec] = std::from_chars(text.data(), end, v);
    const bool in_range = v >= range.min && v <= range.max && !(range.above_min && v == range.min);
    if (text.empty() || ec != std::errc() || stop != end || !std::isfinite(v) || !in_range) {
        const std::string bounds = range.text();
        fail("{} must be a finite number{}{}, got '{}'", flag, bounds.empty() ? "" : " ", bounds,
             text.size() <= 40 ? text : text.substr(0, 40) + "...");
    }
    return v;
}

namespace {

/// The help text with the range the values must be in: "passes over the training set (>= 1)".
std::string help_with_range(const std::string& help, const std::string& range) {
    return range.empty() ? help : fmt::format("{} ({})", help, range);
}

/// Runs a conversion, turning its mcnn::Error into the CLI11 error that stops the parse.
template <class Convert>
auto or_parse_error(const Convert& convert) {
    try {
        return convert();
    } catch (const Error& e) {
        throw CLI::ValidationError(e.what());
    }
}

}  // namespace

CLI::Option* add_integer_flag_to(CLI::App& app, const std::string& flag, std::function<void(long long)> set,
                                 const std::string& default_text, const std::string& help, long long min, long long max) {
    auto convert = [set = std::move(set), flag, min, max](const std::string& text) {
        set(or_parse_error([&] { return flag_integer(text, flag, min, max); }));
    };
    return app.add_option_function<std::string>(flag, convert, help_with_range(help, strict::range_text(min, max)))
        ->type_name("INT")
        ->default_str(default_text);
}

CLI::Option* add_data_option(CLI::App& app, std::string& dir) {
    return app.add_option("--data", dir, "CIFAR-10 folder (else $CIFAR10_DIR, ./data/cifar-10-batches-bin, "
                                         "../shared/cifar10/cifar-10-batches-bin)");
}

CLI::Option* add_model_option_flag(CLI::App& app, ModelOptions& options) {
    auto convert = [&options](const std::vector<std::string>& items) {
        for (const std::string& item : items) {
            const std::size_t eq = item.find('=');
            if (eq == std::string::npos || eq == 0)
                throw CLI::ValidationError("--model-option", "expected NAME=VALUE (e.g. conv1=12), got '" + item + "'");
            const std::string name = item.substr(0, eq);
            options[name] = or_parse_error([&] { return flag_number(item.substr(eq + 1), "--model-option " + name, NumberRange{}); });
        }
    };
    return app.add_option_function<std::vector<std::string>>("--model-option", convert,
                                                              "a model option, NAME=VALUE, repeatable (each model's options "
                                                              "are listed below; checked against the model before training)")
        ->type_name("NAME=VALUE");
}

CLI::Option* add_integer_list_flag(CLI::App& app, const std::string& flag, std::vector<int>& values,
                                   const std::string& help, long long min, long long max) {
    auto convert = [&values, flag, min, max](const std::vector<std::string>& texts) {
        std::vector<int> out;
        for (const std::string& t : texts)
            out.push_back(static_cast<int>(or_parse_error([&] { return flag_integer(t, flag, min, max); })));
        values = std::move(out);
    };
    return app.add_option_function<std::vector<std::string>>(flag, convert, help_with_range(help, strict::range_text(min, max)))
        ->type_name("INT")
        ->default_str(fmt::format("{}", fmt::join(values, " ")));
}

CLI::Option* add_number_flag(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                             const NumberRange& range) {
    auto convert = [&value, flag, range](const std::string& text) {
        value = or_parse_error([&] { return flag_number(text, flag, range); });
    };
    return app.add_option_function<std::string>(flag, convert, help_with_range(help, range.text()))
        ->type_name("FLOAT")
        ->default_str(fmt::format("{}", value));
}

int capped_threads(int requested, const std::string& command) {
    const int cores = std::max(1, omp_get_num_procs());
    if (requested <= 0) return cores;
    if (requested <= cores) return requested;
    fmt::print(stderr, "{}: --threads {} is more than the {} core{} of this machine: using {}\n", command, requested, cores,
               cores == 1 ? "" : "s", cores);
    return cores;
}

std::unique_ptr<Communicator> mpi_world_for(const std::string& command) {
    if (launched_by_mpi() && !built_with_mpi())
        fail("{} was started by an MPI launcher (mpirun), but ManualCNN was built without MPI, so each process would train "
             "alone: install libopenmpi-dev and openmpi-bin, then build again (scripts/setup.sh)", command);
    return mpi_world();
}

// ---- models ------------------------------------------------------------------------------------

Shape batch_of(int batch, const Shape& example) {
    std::vector<int> dims{batch};
    for (int d : example.dims()) dims.push_back(d);
    return Shape(dims);
}

bool takes_cifar(const ModelInfo& info) {
    return info.input == Shape{3, 32, 32} && info.classes == 10;
}

Shape parse_example_shape(const std::string& text) {
    std::vector<int> dims;
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        int d = 0;
        const auto [next, ec] = std::from_chars(p, end, d);
        if (ec != std::errc() || d < 1) break;
        dims.push_back(d);
        p = next;
        if (p == end) {
            if (dims.size() <= 3) return Shape(dims);
            break;
        }
        if (*p != ',' && *p != 'x') break;
        ++p;
    }
    fail("input shape '{}' is not C,H,W: 1 to 3 positive sizes separated by commas (e.g. 3,32,32)", text);
}

template <class T>
std::unique_ptr<Module<T>> checked_model(const std::string& name, Rng& rng, const Shape& example, const ModelOptions& options) {
    const ModelInfo& info = model_info(name);
    std::unique_ptr<Module<T>> model = info.make<T>(rng, options);
    check_model_shapes(*model, name, example, info.classes);
    return model;
}

template std::unique_ptr<Module<float>> checked_model(const std::string&, Rng&, const Shape&, const ModelOptions&);
template std::unique_ptr<Module<double>> checked_model(const std::string&, Rng&, const Shape&, const ModelOptions&);

std::string model_summary(const std::string& name, const std::string& conv, std::uint64_t seed, const Shape& example,
                          const ModelOptions& options) {
    Rng rng(seed);
    auto model = checked_model<float>(name, rng, example, options);
    if (conv != "auto") set_conv_path(*model, conv_path_from_name(normalized_conv_setting(conv)));
    return summary(*model, batch_of(1, example), name);
}

void keep_freed_memory() {
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
}

int run_reporting_errors(const std::string& command, int error_status, const std::function<int()>& body) {
    try {
        return body();
    } catch (const Error& e) {
        fmt::print(stderr, "{}: error: {}\n", command, e.what());
    } catch (const std::filesystem::filesystem_error& e) {
        fmt::print(stderr, "{}: error: {}\n", command, e.what());
    } catch (const std::bad_alloc&) {
        // The limits, to say why (nothing here allocates much).
        const std::string limits = memory::limits_text();
        fmt::print(stderr, "{0}: error: out of memory while running {0} (an allocation failed{1}): use a smaller batch or "
                           "free memory\n",
                   command, limits.empty() ? "" : "; " + limits);
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}: error: {}\n", command, e.what());
    } catch (...) {
        fmt::print(stderr, "{}: error: an exception that is not a std::exception\n", command);
    }
    return error_status;
}

}  // namespace mcnn::cli::detail
