#pragma once
// The lock of a run folder, private to the library: one training process per folder at a time.
#include <filesystem>

namespace mcnn::detail {

/// Holds an exclusive flock(2) on "<dir>/.lock" (created if missing), which records the holder's
/// PID. A second lock on the folder, from another process or another RunLock, throws naming the
/// folder and the holder's PID. The lock ends with the object or with the process (even kill -9:
/// the kernel drops it), so it is never left stale; the file itself stays.
class RunLock {
public:
    RunLock() = default;
    /// Locks `dir` (which must exist); throws mcnn::Error when it cannot.
    explicit RunLock(const std::filesystem::path& dir);
    RunLock(RunLock&& other) noexcept;
    RunLock& operator=(RunLock&& other) noexcept;
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;
    ~RunLock();

    bool held() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

}  // namespace mcnn::detail
