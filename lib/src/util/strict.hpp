#pragma once
// Strict reading of numbers that come from outside (flags, config.json, checkpoint metadata,
// log.csv, file headers): the whole text must be the number, integers must be integers and within
// the range the field allows, floating-point values must be finite. Nothing wraps around, nothing
// is truncated, no conversion is undefined behaviour; every refusal names the field and the value.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace mcnn::strict {

/// `text` (all of it, base 10, an optional leading '-') as an integer in [min, max]. Throws
/// mcnn::Error: "<what> must be an integer from <min> to <max>, got '<text>'".
long long integer(std::string_view text, long long min, long long max, std::string_view what);

/// `text` (all of it) as a finite floating-point number in [min, max] (decimal or exponent form).
double number(std::string_view text, double min, double max, std::string_view what);

/// A JSON value that must be an integer in [min, max] (a JSON number without fraction or exponent
/// part; 4.0, 1e3, true or "4" are refused).
long long json_integer(const nlohmann::json& value, long long min, long long max, std::string_view what);

/// A JSON value that must be a finite number in [min, max] (integers accepted).
double json_number(const nlohmann::json& value, double min, double max, std::string_view what);

/// The range part of messages: ">= 1", "from 0 to 2147483647", "<= 10".
std::string range_text(long long min, long long max);
std::string range_text(double min, double max);

/// Either of the two for any integer type (text or JSON): the range defaults to the type's, and may be narrowed.
template <class Int>
Int integer_as(const auto& source, std::string_view what, long long min = std::numeric_limits<Int>::min(),
               long long max = static_cast<long long>(std::min<unsigned long long>(std::numeric_limits<Int>::max(),
                                                                                 std::numeric_limits<long long>::max()))) {
    if constexpr (std::is_same_v<std::decay_t<decltype(source)>, nlohmann::json>)
        return static_cast<Int>(json_integer(source, min, max, what));
    else
        return static_cast<Int>(integer(std::string_view(source), min, max, what));
}

}  // namespace mcnn::strict
