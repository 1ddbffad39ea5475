#include "files.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <system_error>

#include "mcnn/error.hpp"

namespace mcnn::files {
namespace {

const char* kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

}  // namespace

std::uint64_t regular_file_size(const std::filesystem::path& path, std::string_view what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT) fail("{} '{}' does not exist", what, path.string());
        fail("{} '{}': {}", what, path.string(), std::system_category().message(err));
    }
    if (!S_ISREG(st.st_mode)) fail("{} '{}' is {}, not a regular file", what, path.string(), kind_of(st.st_mode));
    return static_cast<std::uint64_t>(st.st_size);
}

std::string read_regular_file(const std::filesystem::path& path, std::string_view what, std::uint64_t max_bytes) {
    const std::uint64_t size = regular_file_size(path, what);
    if (size > max_bytes) fail("{} '{}' has {} bytes; at most {} are expected", what, path.string(), size, max_bytes);
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{} '{}' cannot be opened for reading", what, path.string());
    std::string text(static_cast<std::size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    if (static_cast<std::uint64_t>(in.gcount()) != size)
        fail("{} '{}': read {} of its {} bytes", what, path.string(), in.gcount(), size);
    return text;
}

}  // namespace mcnn::files
