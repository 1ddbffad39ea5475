#include "memory.hpp"

#include <sys/resource.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "mcnn/error.hpp"
#include "mcnn/tape.hpp"

namespace mcnn::memory {
namespace {

// Bytes a training step holds per recorded float of its batch. Each recorded value gets a gradient
// of its size in backward (the tape keeps both until it is cleared); beside them are the batch's
// images, max-pool's 4-byte winners and transient buffers of backward; the conv layers' im2col
// buffers are per thread, one image at a time, so they do not grow with the batch. Calibrated
// with `/usr/bin/time -v build/bench/bench --case <model>-b<B> --threads 1 --steps 2 --warmup 1`:
// the growth of the maximum resident set size between two batch sizes, per image, divided by the
// recorded floats per image (recorded_floats_per_example):
//   SimpleCNN  B 1000 -> 4000: 397,156 -> 1,139,552 kB, 253 kB per image / 21,306 floats = 11.9 bytes
//   ManualCNN  B  500 -> 2000: 277,792 ->   636,024 kB, 245 kB per image / 21,306 floats = 11.5 bytes
//   TunedCNN   B  250 -> 1000: 579,124 -> 1,797,664 kB, 1.66 MB per image / 189,018 floats = 8.8 bytes
// 13 bytes is the largest of these and a tenth more.
constexpr std::uint64_t bytes_per_recorded_float = 13;

/// The text of a small /proc file ("" when it cannot be read).
std::string read_proc(const char* path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// The value in kB of the line "<key>:   <n> kB" of a /proc file, in bytes; 0 when absent.
std::uint64_t kilobytes_field(std::string_view text, std::string_view key) {
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        const std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') continue;
        std::string_view rest = line.substr(key.size() + 1);
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
        std::uint64_t kb = 0;
        const auto [stop, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kb);
        if (ec != std::errc() || std::string_view(stop, static_cast<std::size_t>(rest.data() + rest.size() - stop)) != " kB")
            return 0;
        return kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024;
    }
    return 0;
}

}  // namespace

std::uint64_t mem_available_of(std::string_view meminfo) { return kilobytes_field(meminfo, "MemAvailable"); }

std::uint64_t vm_size_of(std::string_view status) { return kilobytes_field(status, "VmSize"); }

Available available() {
    Available out;
    if (const std::uint64_t machine = mem_available_of(read_proc("/proc/meminfo")); machine > 0) {
        out = {machine, true, fmt::format("this machine has {} available", human_bytes(machine))};
    }
    rlimit limit{};
    if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        const std::uint64_t used = vm_size_of(read_proc("/proc/self/status"));
        const std::uint64_t cap = static_cast<std::uint64_t>(limit.rlim_cur);
        const std::uint64_t left = cap > used ? cap - used : 0;
        if (!out.known || left < out.bytes)
            out = {left, true,
                   fmt::format("the address-space limit (ulimit -v, {}) leaves this process {}", human_bytes(cap),
                               human_bytes(left))};
    }
    return out;
}

std::string limits_text() {
    std::string out;
    rlimit limit{};
    if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        out = fmt::format("the address-space limit (ulimit -v) is {}", human_bytes(static_cast<std::uint64_t>(limit.rlim_cur)));
    if (const std::uint64_t machine = mem_available_of(read_proc("/proc/meminfo")); machine > 0)
        out += fmt::format("{}this machine has {} available", out.empty() ? "" : "; ", human_bytes(machine));
    return out;
}

std::uint64_t recorded_floats_per_example(Module<float>& model, const Shape& example) {
    std::vector<int> dims{1};
    for (int d : example.dims()) dims.push_back(d);
    Tape<float> tape;  // recording, as a training step's
    const bool training = model.is_training();
    model.eval();
    try {
        (void)model.forward(tape.constant(Tensor<float>(Shape(dims))));
    } catch (...) {
        model.train(training);
        throw;
    }
    model.train(training);
    std::uint64_t floats = 0;
    for (std::size_t id = 0; id < tape.size(); ++id)
        if (!tape.param_at(static_cast<int>(id))) floats += static_cast<std::uint64_t>(tape.value_at(static_cast<int>(id)).numel());
    return floats;
}

std::uint64_t training_step_bytes(std::uint64_t floats_per_example, std::uint64_t batch) {
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(floats_per_example, batch, &bytes) ||
        __builtin_mul_overflow(bytes, bytes_per_recorded_float, &bytes))
        return UINT64_MAX;
    return bytes;
}

std::string human_bytes(std::uint64_t bytes) {
    const double b = static_cast<double>(bytes);
    if (b >= 1e9) return fmt::format("{:.1f} GB", b / 1e9);
    return fmt::format("{:.0f} MB", b / 1e6);
}

void check_fits(std::uint64_t needed, std::uint64_t batch, const Available& available) {
    if (!available.known || needed <= available.bytes) return;
    fail("batch {} needs about {} for activations and gradients; {}: use a smaller --batch", batch, human_bytes(needed),
         available.what);
}

}  // namespace mcnn::memory
