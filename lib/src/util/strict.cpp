#include "strict.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "mcnn/error.hpp"

namespace mcnn::strict {
namespace {

constexpr long long lowest = std::numeric_limits<long long>::min();
constexpr long long highest = std::numeric_limits<long long>::max();

/// Long values (a 2 GB line of digits) are shown cut, so that the message stays readable.
std::string shown(std::string_view text) {
    constexpr std::size_t most = 40;
    return text.size() <= most ? std::string(text) : std::string(text.substr(0, most)) + "...";
}

[[noreturn]] void refuse_integer(std::string_view what, long long min, long long max, std::string_view got) {
    const std::string range = range_text(min, max);
    fail("{} must be an integer{}{}, got {}", what, range.empty() ? "" : " ", range, got);
}

[[noreturn]] void refuse_number(std::string_view what, double min, double max, std::string_view got) {
    const std::string range = range_text(min, max);
    fail("{} must be a finite number{}{}, got {}", what, range.empty() ? "" : " ", range, got);
}

}  // namespace

std::string range_text(long long min, long long max) {
    if (min == lowest && max == highest) return "";
    if (max == highest || max == std::numeric_limits<int>::max()) return fmt::format(">= {}", min);
    if (min == lowest) return fmt::format("<= {}", max);
    return fmt::format("from {} to {}", min, max);
}

std::string range_text(double min, double max) {
    const bool no_min = min == -std::numeric_limits<double>::max() || std::isinf(min);
    const bool no_max = max == std::numeric_limits<double>::max() || std::isinf(max);
    if (no_min && no_max) return "";
    if (no_max) return fmt::format(">= {}", min);
    if (no_min) return fmt::format("<= {}", max);
    return fmt::format("from {} to {}", min, max);
}

long long integer(std::string_view text, long long min, long long max, std::string_view what) {
    const std::string quoted = fmt::format("'{}'", shown(text));
    long long v = 0;
    const char* begin = text.data();
    const char* end = begin + text.size();
    const auto [stop, ec] = std::from_chars(begin, end, v);
    if (text.empty() || ec == std::errc::invalid_argument || stop != end) refuse_integer(what, min, max, quoted);
    if (ec == std::errc::result_out_of_range || v < min || v > max) refuse_integer(what, min, max, quoted);
    return v;
}

double number(std::string_view text, double min, double max, std::string_view what) {
    const std::string quoted = fmt::format("'{}'", shown(text));
    double v = 0;
    const char* begin = text.data();
    const char* end = begin + text.size();
    const auto [stop, ec] = std::from_chars(begin, end, v);
    if (text.empty() || ec != std::errc() || stop != end || !std::isfinite(v) || v < min || v > max)
        refuse_number(what, min, max, quoted);
    return v;
}

long long json_integer(const nlohmann::json& value, long long min, long long max, std::string_view what) {
    if (value.is_number_integer()) {
        if (value.is_number_unsigned()) {
            const auto u = value.get<unsigned long long>();
            if (u > static_cast<unsigned long long>(highest) || static_cast<long long>(u) > max)
                refuse_integer(what, min, max, value.dump());
            if (static_cast<long long>(u) >= min) return static_cast<long long>(u);
        } else {
            const auto v = value.get<long long>();
            if (v >= min && v <= max) return v;
        }
    }
    refuse_integer(what, min, max, shown(value.dump()));
}

double json_number(const nlohmann::json& value, double min, double max, std::string_view what) {
    if (value.is_number()) {
        const double v = value.get<double>();
        if (std::isfinite(v) && v >= min && v <= max) return v;
    }
    refuse_number(what, min, max, shown(value.dump()));
}

}  // namespace mcnn::strict
