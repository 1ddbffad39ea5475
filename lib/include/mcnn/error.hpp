#pragma once
// Errors raised by ManualCNN. Every message names the operation (or file) and what was wrong.
#include <stdexcept>
#include <string>

#include <fmt/core.h>

namespace mcnn {

/// The one exception type of the library; `what()` says where and what.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Throws mcnn::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace mcnn
