// Helpers shared by the test suites: random tensors, the scipy fixture file, tensor comparisons,
// checks on error messages and temporary directories. One copy here; the suites use them through
// `mcnn::test`.
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/nn/init.hpp"
#include "mcnn/tape.hpp"
#include "mcnn/tensor.hpp"

namespace mcnn::test {

/// The precisions the templated test cases run in.
using scalar_types = std::tuple<float, double>;

/// The inputs (or parameters) handed to a recorded node or a gradcheck loss.
using Vars = std::vector<Var<double>>;

// ---- random tensors -------------------------------------------------------------------------

/// Values uniform in [lo, hi), drawn from mcnn's Rng.
Tensor<double> uniform(const Shape& shape, Rng& rng, double lo = -1, double hi = 1);

/// Values uniform in [-1, 1), drawn in double from a std::mt19937 and rounded to T.
template <class T>
Tensor<T> uniform(const Shape& shape, std::mt19937& rng) {
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    Tensor<T> t(shape);
    for (T& v : t) v = static_cast<T>(dist(rng));
    return t;
}

/// |v| in [0.1, 1.5), random sign: away from zero, i.e. off relu's kink.
Tensor<double> off_zero(const Shape& shape, Rng& rng);

// ---- the scipy fixture file (tests/fixtures/correlate2d.txt, format in make_fixtures.py) ------

/// One `case` of the fixture file: its kind, its key=value header and its named tensors.
struct Fixture {
    std::string kind;
    std::map<std::string, std::string> keys;
    std::map<std::string, Tensor<double>> tensors;

    const std::string& name() const { return keys.at("name"); }
    bool exact() const { return keys.count("exact") && keys.at("exact") == "1"; }
    int integer(const std::string& key) const { return std::stoi(keys.at(key)); }
    /// The tensor called `t`; throws when the case has none.
    const Tensor<double>& tensor(const std::string& t) const;
};

/// All fixtures of the given kind in tests/fixtures/correlate2d.txt; throws on any malformed input.
std::vector<Fixture> load_fixtures(const std::string& kind);

// ---- comparisons ----------------------------------------------------------------------------

/// The relative tolerance for results computed in T: 1e-12 in double, 1e-5 in float.
template <class T>
constexpr double rtol() {
    return std::is_same_v<T, double> ? 1e-12 : 1e-5;
}

/// Checks `actual` against `expected` element by element: exactly when `exact`, else to within
/// tol * max|expected| (a relative tolerance on the tensor's scale, so results that cancel to
/// nearly zero do not need impossible relative accuracy). One assertion (after a required shape
/// check), reporting the first offending element.
template <class T, class U>
void check_close(const Tensor<T>& actual, const Tensor<U>& expected, bool exact, double tol, const std::string& what) {
    BOOST_TEST_CONTEXT(what) {
        BOOST_TEST_REQUIRE(actual.shape().str() == expected.shape().str());
        double scale = 0;
        for (U e : expected) scale = std::max(scale, std::abs(static_cast<double>(e)));
        const double limit = exact ? 0.0 : tol * std::max(scale, 1e-300);
        std::size_t bad = 0, first = 0;
        double worst = 0;
        for (std::size_t i = 0; i < expected.numel(); ++i) {
            const double e = static_cast<double>(expected[i]);
            const double err = exact ? (actual[i] == static_cast<T>(e) ? 0.0 : std::abs(static_cast<double>(actual[i]) - e))
                                     : std::abs(static_cast<double>(actual[i]) - e);
            if (err > limit || std::isnan(err)) {
                if (bad++ == 0) first = i;
                worst = std::max(worst, err);
            }
        }
        BOOST_TEST(bad == 0u, fmt::format("{} of {} elements differ (limit {}); first at flat index {}: got {}, want {}; "
                                          "worst error {}",
                                          bad, expected.numel(), limit, first, bad ? static_cast<double>(actual[first]) : 0.0,
                                          bad ? static_cast<double>(expected[first]) : 0.0, worst));
    }
}

/// check_close to within rtol<T>() of the scale of `expected`.
template <class T>
void check_close(const Tensor<T>& actual, const Tensor<T>& expected, const std::string& what) {
    check_close(actual, expected, false, rtol<T>(), what);
}

/// check_close, exactly.
template <class T>
void check_equal(const Tensor<T>& actual, const Tensor<T>& expected, const std::string& what) {
    check_close(actual, expected.template cast<double>(), true, 0.0, what);
}

/// <a, b>, summed in double.
template <class T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return s;
}

// ---- errors and messages --------------------------------------------------------------------

/// The message of the mcnn::Error that `f` throws ("" and a test failure when it throws none, or
/// throws something else).
std::string error_of(const std::function<void()>& f);

/// Whether `part` occurs in `text`.
bool contains(const std::string& text, const std::string& part);

/// The whole file as text (empty when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// ---- temporary directories ------------------------------------------------------------------

/// A fresh, empty directory under std::filesystem::temp_directory_path(), created on construction
/// and removed with everything in it on destruction (errors ignored: a destructor never throws).
/// Its name is unique to the process and the object: "mcnn_test_<pid>_<counter>[_<label>]"; a name
/// that already exists (left by a crashed process with the same pid) is skipped, never reused.
class TempDir {
public:
    explicit TempDir(const std::string& label = "");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    /// The names of the entries in the directory (not recursive), sorted.
    std::vector<std::string> files() const;

    const std::filesystem::path path;
};

/// Synthetic records, `per_class` images per class: class c's channel means depend on c (so a small
/// CNN learns them in a few epochs), plus uniform noise drawn from `seed`.
data::Records synthetic(std::size_t per_class, std::uint64_t seed);
/// A CIFAR-10 stand-in: synthetic(24, 1) to train, synthetic(6, 2) to test, classes "class0".."class9".
data::Cifar10 synthetic_cifar();

}  // namespace mcnn::test

/// One assertion: the message `msg` contains `part` (both are shown when it does not). Each argument
/// is evaluated once, so `msg` may be a call with side effects (error_of(...)).
#define CHECK_MESSAGE_HAS(msg, part)                                                                           \
    do {                                                                                                       \
        const std::string mcnn_message_ = (msg), mcnn_part_ = (part);                                          \
        BOOST_TEST(::mcnn::test::contains(mcnn_message_, mcnn_part_), "message '" << mcnn_message_ << "' lacks '" \
                                                                                   << mcnn_part_ << "'");      \
    } while (0)
