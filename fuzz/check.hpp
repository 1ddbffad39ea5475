#pragma once
// What a fuzz harness asserts: FUZZ_CHECK(condition, "format", args...) prints the broken property
// and aborts, which libFuzzer reports as a finding (and the corpus replay as a failed test). Not
// assert(): it must hold in Release builds too.
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#define FUZZ_CHECK(condition, ...)                                                                 \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "%s:%d: fuzz check failed: %s: %s\n", __FILE__, __LINE__, #condition, \
                         fmt::format(__VA_ARGS__).c_str());                                        \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)
