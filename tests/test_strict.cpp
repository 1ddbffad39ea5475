// Strict parsing of numbers from outside (lib/src/util/strict.hpp): whole text, integer, in range,
// finite; the refusals name the field, the range and the value.
#include <boost/test/unit_test.hpp>

#include <limits>

#include <sys/stat.h>

#include <fstream>

#include "../lib/src/util/files.hpp"
#include "../lib/src/util/strict.hpp"
#include "support.hpp"

using namespace mcnn;
using mcnn::test::error_of;
using json = nlohmann::json;

BOOST_AUTO_TEST_SUITE(strict_parse)

BOOST_AUTO_TEST_CASE(integers_from_text) {
    BOOST_TEST(strict::integer("42", 1, 100, "--batch") == 42);
    BOOST_TEST(strict::integer("-7", -10, 10, "x") == -7);
    BOOST_TEST(strict::integer("9223372036854775807", 0, std::numeric_limits<long long>::max(), "step") ==
               std::numeric_limits<long long>::max());
    for (const char* bad : {"", " 4", "4 ", "4x", "4.0", "1e3", "+4", "0x10", "--4", "99999999999999999999"})
        BOOST_CHECK_THROW(strict::integer(bad, 0, 1000, "field"), Error);
    BOOST_TEST(error_of([] { strict::integer("0", 1, std::numeric_limits<int>::max(), "--batch"); }) ==
               "--batch must be an integer >= 1, got '0'");
    BOOST_TEST(error_of([] { strict::integer("11", 0, 10, "epochs_done"); }) ==
               "epochs_done must be an integer from 0 to 10, got '11'");
    BOOST_TEST(error_of([] { strict::integer("-1", 0, std::numeric_limits<long long>::max(), "--seed"); }) ==
               "--seed must be an integer >= 0, got '-1'");
    // A huge value is shown cut, not in full.
    const std::string digits(1000, '9');
    BOOST_TEST(error_of([&] { strict::integer(digits, 0, 10, "n"); }).size() < 120u);
}

BOOST_AUTO_TEST_CASE(numbers_from_text) {
    BOOST_TEST(strict::number("0.001", 0, 1, "--lr") == 0.001);
    BOOST_TEST(strict::number("1e-3", 0, 1, "--lr") == 1e-3);
    for (const char* bad : {"", "nan", "inf", "-inf", "1e400", "0.5x", " 1", "2"})
        BOOST_CHECK_THROW(strict::number(bad, 0, 1, "--lr"), Error);
    BOOST_TEST(error_of([] { strict::number("x", -std::numeric_limits<double>::max(), std::numeric_limits<double>::max(), "w"); }) ==
               "w must be a finite number, got 'x'");
    BOOST_TEST(error_of([] { strict::number("-1", 0, std::numeric_limits<double>::max(), "--momentum"); }) ==
               "--momentum must be a finite number >= 0, got '-1'");
}

BOOST_AUTO_TEST_CASE(integers_from_json) {
    BOOST_TEST(strict::json_integer(json::parse("4"), 1, 10, "batch") == 4);
    BOOST_TEST(strict::json_integer(json::parse("-4"), -10, 10, "x") == -4);
    // The cases of the issue: 1e12, 2^32 + 4, a float, 1e300, 2^64 - 1; and other types.
    for (const char* bad : {"1e12", "4294967300", "4.5", "4.0", "1e300", "18446744073709551615", "true", "\"4\"", "null", "[4]"})
        BOOST_CHECK_THROW(strict::json_integer(json::parse(bad), 1, std::numeric_limits<int>::max(), "batch"), Error);
    BOOST_TEST(error_of([] { strict::json_integer(json::parse("1e12"), 1, std::numeric_limits<int>::max(), "field 'batch'"); }) ==
               "field 'batch' must be an integer >= 1, got 1000000000000.0");
    BOOST_TEST(strict::integer_as<int>(json::parse("2147483647"), "batch") == 2147483647);
    BOOST_CHECK_THROW(strict::integer_as<int>(json::parse("2147483648"), "batch"), Error);
    // Seeds are kept to [0, 2^63 - 1]: 2^64 - 1 is refused, not wrapped.
    BOOST_CHECK_THROW(strict::integer_as<unsigned long long>(json::parse("18446744073709551615"), "seed", 0), Error);
}

BOOST_AUTO_TEST_CASE(numbers_from_json) {
    BOOST_TEST(strict::json_number(json::parse("3"), 0, 10, "lr") == 3.0);
    BOOST_TEST(strict::json_number(json::parse("0.25"), 0, 10, "lr") == 0.25);
    for (const char* bad : {"-1", "11", "\"0.5\"", "null", "false"})
        BOOST_CHECK_THROW(strict::json_number(json::parse(bad), 0, 10, "lr"), Error);
}

BOOST_AUTO_TEST_CASE(only_regular_files_are_read) {
    test::TempDir dir;
    const auto file = dir.path / "config.json";
    std::ofstream(file) << "{}";
    BOOST_TEST(files::regular_file_size(file, "run config") == 2u);
    BOOST_TEST(files::read_regular_file(file, "run config", 100) == "{}");
    CHECK_MESSAGE_HAS(error_of([&] { files::read_regular_file(file, "run config", 1); }), "at most 1");
    CHECK_MESSAGE_HAS(error_of([&] { files::read_regular_file(dir.path / "none", "run config", 100); }), "does not exist");
    CHECK_MESSAGE_HAS(error_of([&] { files::read_regular_file(dir.path, "run config", 100); }), "is a folder");
    // A FIFO is refused at once (opening it would block until a writer came).
    const auto fifo = dir.path / "log.csv";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_MESSAGE_HAS(error_of([&] { files::read_regular_file(fifo, "training log", 100); }), "is a FIFO");
    CHECK_MESSAGE_HAS(error_of([] { files::regular_file_size("/dev/null", "data file"); }), "character device");
}

BOOST_AUTO_TEST_SUITE_END()
