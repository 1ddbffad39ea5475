// Fuzz harness: a run's log.csv (parse_log, what read_log runs on a file). A refusal
// (mcnn::Error) is fine. What an accepted log must satisfy:
//  - it has no more rows than lines after the header;
//  - what the reader accepts, the writer writes back readably: format_log, then parse_log again,
//    gives rows that format_log writes as the same text (the writer's rounding happens once).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "mcnn/error.hpp"
#include "mcnn/train/trainer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<mcnn::LogRow> rows;
    try {
        rows = mcnn::parse_log(text, "fuzz input");
    } catch (const mcnn::Error&) {
        return 0;  // refused with a message: fine
    }
    const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    FUZZ_CHECK(rows.size() < lines, "{} rows from {} lines (header included)", rows.size(), lines);

    const std::string written = mcnn::format_log(rows);
    const std::vector<mcnn::LogRow> again = mcnn::parse_log(written, "round trip");  // an mcnn::Error is a finding
    FUZZ_CHECK(again.size() == rows.size(), "{} rows, {} after a round trip", rows.size(), again.size());
    const std::string rewritten = mcnn::format_log(again);
    FUZZ_CHECK(rewritten == written, "round trip changed the log:\n{}\nbecame\n{}", written, rewritten);
    return 0;
}
