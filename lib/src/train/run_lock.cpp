// The run-folder lock: see run_lock.hpp. POSIX open/flock/write.
#include "run_lock.hpp"

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include "mcnn/error.hpp"

namespace mcnn::detail {
namespace {

std::string errno_text(int err) { return std::system_category().message(err); }

/// The PID the holder wrote into the lock file ("" when it has not written it yet).
std::string holder_pid(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string text = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text.find_first_not_of("0123456789") == std::string::npos ? text : std::string();
}

/// Replaces the file's content by this process's PID.
void write_pid(int fd, const std::string& file) {
    const std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(fd, 0) != 0) fail("cannot write {}: {}", file, errno_text(errno));
    ssize_t w;
    do w = ::pwrite(fd, pid.data(), pid.size(), 0);
    while (w < 0 && errno == EINTR);
    if (w != static_cast<ssize_t>(pid.size())) fail("cannot write {}: {}", file, errno_text(w < 0 ? errno : ENOSPC));
}

}  // namespace

RunLock::RunLock(const std::filesystem::path& dir) {
    const std::string file = (dir / ".lock").string();
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot lock the run folder {}: cannot open {}: {}", dir.string(), file, errno_text(errno));
    int r;
    do r = ::flock(fd_, LOCK_EX | LOCK_NB);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        const int err = errno;
        const std::string pid = err == EWOULDBLOCK ? holder_pid(fd_) : std::string();
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK)
            fail("the run folder {} is in use by another training process{}; wait for it to end or stop it, or choose "
                 "another run folder",
                 dir.string(), pid.empty() ? std::string(" (its PID is not written yet)") : fmt::format(" (PID {})", pid));
        fail("cannot lock the run folder {}: flock on {}: {}", dir.string(), file, errno_text(err));
    }
    try {
        write_pid(fd_, file);
    } catch (...) {
        ::close(fd_);
        fd_ = -1;
        throw;
    }
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

RunLock::~RunLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the lock
}

}  // namespace mcnn::detail
