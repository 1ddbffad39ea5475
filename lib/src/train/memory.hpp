#pragma once
// The memory a training step needs, checked against what this process can still get before the
// first step: a batch too large for the machine fails at once, naming both figures, instead of
// swapping for minutes or ending in an abort. Private to the library (fit's check_inputs and the
// commands' out-of-memory message use it).
#include <cstdint>
#include <string>
#include <string_view>

#include "mcnn/nn/module.hpp"

namespace mcnn::memory {

/// What this process can still allocate: the smaller of the machine's available memory
/// (MemAvailable in /proc/meminfo) and, when an address-space limit is set (ulimit -v, RLIMIT_AS),
/// the part of it the process does not use yet (the limit less its VmSize).
struct Available {
    std::uint64_t bytes = 0;
    bool known = false;  // false when no source could be read: then nothing is refused
    std::string what;    // where the figure comes from: "this machine has 9.1 GB available"
};
Available available();

/// For messages after an allocation failed: "the address-space limit (ulimit -v) is 3.1 GB; this
/// machine has 9.1 GB available" (the parts that are known; "" when none is).
std::string limits_text();

/// MemAvailable of /proc/meminfo's text, in bytes; 0 when it is not there.
std::uint64_t mem_available_of(std::string_view meminfo);
/// VmSize of /proc/self/status's text (the process's address space), in bytes; 0 when not there.
std::uint64_t vm_size_of(std::string_view status);

/// Floats that a training step records per example of its batch: the values of every node of the
/// tape (parameter leaves excepted, they do not grow with the batch), found by a probe forward of
/// one `example` (C x H x W) on a recording tape, with the model in eval mode so that layers with
/// running statistics learn nothing from it.
std::uint64_t recorded_floats_per_example(Module<float>& model, const Shape& example);

/// The estimated bytes a training step at `batch` holds for activations and gradients, from
/// recorded_floats_per_example: values, their gradients and what the nodes save for backward
/// (calibrated against peak RSS: see memory.cpp).
std::uint64_t training_step_bytes(std::uint64_t floats_per_example, std::uint64_t batch);

/// "12.3 GB" (decimal units, one decimal; "512 MB" below a gigabyte).
std::string human_bytes(std::uint64_t bytes);

/// Throws mcnn::Error when `needed` bytes for a step at `batch` exceed `available` (when known):
/// "batch 100000 needs about 12.3 GB for activations and gradients; this machine has 9.1 GB
/// available: use a smaller --batch".
void check_fits(std::uint64_t needed, std::uint64_t batch, const Available& available);

}  // namespace mcnn::memory
