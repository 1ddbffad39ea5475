#pragma once
// SIGXFSZ ignored while the library writes a file, private to the library. Past the file-size
// limit (ulimit -f) the kernel sends SIGXFSZ, whose default action ends the process without a
// word; ignored, the write fails with EFBIG instead and the error can be reported and cleaned up.
#include <csignal>

#include <signal.h>

namespace mcnn::detail {

/// While alive, SIGXFSZ is ignored; the previous disposition is restored after.
class FileSizeSignalIgnored {
public:
    FileSizeSignalIgnored() {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        restore_ = ::sigaction(SIGXFSZ, &ignore, &previous_) == 0;
    }
    ~FileSizeSignalIgnored() {
        if (restore_) ::sigaction(SIGXFSZ, &previous_, nullptr);
    }
    FileSizeSignalIgnored(const FileSizeSignalIgnored&) = delete;
    FileSizeSignalIgnored& operator=(const FileSizeSignalIgnored&) = delete;

private:
    struct sigaction previous_ {};
    bool restore_ = false;
};

}  // namespace mcnn::detail
