#include "common.hpp"

#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include <fmt/format.h>

#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/train/config.hpp"

namespace mcnn::cli::detail {

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
std::unique_ptr<Module<T>> checked_model(const std::string& name, Rng& rng, const Shape& example) {
    const ModelInfo& info = model_info(name);
    std::unique_ptr<Module<T>> model = info.make<T>(rng);
    check_model_shapes(*model, name, example, info.classes);
    return model;
}

template std::unique_ptr<Module<float>> checked_model(const std::string&, Rng&, const Shape&);
template std::unique_ptr<Module<double>> checked_model(const std::string&, Rng&, const Shape&);

std::string model_summary(const std::string& name, const std::string& conv, std::uint64_t seed, const Shape& example) {
    Rng rng(seed);
    auto model = checked_model<float>(name, rng, example);
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
    }
    return error_status;
}

}  // namespace mcnn::cli::detail
