// Fuzz harness: the CIFAR-10 batch-file reader (parse_records, what read_batch_file runs on a
// file). A refusal (mcnn::Error) is fine. What an accepted file must satisfy: it is a whole number
// (at least one) of 3,073-byte records, and the records hold exactly its bytes: record r's label is
// byte r * 3073 (0 to 9), its image the 3,072 bytes after it.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "check.hpp"
#include "mcnn/data/cifar10.hpp"
#include "mcnn/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace d = mcnn::data;
    d::Records records;
    try {
        records = d::parse_records(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
    } catch (const mcnn::Error&) {
        return 0;  // refused with a message: fine
    }
    const std::size_t n = records.size();
    FUZZ_CHECK(n >= 1 && size == n * d::record_bytes, "accepted {} bytes as {} records", size, n);
    FUZZ_CHECK(records.images.size() == n * d::image_bytes, "{} records but {} image bytes", n, records.images.size());
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint8_t* record = data + r * d::record_bytes;
        FUZZ_CHECK(records.labels[r] == record[0] && record[0] < d::class_count, "record {}: label {}, byte {}", r,
                   int{records.labels[r]}, int{record[0]});
        FUZZ_CHECK(std::memcmp(records.images.data() + r * d::image_bytes, record + 1, d::image_bytes) == 0,
                   "record {}: the image differs from the file's bytes", r);
    }
    return 0;
}
