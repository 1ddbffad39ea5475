#pragma once
// Files checked before they are read: only regular files (a FIFO would block the reader forever, a
// device or a folder is not data), and of a size the reader expects, before any allocation.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace mcnn::files {

/// The size in bytes of `path`, after checking that it exists and is a regular file (symbolic links
/// followed). Throws mcnn::Error naming `what` and the path otherwise ("<what> '<path>' is a FIFO,
/// not a regular file"), without opening it.
std::uint64_t regular_file_size(const std::filesystem::path& path, std::string_view what);

/// The whole of a regular file of at most `max_bytes` (checked before reading). Throws naming `what`
/// and the path when it is missing, not a regular file, too large or unreadable.
std::string read_regular_file(const std::filesystem::path& path, std::string_view what, std::uint64_t max_bytes);

}  // namespace mcnn::files
