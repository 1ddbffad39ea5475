// SIGINT/SIGTERM as a stop request: see stop_signals.hpp. POSIX sigaction.
#include "stop_signals.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>

#include <signal.h>

#include "mcnn/error.hpp"

namespace mcnn::detail {
namespace {

constexpr int stop_signals[] = {SIGINT, SIGTERM};
constexpr int count = 2;

// What the handler touches: lock-free atomics only (async-signal-safe in C++17 and later).
std::atomic<int> received_signal{0};
std::atomic<bool> installed[count];  // whether our handler was installed for stop_signals[i]
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

struct sigaction previous[count];  // what was there before, restored by ~StopSignals

void on_stop_signal(int signal) {
    const int saved_errno = errno;
    received_signal.store(signal);
    // From now on both signals end the process: a second Ctrl-C does not wait for the step.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int i = 0; i < count; ++i)
        if (installed[i].load()) ::sigaction(stop_signals[i], &dfl, nullptr);
    errno = saved_errno;
}

// Puts back the handlers that were there before ours.
void restore_previous() {
    for (int i = 0; i < count; ++i) {
        if (!installed[i].load()) continue;
        ::sigaction(stop_signals[i], &previous[i], nullptr);
        installed[i].store(false);
    }
}

}  // namespace

StopSignals::StopSignals(bool enabled) : enabled_(enabled) {
    received_signal.store(0);
    if (!enabled_) return;
    struct sigaction handler {};
    handler.sa_handler = on_stop_signal;
    handler.sa_flags = SA_RESTART;  // a write or read in progress goes on
    // Both blocked while the handler runs: a second signal waits until the default action is back.
    sigemptyset(&handler.sa_mask);
    for (int s : stop_signals) sigaddset(&handler.sa_mask, s);
    for (int i = 0; i < count; ++i) {
        const int s = stop_signals[i];
        if (::sigaction(s, nullptr, &previous[i]) != 0) {
            restore_previous();
            fail("fit: cannot read the handler of {}", signal_name(s));
        }
        if (previous[i].sa_handler == SIG_IGN) continue;  // ignored on purpose by whoever started us
        installed[i].store(true);
        if (::sigaction(s, &handler, nullptr) != 0) {
            installed[i].store(false);
            restore_previous();
            fail("fit: cannot install a handler for {}", signal_name(s));
        }
    }
}

StopSignals::~StopSignals() {
    if (enabled_) restore_previous();
}

int StopSignals::received() const { return enabled_ ? received_signal.load() : 0; }

const char* signal_name(int signal) {
    switch (signal) {
        case SIGINT: return "SIGINT";
        case SIGTERM: return "SIGTERM";
        default: return "a signal";
    }
}

}  // namespace mcnn::detail
