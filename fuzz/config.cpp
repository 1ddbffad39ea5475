// Fuzz harness: a run's config.json (TrainConfig::from_json). A refusal (mcnn::Error) is fine.
// What an accepted config must satisfy:
//  - every number field holds exactly the number the file gives (no wrap-around, no truncation,
//    no float-to-integer conversion out of range) and comes from a JSON number; floating-point
//    fields are finite;
//  - validate() accepts it or throws mcnn::Error;
//  - to_json, then from_json again, gives the same config.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "mcnn/error.hpp"
#include "mcnn/train/config.hpp"

namespace {

using json = nlohmann::json;
static_assert(std::numeric_limits<long double>::digits >= 64, "same_integer needs a 64-bit significand");

// `value` (a JSON number) equals the integer `field` exactly. long double holds every 64-bit
// integer exactly (x86-64's 64-bit significand, or more), so no comparison here rounds or wraps.
template <class Int>
bool same_integer(const json& value, Int field) {
    long double v = 0;
    if (value.is_number_unsigned())
        v = static_cast<long double>(value.get<std::uint64_t>());
    else if (value.is_number_integer())
        v = static_cast<long double>(value.get<std::int64_t>());
    else
        v = static_cast<long double>(value.get<double>());
    return v == static_cast<long double>(field);
}

template <class Int>
void check_integer(const json& j, const char* key, Int field) {
    const json& value = j.at(key);
    FUZZ_CHECK(value.is_number(), "field '{}' accepted from the JSON {} {}", key, value.type_name(), value.dump());
    FUZZ_CHECK(same_integer(value, field), "field '{}' is {} in the file but {} in the config", key, value.dump(), field);
}

void check_number(const json& j, const char* key, double field) {
    const json& value = j.at(key);
    FUZZ_CHECK(value.is_number(), "field '{}' accepted from the JSON {} {}", key, value.type_name(), value.dump());
    FUZZ_CHECK(std::isfinite(field), "field '{}' accepted as {}", key, field);
    FUZZ_CHECK(field == value.get<double>(), "field '{}' is {} in the file but {} in the config", key, value.dump(),
               field);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    mcnn::TrainConfig config;
    try {
        config = mcnn::TrainConfig::from_json(text);
    } catch (const mcnn::Error&) {
        return 0;  // refused with a message: fine
    }
    const json j = json::parse(text);  // accepted, so it is JSON
    check_integer(j, "epochs", config.epochs);
    check_integer(j, "batch", config.batch);
    check_integer(j, "seed", config.seed);
    check_integer(j, "report_every", config.report_every);
    check_integer(j, "validation", config.validation);
    check_integer(j, "max_batches", config.max_batches);
    check_integer(j, "eval_batch", config.eval_batch);
    check_number(j, "lr", config.sgd.lr);
    check_number(j, "momentum", config.sgd.momentum);
    check_number(j, "dampening", config.sgd.dampening);
    check_number(j, "weight_decay", config.sgd.weight_decay);

    config.run_dir = "fuzz-run";  // not part of config.json
    try {
        config.validate();
    } catch (const mcnn::Error&) {
        // refused with a message: fine
    }
    const std::string written = config.to_json();
    const mcnn::TrainConfig again = mcnn::TrainConfig::from_json(written);  // an mcnn::Error here is a finding
    FUZZ_CHECK(again.to_json() == written, "round trip changed the config:\n{}\nbecame\n{}", written, again.to_json());
    return 0;
}
