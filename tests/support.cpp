// The non-template helpers of support.hpp.
#include "support.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace mcnn::test {

Tensor<double> uniform(const Shape& shape, Rng& rng, double lo, double hi) {
    Tensor<double> t(shape);
    for (double& v : t) v = rng.uniform(lo, hi);
    return t;
}

Tensor<double> off_zero(const Shape& shape, Rng& rng) {
    Tensor<double> t(shape);
    for (double& v : t) v = (rng.below(2) ? 1.0 : -1.0) * rng.uniform(0.1, 1.5);
    return t;
}

const Tensor<double>& Fixture::tensor(const std::string& t) const {
    auto it = tensors.find(t);
    if (it == tensors.end()) throw std::runtime_error("fixture " + name() + " has no tensor " + t);
    return it->second;
}

std::vector<Fixture> load_fixtures(const std::string& kind) {
    const std::string path = std::string(MCNN_TEST_FIXTURES) + "/correlate2d.txt";
    std::ifstream file(path);
    if (!file) throw std::runtime_error("cannot open fixture file " + path);
    std::stringstream tokens;  // the file without comment lines
    for (std::string line; std::getline(file, line);)
        if (line.empty() || line[0] != '#') tokens << line << '\n';
    auto bad = [&](const std::string& what) { return std::runtime_error(path + ": " + what); };
    auto number = [&](const std::string& s) {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0') throw bad("not a number: '" + s + "'");
        return v;
    };
    std::vector<Fixture> out;
    std::string word;
    while (tokens >> word) {
        if (word != "case") throw bad("expected 'case', got '" + word + "'");
        Fixture f;
        std::string header;
        std::getline(tokens, header);
        std::istringstream hs(header);
        hs >> f.kind;
        for (std::string kv; hs >> kv;) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos) throw bad("expected key=value, got '" + kv + "'");
            f.keys[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        if (!f.keys.count("name")) throw bad("a case without a name");
        while (tokens >> word && word != "end") {
            if (word != "tensor") throw bad("in case " + f.name() + ": expected 'tensor' or 'end', got '" + word + "'");
            std::string tname;
            int rank = 0;
            tokens >> tname >> rank;
            std::vector<int> dims(static_cast<std::size_t>(rank));
            for (int& d : dims) tokens >> d;
            if (!tokens) throw bad("in case " + f.name() + ": bad tensor header for " + tname);
            const Shape shape(dims);
            std::vector<double> values(shape.numel());
            for (double& v : values) {
                if (!(tokens >> word)) throw bad("in case " + f.name() + ": tensor " + tname + " is cut short");
                v = number(word);
            }
            f.tensors.emplace(tname, Tensor<double>(shape, std::move(values)));
        }
        if (word != "end") throw bad("case " + f.name() + " has no 'end'");
        if (f.kind == kind) out.push_back(std::move(f));
    }
    return out;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        BOOST_ERROR("expected mcnn::Error, got another exception: " << e.what());
        return "";
    }
    BOOST_ERROR("expected mcnn::Error, nothing was thrown");
    return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

namespace {

/// The first "mcnn_test_<pid>_<n>[_<label>]" under the temp directory that this call creates
/// itself (so it is new and empty); throws std::filesystem::filesystem_error when it cannot.
std::filesystem::path make_temp_dir(const std::string& label) {
    namespace fs = std::filesystem;
    static std::atomic<unsigned long> counter{0};
    const fs::path base = fs::temp_directory_path();
    for (;;) {
        std::string name = fmt::format("mcnn_test_{}_{}", ::getpid(), counter++);
        if (!label.empty()) name += "_" + label;
        const fs::path dir = base / name;
        if (fs::create_directory(dir)) return dir;  // false: it exists already, try the next number
    }
}

}  // namespace

TempDir::TempDir(const std::string& label) : path(make_temp_dir(label)) {}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

std::vector<std::string> TempDir::files() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

// ---- synthetic CIFAR-10 -------------------------------------------------------------------------

// n images per class; class c has channel means that depend on c, plus noise.
data::Records synthetic(std::size_t per_class, std::uint64_t seed) {
    Rng rng(seed);
    data::Records d;
    for (std::size_t i = 0; i < per_class * data::class_count; ++i) {
        const int c = static_cast<int>(i % data::class_count);
        d.labels.push_back(static_cast<std::uint8_t>(c));
        for (int ch = 0; ch < 3; ++ch) {
            const double mean = 40 + 170 * ((c >> ch) & 1) + 8 * (c / 8) * (ch + 1);
            for (int p = 0; p < 1024; ++p)
                d.images.push_back(static_cast<std::uint8_t>(std::clamp(mean + rng.uniform(-30, 30), 0.0, 255.0)));
        }
    }
    return d;
}

// 24 training and 6 test images per class (seeds 1 and 2), classes "class0".."class9".
data::Cifar10 synthetic_cifar() {
    data::Cifar10 c;
    c.train = synthetic(24, 1);
    c.test = synthetic(6, 2);
    for (int k = 0; k < data::class_count; ++k) c.class_names.push_back("class" + std::to_string(k));
    return c;
}

}  // namespace mcnn::test
