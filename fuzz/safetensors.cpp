// Fuzz harness: the safetensors reader (parse_safetensors, what load_safetensors runs on a file).
// A refusal (mcnn::Error) is fine. What an accepted file must satisfy:
//  - every tensor holds as many values as its shape says, and the tensors' bytes, in file order,
//    are exactly the data section (8 + header length .. end): nothing skipped, nothing invented;
//  - names are unique and non-empty (what the writer can write);
//  - a round trip (serialize_safetensors, then parse again) gives back the same names, shapes,
//    bit patterns and metadata.
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>

#include "check.hpp"
#include "mcnn/error.hpp"
#include "mcnn/train/checkpoint.hpp"

namespace {

std::uint64_t header_length(std::string_view bytes) {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
    return n;
}

void check_consistent(const mcnn::TensorFile& file, std::string_view bytes) {
    FUZZ_CHECK(bytes.size() >= 8, "accepted a file of {} bytes", bytes.size());
    const std::uint64_t n = header_length(bytes);
    FUZZ_CHECK(n <= bytes.size() - 8, "accepted header length {} in a file of {} bytes", n, bytes.size());
    std::string_view data = bytes.substr(8 + n);
    std::set<std::string> names;
    for (const auto& [name, t] : file.tensors) {
        FUZZ_CHECK(!name.empty(), "accepted an empty tensor name");
        FUZZ_CHECK(names.insert(name).second, "tensor \"{}\" twice", name);
        FUZZ_CHECK(t.numel() == t.shape().numel(), "tensor \"{}\": {} values for shape {}", name, t.numel(),
                   t.shape().str());
        const std::size_t size = 4 * t.numel();
        FUZZ_CHECK(size <= data.size(), "tensor \"{}\" ({} bytes) runs past the data section", name, size);
        FUZZ_CHECK(size == 0 || std::memcmp(t.data(), data.data(), size) == 0,
                   "tensor \"{}\" differs from its bytes in the file", name);
        data.remove_prefix(size);
    }
    FUZZ_CHECK(data.empty(), "{} data bytes belong to no tensor", data.size());
}

void check_round_trip(const mcnn::TensorFile& file) {
    const std::string bytes = mcnn::serialize_safetensors(file, "round trip");
    const mcnn::TensorFile again = mcnn::parse_safetensors(bytes, "round trip");
    FUZZ_CHECK(again.tensors.size() == file.tensors.size(), "{} tensors, {} after a round trip", file.tensors.size(),
               again.tensors.size());
    for (std::size_t i = 0; i < file.tensors.size(); ++i) {
        const auto& [name, t] = file.tensors[i];
        const auto& [name2, t2] = again.tensors[i];
        FUZZ_CHECK(name == name2, "tensor {} is \"{}\", \"{}\" after a round trip", i, name, name2);
        FUZZ_CHECK(t.shape() == t2.shape(), "tensor \"{}\" has shape {}, {} after a round trip", name, t.shape().str(),
                   t2.shape().str());
        FUZZ_CHECK(t.numel() == 0 || std::memcmp(t.data(), t2.data(), 4 * t.numel()) == 0,
                   "tensor \"{}\" changed in a round trip", name);
    }
    FUZZ_CHECK(again.metadata == file.metadata, "metadata changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    mcnn::TensorFile file;
    try {
        file = mcnn::parse_safetensors(bytes, "fuzz input");
    } catch (const mcnn::Error&) {
        return 0;  // refused with a message: fine
    }
    check_consistent(file, bytes);
    check_round_trip(file);  // an mcnn::Error here is a finding too: it escapes and aborts
    return 0;
}
